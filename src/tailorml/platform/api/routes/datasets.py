"""/v1/datasets (TailorML extension): create a dataset version from files and a recipe, follow it,
cancel or delete it, preview its records, read its report and the records it removed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tailorml.platform import datasets as service
from tailorml.platform.api.deps import ReadSessionDep, SessionDep, StateDep, TenantDep
from tailorml.platform.api.idempotent import IdempotencyKeyDep, create_once
from tailorml.platform.fine_tuning import event_object, list_events

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[StrictStr] = Field(
        min_length=1, max_length=100, description="Ids of uploaded files (any purpose)."
    )
    recipe: StrictStr | dict[str, Any] = Field(
        description="A registered recipe's name (shipped or the operator's), a recipe as YAML "
        "text, or a recipe object. Resource parameters name your own objects: file ids for "
        "word lists and evaluation sets, catalog or ft: models for encoders and tokenizers."
    )
    name: StrictStr | None = Field(None, pattern=r"^[A-Za-z0-9][\w.-]{0,63}$")


@router.post("")
def create_dataset(
    body: DatasetCreate,
    session: SessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    response: Response,
    idempotency_key: IdempotencyKeyDep = None,
) -> dict[str, Any]:
    content = body.model_dump()
    return create_once(
        session,
        response,
        tenant_id=tenant_id,
        key=idempotency_key,
        endpoint="POST /v1/datasets",
        content=content,
        create=lambda: service.dataset_object(
            service.create_dataset(
                session, tenant_id=tenant_id, settings=state.settings, body=content
            )
        ),
    )


@router.get("")
def list_datasets(
    session: ReadSessionDep, tenant_id: TenantDep, limit: int = Query(20, ge=1, le=100)
) -> dict[str, Any]:
    rows = service.list_datasets(session, tenant_id=tenant_id, limit=limit)
    return {"object": "list", "data": [service.dataset_object(j) for j in rows], "has_more": False}


@router.get("/{dataset_id}")
def retrieve_dataset(
    dataset_id: str, session: ReadSessionDep, tenant_id: TenantDep
) -> dict[str, Any]:
    return service.dataset_object(
        service.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    )


@router.post("/{dataset_id}/cancel")
def cancel_dataset(dataset_id: str, session: SessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    return service.dataset_object(
        service.cancel_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    )


@router.delete("/{dataset_id}")
def delete_dataset(
    dataset_id: str, session: SessionDep, state: StateDep, tenant_id: TenantDep
) -> dict[str, Any]:
    service.delete_dataset(
        session,
        tenant_id=tenant_id,
        settings=state.settings,
        storage=state.storage,
        dataset_id=dataset_id,
    )
    return {"id": dataset_id, "object": "dataset", "deleted": True}


@router.get("/{dataset_id}/events")
def dataset_events(
    dataset_id: str,
    session: ReadSessionDep,
    tenant_id: TenantDep,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=1000),
) -> dict[str, Any]:
    service.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    rows, more = list_events(
        session, tenant_id=tenant_id, job_id=dataset_id, after=after, limit=limit
    )
    return {"object": "list", "data": [event_object(e) for e in rows], "has_more": more}


@router.get("/{dataset_id}/records")
def dataset_records(
    dataset_id: str,
    session: ReadSessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(20, ge=1, le=1000),
) -> dict[str, Any]:
    job = service.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    rows = service.output_rows(state.settings, job, offset=offset, limit=limit)
    return {"object": "list", "data": rows, "offset": offset, "has_more": len(rows) == limit}


@router.get("/{dataset_id}/removed")
def dataset_removed(
    dataset_id: str,
    session: ReadSessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    limit: int = Query(100, ge=1, le=10000),
) -> dict[str, Any]:
    job = service.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    return {"object": "list", "data": service.removed_rows(state.settings, job, limit=limit)}


@router.get("/{dataset_id}/report")
def dataset_report(
    dataset_id: str,
    session: ReadSessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    format: str = Query("json", pattern="^(json|html)$"),
) -> FileResponse:
    job = service.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    path = service.report_path(state.settings, job, format)
    # The report shows the tenant's records (escaped); the policy keeps any script from running
    # on the API's origin even so.
    headers = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"}
    media = "text/html" if format == "html" else "application/json"
    return FileResponse(path, media_type=media, headers=headers)
