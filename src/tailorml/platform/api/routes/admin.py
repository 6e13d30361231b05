"""/admin: tenants and keys, for the platform operator (admin key only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from tailorml.platform import auth
from tailorml.platform.api.deps import AdminDep, ReadSessionDep, SessionDep, StateDep
from tailorml.platform.db.models import Tenant

router = APIRouter(prefix="/admin", tags=["admin"])


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def tenant_object(t: Tenant) -> dict[str, Any]:
    return {"id": t.id, "object": "tenant", "name": t.name, "created_at": t.created_at}


@router.post("/tenants")
def create_tenant(
    body: TenantCreate, session: SessionDep, state: StateDep, _: AdminDep
) -> dict[str, Any]:
    tenant = auth.create_tenant(session, name=body.name)
    key = auth.create_key(session, secret=state.settings.secret(), tenant=tenant, name="default")
    return {**tenant_object(tenant), "api_key": key}


@router.get("/tenants")
def list_tenants(session: ReadSessionDep, _: AdminDep) -> dict[str, Any]:
    rows = session.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.name))
    return {"object": "list", "data": [tenant_object(t) for t in rows]}


@router.post("/tenants/{tenant}/keys")
def create_key(tenant: str, session: SessionDep, state: StateDep, _: AdminDep) -> dict[str, Any]:
    row = auth.get_tenant(session, name_or_id=tenant)
    key = auth.create_key(session, secret=state.settings.secret(), tenant=row)
    return {"object": "api_key", "tenant": row.name, "api_key": key}
