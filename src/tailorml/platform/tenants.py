"""Deleting a tenant: everything of it, from the database and from storage, with a report.

An operator deletes a tenant when its contract ends or its customer asks
(``DELETE /admin/tenants/{tenant}``, ``tailor admin tenant delete``). Its
keys, files, jobs with their events and checkpoints, models, datasets,
batches, usage, quotas, rate counters, idempotency keys and audit chain go
from the database in one
transaction; its stored files and job folders (weights, checkpoints,
outputs) are removed once that is committed, so a crash in between leaves
bytes no id reaches, never an id without its bytes. Queued jobs are
cancelled; while one of its jobs is still running the deletion is refused
(409) after asking that job to stop, so no worker writes into a folder
being removed. The report says what was removed, for the tenant to hand
to its own customer; the deletion itself stays in the operator's audit chain.

Disabling a tenant (``set_disabled``) is the reversible step before: its keys are refused
(403 ``tenant_disabled``), its queued jobs wait, its running jobs finish.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tailorml.errors import ConflictError
from tailorml.platform import audit, idempotency
from tailorml.platform.auth import get_tenant
from tailorml.platform.db.models import (
    ApiKey,
    Checkpoint,
    File,
    Job,
    JobEvent,
    Model,
    RateCounter,
    Tenant,
    TenantQuota,
    UsageBucket,
)
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage


def delete_tenant(
    session: Session, *, name_or_id: str, settings: Settings, storage: LocalStorage
) -> tuple[dict[str, Any], list[Path]]:
    """Delete the tenant's rows; return the report and the folders to remove after commit."""
    tenant = get_tenant(session, name_or_id=name_or_id)
    jobs = list(session.scalars(select(Job).where(Job.tenant_id == tenant.id)))
    running = [j.id for j in jobs if j.status == "running"]
    if running:
        for job in jobs:
            if job.status == "running":
                job.cancel_requested = True
        session.commit()
        raise ConflictError(
            f"Tenant {tenant.name} has running jobs ({', '.join(running[:5])}); they were asked "
            "to stop. Delete the tenant again once they have stopped (seconds).",
            param="tenant",
        )
    files = list(session.scalars(select(File).where(File.tenant_id == tenant.id)))
    models = list(session.scalars(select(Model).where(Model.tenant_id == tenant.id)))
    job_ids = [j.id for j in jobs]
    removed: dict[str, Any] = {}
    report = {
        "object": "tenant.deletion",
        "tenant": tenant.name,
        "tenant_id": tenant.id,
        "deleted_at": int(time.time()),
        "removed": removed,
    }
    removed.update(
        {
            "api_keys": session.scalar(
                select(func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant.id)
            ),
            "files": len(files),
            "file_bytes": sum(f.bytes for f in files),
            "jobs": {
                kind: sum(j.kind == kind for j in jobs) for kind in sorted({j.kind for j in jobs})
            },
            "models": sorted(m.id for m in models),
        }
    )
    if job_ids:
        session.execute(delete(JobEvent).where(JobEvent.job_id.in_(job_ids)))
        session.execute(delete(Checkpoint).where(Checkpoint.job_id.in_(job_ids)))
    for table in (Model, File, ApiKey, TenantQuota, UsageBucket):
        session.execute(delete(table).where(table.tenant_id == tenant.id))
    session.execute(delete(Job).where(Job.tenant_id == tenant.id))
    idempotency.forget_tenant(session, tenant.id)
    removed["audit_events"] = audit.forget_chain(session, tenant.id)
    session.execute(delete(RateCounter).where(RateCounter.key.startswith(f"{tenant.id}:")))
    session.execute(delete(Tenant).where(Tenant.id == tenant.id))
    jobs_dir = settings.jobs_dir.resolve()
    folders = [storage.path(f"files/{tenant.id}")]
    folders += [jobs_dir / job_id for job_id in job_ids]
    for model in models:  # a model registered from a folder elsewhere is not the tenant's
        path = Path(model.path).resolve()
        if path.is_relative_to(jobs_dir) and path != jobs_dir:
            folders.append(path)
    return report, folders


def set_disabled(session: Session, *, name_or_id: str, disabled: bool) -> Tenant:
    """Disable (keys refused, queued jobs held) or enable a tenant again; idempotent."""
    tenant = get_tenant(session, name_or_id=name_or_id)
    if disabled and tenant.disabled_at is None:
        tenant.disabled_at = int(time.time())
    elif not disabled:
        tenant.disabled_at = None
    session.flush()
    return tenant
