"""The one query helper that enforces the tenant on every read.

Another tenant's object answers exactly like a missing one (404 with the
same message), so ids cannot be probed across tenants.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tailorml.errors import NotFoundError
from tailorml.platform.db.models import File, Job, Model

# Every tenant-owned table; a new one is added here so the helpers type-check for it.
Owned = TypeVar("Owned", File, Job, Model)


def get_owned(
    session: Session,
    model: type[Owned],
    object_id: str,
    *,
    tenant_id: str,
    what: str,
    param: str | None = None,
) -> Owned:
    obj = session.get(model, object_id)
    if obj is None or obj.tenant_id != tenant_id:
        raise _not_found(object_id, what, param)
    return obj


def get_owned_job(
    session: Session,
    job_id: str,
    *,
    tenant_id: str,
    kind: str,
    what: str,
    param: str | None = None,
) -> Job:
    """The tenant's job of one ``kind``; a job of another kind answers like a missing one.

    Jobs of every kind share one table and one id space, so a route for
    fine-tuning jobs must not serve (or fail on) a dataset's row.
    """
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id or job.kind != kind:
        raise _not_found(job_id, what, param)
    return job


def _not_found(object_id: str, what: str, param: str | None) -> NotFoundError:
    return NotFoundError(
        f"No such {what}: {object_id!r}.",
        param=param,
        code=f"{what.replace(' ', '_').replace('-', '_')}_not_found",
    )


def owned(model: type[Owned], *, tenant_id: str) -> Select[Owned]:
    """``SELECT model WHERE tenant_id = ...``: the start of every tenant list query."""
    return select(model).where(model.tenant_id == tenant_id)
