"""/v1/models: the base catalog plus the tenant's fine-tuned models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tailorml.platform import models as service
from tailorml.platform.api.deps import ReadSessionDep, SessionDep, TenantDep

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
def list_models(session: ReadSessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    return {"object": "list", "data": service.list_models(session, tenant_id=tenant_id)}


@router.get("/{model_id:path}")
def retrieve_model(model_id: str, session: ReadSessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    return service.get_model_object(session, tenant_id=tenant_id, model_id=model_id)


@router.delete("/{model_id:path}")
def delete_model(model_id: str, session: SessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    service.delete_model(session, tenant_id=tenant_id, model_id=model_id)
    return {"id": model_id, "object": "model", "deleted": True}
