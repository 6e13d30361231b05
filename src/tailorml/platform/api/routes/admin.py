"""/admin: tenants and keys, for the platform operator (admin key only). Deleting a tenant
removes everything of it (``platform/tenants.py``) and answers a deletion report.

Key rotation without downtime: ``POST /admin/tenants/{tenant}/keys`` makes a new key while
the old one keeps working; once clients use the new one, ``POST /admin/keys/{key}/revoke``.
"""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailorml.platform import auth, tenants
from tailorml.platform.api.deps import AdminDep, ReadSessionDep, SessionDep, StateDep
from tailorml.platform.db.models import ApiKey, Tenant
from tailorml.platform.key_scopes import SCOPES

router = APIRouter(prefix="/admin", tags=["admin"])


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def tenant_object(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "object": "tenant",
        "name": t.name,
        "created_at": t.created_at,
        "disabled_at": t.disabled_at,
    }


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


@router.delete("/tenants/{tenant}")
def delete_tenant(tenant: str, session: SessionDep, state: StateDep, _: AdminDep) -> dict[str, Any]:
    """Everything of the tenant, from the database and storage (``platform/tenants.py``)."""
    report, folders = tenants.delete_tenant(
        session, name_or_id=tenant, settings=state.settings, storage=state.storage
    )
    session.commit()  # rows first: a crash now leaves bytes no id reaches, never an id
    for model_id in report["removed"]["models"]:
        state.models.forget(model_id)
        if state.started_serving:
            state.serving.unload(model_id)
    state.quotas.forget(report["tenant_id"])
    state.usage.drop_tenant(report["tenant_id"])
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return report


@router.post("/tenants/{tenant}/disable")
def disable_tenant(tenant: str, session: SessionDep, _: AdminDep) -> dict[str, Any]:
    """Refuse the tenant's keys (403 tenant_disabled) and hold its queued jobs; reversible."""
    return tenant_object(tenants.set_disabled(session, name_or_id=tenant, disabled=True))


@router.post("/tenants/{tenant}/enable")
def enable_tenant(tenant: str, session: SessionDep, _: AdminDep) -> dict[str, Any]:
    return tenant_object(tenants.set_disabled(session, name_or_id=tenant, disabled=False))


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: str = Field("all", description=f"One of {', '.join(SCOPES)}.")
    expires_in_days: float | None = Field(None, description="Leave out for no expiry.")
    name: str = ""


def _tenant_names(session: Session, rows: list[ApiKey]) -> dict[str, str]:
    ids = {r.tenant_id for r in rows if r.tenant_id}
    if not ids:
        return {}
    return dict(session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_(ids))).all())


@router.post("/tenants/{tenant}/keys")
def create_key(
    tenant: str,
    session: SessionDep,
    state: StateDep,
    _: AdminDep,
    body: KeyCreate | None = None,
) -> dict[str, Any]:
    body = body or KeyCreate()
    row = auth.get_tenant(session, name_or_id=tenant)
    key, key_row = auth.create_key_row(
        session,
        secret=state.settings.secret(),
        tenant=row,
        name=body.name,
        scope=body.scope,
        expires_in_days=body.expires_in_days,
    )
    return {**auth.key_object(key_row, row.name), "api_key": key}


@router.get("/keys")
def list_keys(session: ReadSessionDep, _: AdminDep, tenant: str | None = None) -> dict[str, Any]:
    owner = auth.get_tenant(session, name_or_id=tenant) if tenant else None
    rows = auth.list_keys(session, tenant=owner)
    names = _tenant_names(session, rows)
    data = [auth.key_object(r, names.get(r.tenant_id or "")) for r in rows]
    return {"object": "list", "data": data}


@router.post("/keys/{prefix_or_id}/revoke")
def revoke_key(prefix_or_id: str, session: SessionDep, _: AdminDep) -> dict[str, Any]:
    row = auth.revoke_key(session, prefix=prefix_or_id)
    return auth.key_object(row, _tenant_names(session, [row]).get(row.tenant_id or ""))
