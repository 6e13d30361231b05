"""/v1/batches: OpenAI's Batch API (create, list, retrieve, cancel); see ``platform/batches.py``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tailorml.platform import batches as service
from tailorml.platform.api.deps import ReadSessionDep, SessionDep, StateDep, TenantDep
from tailorml.platform.api.idempotent import IdempotencyKeyDep, create_once
from tailorml.platform.api.protocol import MAX_ID_CHARS, MAX_METADATA_PAIRS

router = APIRouter(prefix="/v1/batches", tags=["batches"])


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input_file_id: StrictStr = Field(max_length=MAX_ID_CHARS)
    endpoint: StrictStr = Field(max_length=64)
    completion_window: Literal["24h"]
    metadata: dict[StrictStr, StrictStr] | None = Field(None, max_length=MAX_METADATA_PAIRS)


@router.post("")
def create_batch(
    body: BatchCreate,
    session: SessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    response: Response,
    idempotency_key: IdempotencyKeyDep = None,
) -> dict[str, Any]:
    return create_once(
        session,
        response,
        tenant_id=tenant_id,
        key=idempotency_key,
        endpoint="POST /v1/batches",
        content=body.model_dump(),
        create=lambda: service.batch_object(
            service.create_batch(
                session,
                tenant_id=tenant_id,
                settings=state.settings,
                storage=state.storage,
                input_file_id=body.input_file_id,
                endpoint=body.endpoint,
                completion_window=body.completion_window,
                metadata=body.metadata,
            )
        ),
    )


@router.get("")
def list_batches(
    session: ReadSessionDep,
    tenant_id: TenantDep,
    limit: int = Query(20, ge=1, le=100),
    after: str | None = Query(None, max_length=MAX_ID_CHARS),
) -> dict[str, Any]:
    rows = service.list_batches(session, tenant_id=tenant_id, limit=limit, after=after)
    data = [service.batch_object(j) for j in rows[:limit]]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(rows) > limit,
    }


@router.get("/{batch_id}")
def retrieve_batch(batch_id: str, session: ReadSessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    return service.batch_object(service.get_batch(session, tenant_id=tenant_id, batch_id=batch_id))


@router.post("/{batch_id}/cancel")
def cancel_batch(batch_id: str, session: SessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    return service.batch_object(
        service.cancel_batch(session, tenant_id=tenant_id, batch_id=batch_id)
    )
