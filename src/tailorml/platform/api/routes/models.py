"""/v1/models: the base catalog plus the tenant's fine-tuned models; deleting one removes its
weights and its job's checkpoints from disk and from the serving engine; ``.../content``
downloads one in a standard format."""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from tailorml.platform import models as service
from tailorml.platform.api.deps import ReadSessionDep, SessionDep, StateDep, TenantDep
from tailorml.platform.db.models import Model
from tailorml.platform.lineage import model_sources

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
def list_models(session: ReadSessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    return {"object": "list", "data": service.list_models(session, tenant_id=tenant_id)}


@router.get("/{model_id:path}/content", response_model=None)
def model_content(
    model_id: str,
    session: ReadSessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    format: str = Query("merged", description="adapter, merged or onnx (encoders)"),
) -> FileResponse:
    """A fine-tuned model as a tar of a standard folder: its LoRA adapter, the weights merged
    into the base (Hugging Face safetensors), or ONNX for encoders (checked against PyTorch)."""
    path, name = service.export_archive(
        session, tenant_id=tenant_id, model_id=model_id, fmt=format, settings=state.settings
    )
    return FileResponse(path, media_type="application/x-tar", filename=name)


@router.get("/{model_id:path}")
def retrieve_model(model_id: str, session: ReadSessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    """The model; a fine-tuned one also names what it was trained from (``trained_from``)."""
    item = service.get_model_object(session, tenant_id=tenant_id, model_id=model_id)
    row = session.get(Model, model_id)
    if row is not None and row.tenant_id == tenant_id:
        item = {**item, "trained_from": model_sources(session, tenant_id=tenant_id, model=row)}
    return item


@router.delete("/{model_id:path}")
def delete_model(
    model_id: str, session: SessionDep, state: StateDep, tenant_id: TenantDep
) -> dict[str, Any]:
    folders = service.delete_model(
        session, tenant_id=tenant_id, model_id=model_id, settings=state.settings
    )
    session.commit()  # the row goes first: a crash now leaves files no id reaches, never an id
    state.models.forget(model_id)
    if state.started_serving:
        state.serving.unload(model_id)
    for folder in folders:  # its weights and its job's checkpoints
        shutil.rmtree(folder, ignore_errors=True)
    return {"id": model_id, "object": "model", "deleted": True}
