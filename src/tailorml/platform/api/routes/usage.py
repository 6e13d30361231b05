"""/v1/usage (TailorML extension, in the shape of OpenAI's usage API) for the caller's tenant;
/admin/usage and /admin/tenants/{tenant}/quotas for the operator."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from tailorml.errors import InvalidRequestError
from tailorml.platform import auth
from tailorml.platform import quotas as service
from tailorml.platform.api.deps import AdminDep, ReadSessionDep, SessionDep, StateDep, TenantDep
from tailorml.platform.usage_reports import usage_page, usage_report

router = APIRouter(prefix="/v1", tags=["usage"])
admin_router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/usage")
def get_usage(
    session: ReadSessionDep,
    tenant_id: TenantDep,
    start_time: int = Query(description="Unix seconds; the first bucket holds it."),
    end_time: int | None = Query(None, description="Unix seconds, exclusive; defaults to now."),
    bucket_width: str = Query("1d", description="1m, 1h or 1d."),
    group_by: list[str] = Query([], description="'model' for one result per model."),
    limit: int | None = None,
    page: str | None = None,
) -> dict[str, Any]:
    unknown = [g for g in group_by if g != "model"]
    if unknown:
        raise InvalidRequestError(
            f"group_by may only be 'model' here; got {unknown[0][:32]!r}.", param="group_by"
        )
    return usage_page(
        session,
        tenant_id=tenant_id,
        start_time=start_time,
        end_time=end_time,
        bucket_width=bucket_width,
        group_by_model="model" in group_by,
        limit=limit,
        page=page,
    )


@admin_router.get("/usage")
def admin_usage(
    session: ReadSessionDep,
    _: AdminDep,
    start_time: int = Query(description="Unix seconds."),
    end_time: int | None = None,
    tenant: str | None = Query(None, description="A tenant's name or id; all tenants if left out."),
) -> dict[str, Any]:
    row = auth.get_tenant(session, name_or_id=tenant) if tenant else None
    return usage_report(session, tenant=row, start_time=start_time, end_time=end_time)


class QuotaSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(description=f"One of {', '.join(service.METRICS)}.")
    limit: float = Field(description="Units per period; 0 blocks the metric (hard quotas).")
    period: Literal["minute", "day", "month", "total"] = "month"
    kind: Literal["hard", "rate"] = "hard"


@admin_router.post("/tenants/{tenant}/quotas")
def set_quota(
    tenant: str, body: QuotaSet, session: SessionDep, state: StateDep, _: AdminDep
) -> dict[str, Any]:
    row = auth.get_tenant(session, name_or_id=tenant)
    quota = service.set_quota(
        session,
        tenant=row,
        metric=body.metric,
        limit=body.limit,
        period=body.period,
        kind=body.kind,
    )
    obj = service.quota_object(quota, row.name)
    session.commit()  # before forgetting, so this process's next read sees it
    state.quotas.forget(row.id)  # applies here now, in other processes within the cache time
    return obj


@admin_router.get("/tenants/{tenant}/quotas")
def list_quotas(tenant: str, session: ReadSessionDep, _: AdminDep) -> dict[str, Any]:
    row = auth.get_tenant(session, name_or_id=tenant)
    data = [
        service.quota_object(q, row.name) for q in service.list_quotas(session, tenant_id=row.id)
    ]
    return {"object": "list", "data": data}


@admin_router.delete("/tenants/{tenant}/quotas")
def clear_quotas(
    tenant: str,
    session: SessionDep,
    state: StateDep,
    _: AdminDep,
    metric: str | None = None,
    period: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    row = auth.get_tenant(session, name_or_id=tenant)
    removed = service.clear_quotas(
        session, tenant_id=row.id, metric=metric, period=period, kind=kind
    )
    session.commit()
    state.quotas.forget(row.id)
    return {"object": "tailorml.quota.deleted", "tenant": row.name, "deleted": removed}
