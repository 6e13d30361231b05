"""/v1/fine_tuning/jobs: create, list, retrieve, cancel, events, checkpoints, and (TailorML
extension) the evaluation report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse

from tailorml.platform import fine_tuning as service
from tailorml.platform.api.deps import ReadSessionDep, SessionDep, StateDep, TenantDep
from tailorml.platform.api.idempotent import IdempotencyKeyDep, create_once
from tailorml.platform.api.protocol import FineTuningJobCreate
from tailorml.platform.api.routes.datasets import REPORT_CSP

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])


@router.post("")
def create_job(
    body: FineTuningJobCreate,
    session: SessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    response: Response,
    idempotency_key: IdempotencyKeyDep = None,
) -> dict[str, Any]:
    content = body.model_dump(exclude_none=True)
    return create_once(
        session,
        response,
        tenant_id=tenant_id,
        key=idempotency_key,
        endpoint="POST /v1/fine_tuning/jobs",
        content=content,
        create=lambda: service.job_object(
            service.create_job(
                session,
                tenant_id=tenant_id,
                settings=state.settings,
                storage=state.storage,
                body=content,
            )
        ),
    )


@router.get("")
def list_jobs(
    session: ReadSessionDep,
    tenant_id: TenantDep,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
) -> dict[str, Any]:
    rows, more = service.list_jobs(session, tenant_id=tenant_id, after=after, limit=limit)
    return {"object": "list", "data": [service.job_object(j) for j in rows], "has_more": more}


@router.get("/{job_id}")
def retrieve_job(job_id: str, session: ReadSessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    return service.job_object(service.get_job(session, tenant_id=tenant_id, job_id=job_id))


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, session: SessionDep, tenant_id: TenantDep) -> dict[str, Any]:
    return service.job_object(service.cancel_job(session, tenant_id=tenant_id, job_id=job_id))


@router.get("/{job_id}/events")
def list_events(
    job_id: str,
    session: ReadSessionDep,
    tenant_id: TenantDep,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=1000),
) -> dict[str, Any]:
    rows, more = service.list_events(
        session, tenant_id=tenant_id, job_id=job_id, after=after, limit=limit
    )
    return {"object": "list", "data": [service.event_object(e) for e in rows], "has_more": more}


@router.get("/{job_id}/checkpoints")
def list_checkpoints(
    job_id: str, session: ReadSessionDep, tenant_id: TenantDep, limit: int = Query(10, ge=1, le=100)
) -> dict[str, Any]:
    job = service.get_job(session, tenant_id=tenant_id, job_id=job_id)
    rows = service.list_checkpoints(session, tenant_id=tenant_id, job_id=job_id, limit=limit)
    name = job.spec["fine_tuned_model"]
    data = [service.checkpoint_object(c, name) for c in rows]
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@router.get("/{job_id}/report", response_model=None)
def job_report(
    job_id: str,
    session: ReadSessionDep,
    tenant_id: TenantDep,
    format: str = Query("json", pattern="^(json|html)$"),
) -> Response:
    """The base model against the tuned one on the held-out records (JSON, or a page with
    charts for ``format=html``)."""
    job, report = service.job_report(session, tenant_id=tenant_id, job_id=job_id)
    # The page shows the tenant's records (escaped); the policy keeps any script from running
    # on the API's origin even so.
    headers = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"}
    if format == "json":
        return JSONResponse({**report, "fine_tuning_job_id": job.id}, headers=headers)
    from tailorml.eval.html import render_report_html

    history = service.metrics_history(session, job_id=job.id)
    title = (job.result or {}).get("fine_tuned_model") or job.id
    return HTMLResponse(render_report_html(report, history, title), headers=headers)
