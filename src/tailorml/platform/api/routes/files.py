"""/v1/files: upload (multipart), list, retrieve, content, delete.

The upload's size is bounded while it streams by the request guard (which also
authenticates before reading it); storage checks the file's own size again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Response, UploadFile
from fastapi.responses import FileResponse

from tailorml.platform import files as service
from tailorml.platform import idempotency, lineage
from tailorml.platform import models as models_service
from tailorml.platform.api.deps import ReadSessionDep, SessionDep, StateDep, TenantDep
from tailorml.platform.api.idempotent import IdempotencyKeyDep

router = APIRouter(prefix="/v1/files", tags=["files"])


def _chunks(upload: UploadFile, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := upload.file.read(size):
        yield chunk


@router.post("")
def upload_file(
    session: SessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    file: UploadFile,
    purpose: Annotated[str, Form()],
    response: Response,
    idempotency_key: IdempotencyKeyDep = None,
) -> dict[str, Any]:
    key = idempotency.check_key(idempotency_key)
    row = service.create_file(
        session,
        tenant_id=tenant_id,
        storage=state.storage,
        filename=file.filename,
        purpose=purpose,
        chunks=_chunks(file),
        max_bytes=state.settings.max_upload_bytes,
    )
    if key is None:
        return service.file_object(row)
    # The content is known only once stored, so a retry's bytes are stored, compared, dropped.
    endpoint, digest = (
        "POST /v1/files",
        idempotency.fingerprint(
            {"filename": file.filename, "purpose": purpose, "sha256": row.sha256}
        ),
    )
    try:
        stored = idempotency.replay(
            session, tenant_id=tenant_id, key=key, endpoint=endpoint, digest=digest
        )
        if stored is None:
            answer = service.file_object(row)
            idempotency.remember(
                session,
                tenant_id=tenant_id,
                key=key,
                endpoint=endpoint,
                digest=digest,
                response=answer,
            )
            return answer
    except Exception:  # the request fails: its bytes go with it
        state.storage.delete(row.storage_key)
        raise
    session.delete(row)
    session.flush()
    state.storage.delete(row.storage_key)
    response.headers[idempotency.REPLAYED_HEADER] = "true"
    return stored


@router.get("")
def list_files(
    session: ReadSessionDep, tenant_id: TenantDep, purpose: str | None = None
) -> dict[str, Any]:
    rows = service.list_files(session, tenant_id=tenant_id, purpose=purpose)
    return {"object": "list", "data": [service.file_object(r) for r in rows], "has_more": False}


@router.get("/{file_id}")
def retrieve_file(file_id: str, session: ReadSessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    return service.file_object(service.get_file(session, tenant_id=tenant_id, file_id=file_id))


@router.get("/{file_id}/content")
def file_content(
    file_id: str, session: ReadSessionDep, state: StateDep, tenant_id: TenantDep
) -> FileResponse:
    row = service.get_file(session, tenant_id=tenant_id, file_id=file_id)
    return FileResponse(
        state.storage.path(row.storage_key),
        filename=row.filename,
        media_type="application/octet-stream",
    )


@router.get("/{file_id}/lineage")
def file_lineage(file_id: str, session: ReadSessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    """What was derived from the file (TailorML extension): datasets, their output files,
    fine-tuning jobs and models; what ``DELETE`` would delete or leave."""
    service.get_file(session, tenant_id=tenant_id, file_id=file_id)
    return lineage.derived_from_file(session, tenant_id=tenant_id, file_id=file_id).to_object()


@router.delete("/{file_id}")
def delete_file(
    file_id: str,
    session: SessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    derived_models: Literal["keep", "delete"] = Query(
        "keep",
        description="`delete` also deletes the models trained on this file or on what was "
        "derived from it (weights and checkpoints); `keep` leaves them and lists them.",
    ),
) -> dict[str, Any]:
    service.get_file(session, tenant_id=tenant_id, file_id=file_id)
    derived = lineage.derived_from_file(session, tenant_id=tenant_id, file_id=file_id)
    folders = []
    if derived_models == "delete":
        for model_id in derived.models:
            folders += models_service.delete_model(
                session, tenant_id=tenant_id, model_id=model_id, settings=state.settings
            )
    service.delete_file(
        session,
        tenant_id=tenant_id,
        storage=state.storage,
        file_id=file_id,
        settings=state.settings,
    )
    if derived_models == "delete" and derived.models:
        session.commit()  # rows first: a crash now leaves bytes no id reaches, never an id
        for model_id in derived.models:
            state.models.forget(model_id)
            if state.started_serving:
                state.serving.unload(model_id)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    deleted = derived.models if derived_models == "delete" else []
    return {
        "id": file_id,
        "object": "file",
        "deleted": True,
        "derived": derived.to_object(),
        "models_deleted": deleted,
        "models_kept": [m for m in derived.models if m not in deleted],
    }
