"""The job queue is the ``jobs`` table.

A worker claims a job with an update only one worker can win: on
PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` inside the claiming
transaction; on SQLite the transaction starts with ``BEGIN IMMEDIATE``
(see ``db/engine.py``), which serializes writers, so the select-then-update
is atomic. The claim sets a lease; the worker renews it with heartbeats.
A running job whose lease expired (its worker died) is claimed again and
resumes from its last checkpoint. This is the pattern of Oban,
solid_queue and procrastinate, chosen because it needs no extra server and
never loses or duplicates a job whose worker is killed.

The claim is fair between tenants: it serves the tenant with the fewest
running jobs, then the one whose last claim is oldest, and only then looks
at priority and age, so one tenant's 200 queued jobs cannot make another
tenant's job wait behind all of them. Each tenant may hold at most
``max_active_jobs_per_tenant`` active jobs (``check_capacity``), which also
bounds the work a claim looks at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from tailorml.errors import ConflictError, RateLimitError
from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Job, JobEvent, Tenant, now

ACTIVE = ("validating_files", "queued", "running")
FINAL = ("succeeded", "failed", "cancelled")
MAX_ATTEMPTS = 3
# A hint for clients refused by the active-job cap: jobs take minutes, so
# asking again much sooner than this cannot succeed and only adds load.
CAPACITY_RETRY_AFTER_SECONDS = 30.0


@dataclass(frozen=True)
class Claim:
    job_id: str
    kind: str
    tenant_id: str
    spec: dict[str, Any]
    attempt: int


def add_event(
    session: Session,
    job_id: str,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> None:
    session.add(JobEvent(job_id=job_id, message=message, level=level, type=type, data=data))


def check_capacity(session: Session, *, tenant_id: str, limit: int) -> None:
    """Refuse a new job (429) when the tenant already has ``limit`` active jobs of any kind.

    Call it inside the transaction that adds the job. On PostgreSQL the
    tenant's row is locked until that transaction ends, so two concurrent
    requests cannot both see room for one more job; on SQLite every
    transaction already starts with ``BEGIN IMMEDIATE``, which serializes
    them the same way.
    """
    # NO KEY UPDATE: serializes job creation for the tenant without blocking inserts that
    # merely reference the tenant row (file uploads take KEY SHARE for their foreign key).
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.tenant_id == tenant_id, Job.status.in_(ACTIVE))
    )
    if (active or 0) >= limit:
        raise RateLimitError(
            f"You have {active} active jobs (validating, queued or running); the limit is "
            f"{limit} per organization. Wait for some to finish, or cancel some "
            "(POST /v1/fine_tuning/jobs/{id}/cancel), then try again.",
            code="too_many_active_jobs",
            retry_after=CAPACITY_RETRY_AFTER_SECONDS,
        )


def request_cancel(session: Session, job: Job) -> Job:
    """Cancel an active job of any kind; the caller has already checked that the tenant owns it.

    A job that has not started ends as ``cancelled`` at once and is never
    claimed; a running one gets ``cancel_requested``, which its worker's
    heartbeat turns into a stop (the worker then records ``cancelled``).
    The row is locked first so a worker claiming the job at this very
    moment is either seen as running or never gets it.
    """
    locked = session.scalars(
        select(Job)
        .where(Job.id == job.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if locked.status not in ACTIVE:
        raise ConflictError(
            f"Job {locked.id} has already {locked.status}; only validating, queued or running "
            "jobs can be cancelled.",
            code="job_not_active",
        )
    if locked.cancel_requested and locked.status == "running":
        return locked  # asked twice: the first request is already being honoured
    locked.cancel_requested = True
    if locked.status == "running":
        add_event(session, locked.id, "Cancellation requested; the job stops at its next check.")
    else:
        locked.status = "cancelled"
        locked.finished_at = now()
        locked.lease_owner = None
        locked.lease_expires_at = None
        add_event(session, locked.id, "Job cancelled before it started.")
    return locked


def _reap_expired(session: Session, t: float) -> None:
    """Settle expired jobs that must not run again: cancelled ones and ones out of attempts."""
    expired = and_(Job.status == "running", Job.lease_expires_at < t)
    for job in session.scalars(
        select(Job).where(expired, or_(Job.cancel_requested, Job.attempts >= MAX_ATTEMPTS))
    ):
        if job.cancel_requested:
            job.status = "cancelled"
            add_event(session, job.id, "Job cancelled (its worker stopped before finishing).")
        else:
            job.status = "failed"
            job.error = {
                "code": "worker_lost",
                "message": f"The job's worker stopped {job.attempts} times; giving up.",
                "param": None,
            }
            add_event(session, job.id, job.error["message"], level="error")
        job.finished_at = now()
        job.lease_owner = None


def _runnable(t: float, kinds: list[str] | None) -> ColumnElement[bool]:
    """Queued jobs, and running ones whose worker stopped renewing the lease."""
    condition = and_(
        or_(Job.status == "queued", and_(Job.status == "running", Job.lease_expires_at < t)),
        Job.cancel_requested.is_(False),
    )
    return and_(condition, Job.kind.in_(kinds)) if kinds else condition


def _tenants_in_turn(session: Session, t: float, kinds: list[str] | None) -> list[str]:
    """Tenants with runnable work, the one whose turn it is first.

    Fewest running jobs first (a tenant already being served waits for one
    that is not), then the oldest last claim (round-robin among equals; a
    tenant never served counts as oldest), then the best priority and the
    oldest job waiting. Both per-tenant figures are index lookups on
    ``(tenant_id, status)`` and ``(tenant_id, claimed_at)``.
    """
    waiting = (
        select(
            Job.tenant_id.label("tenant_id"),
            func.max(Job.priority).label("top_priority"),
            func.min(Job.created_at).label("oldest"),
        )
        .where(
            _runnable(t, kinds),
            # A disabled tenant's jobs wait until an operator enables it again.
            Job.tenant_id.not_in(select(Tenant.id).where(Tenant.disabled_at.is_not(None))),
        )
        .group_by(Job.tenant_id)
        .subquery()
    )
    other = aliased(Job)
    running = (
        select(func.count())
        .select_from(other)
        .where(
            other.tenant_id == waiting.c.tenant_id,
            other.status == "running",
            other.lease_expires_at >= t,
        )
        .correlate(waiting)
        .scalar_subquery()
    )
    last_claim = (
        select(func.max(other.claimed_at))
        .where(other.tenant_id == waiting.c.tenant_id)
        .correlate(waiting)
        .scalar_subquery()
    )
    query = select(waiting.c.tenant_id).order_by(
        running,
        func.coalesce(last_claim, 0.0),
        waiting.c.top_priority.desc(),
        waiting.c.oldest,
        waiting.c.tenant_id,
    )
    return list(session.scalars(query))


def _next_job(session: Session, tenant_id: str, t: float, kinds: list[str] | None) -> Job | None:
    """The tenant's best runnable job, locked for this claim (None when all are taken)."""
    query = (
        select(Job)
        .where(Job.tenant_id == tenant_id, _runnable(t, kinds))
        .order_by(Job.priority.desc(), Job.created_at, Job.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Another worker claiming the same row skips it and takes the next one.
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def claim(
    factory: sessionmaker[Session],
    *,
    worker_id: str,
    lease_seconds: float,
    kinds: list[str] | None = None,
) -> Claim | None:
    """Claim the next runnable job, fairly between tenants, or return None when there is none."""
    t = time.time()
    with session_scope(factory) as session:
        _reap_expired(session, t)
        job = None
        for tenant_id in _tenants_in_turn(session, t, kinds):
            job = _next_job(session, tenant_id, t, kinds)
            if job is not None:
                break
        if job is None:
            return None
        resumed = job.status == "running"
        job.status = "running"
        job.lease_owner = worker_id
        job.lease_expires_at = t + lease_seconds
        job.claimed_at = t
        job.attempts += 1
        job.started_at = job.started_at or now()
        add_event(
            session,
            job.id,
            f"Job restarted by worker {worker_id} after its previous worker stopped (attempt {job.attempts})."
            if resumed
            else f"Job started by worker {worker_id}.",
        )
        return Claim(job.id, job.kind, job.tenant_id, dict(job.spec), job.attempts)


def renew(
    factory: sessionmaker[Session], *, job_id: str, worker_id: str, lease_seconds: float
) -> tuple[bool, bool]:
    """Extend the lease; return ``(still_owner, cancel_requested)``."""
    with session_scope(factory) as session:
        res = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == "running")
            .values(lease_expires_at=time.time() + lease_seconds)
        )
        owner = res.rowcount == 1  # type: ignore[attr-defined]
        cancel = bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
        return owner, cancel


def release(factory: sessionmaker[Session], *, job_id: str, worker_id: str) -> None:
    """Give a running job back to the queue at once (its worker is shutting down)."""
    with session_scope(factory) as session:
        res = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == "running")
            .values(lease_expires_at=0.0)
        )
        if res.rowcount == 1:  # type: ignore[attr-defined]
            add_event(
                session, job_id, f"Worker {worker_id} stopped; the job will resume elsewhere."
            )


def release_owner(factory: sessionmaker[Session], *, worker_id: str) -> list[str]:
    """Give back every running job of a worker known to be dead (its supervisor reaped it).

    Its lease would expire on its own; a supervisor that saw the process exit
    hands the job back at once so a restarted worker resumes it without waiting.
    """
    with session_scope(factory) as session:
        ids = list(
            session.scalars(
                select(Job.id).where(Job.lease_owner == worker_id, Job.status == "running")
            )
        )
        for job_id in ids:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == "running")
                .values(lease_expires_at=0.0)
            )
            add_event(
                session, job_id, f"Worker {worker_id} died; the job will resume on another worker."
            )
        return ids


def live_workers(factory: sessionmaker[Session]) -> int:
    """Workers holding an unexpired lease now: the busy workers the database can see."""
    with session_scope(factory) as session:
        count = session.scalar(
            select(func.count(func.distinct(Job.lease_owner))).where(
                Job.status == "running", Job.lease_expires_at >= time.time()
            )
        )
        return int(count or 0)


def finish(
    factory: sessionmaker[Session],
    *,
    job_id: str,
    worker_id: str,
    status: str,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    message: str | None = None,
) -> bool:
    """Move a job this worker still owns to a final state; False when the lease was lost."""
    assert status in FINAL
    with session_scope(factory) as session:
        job = session.scalar(
            select(Job).where(
                Job.id == job_id, Job.lease_owner == worker_id, Job.status == "running"
            )
        )
        if job is None:
            return False
        job.status = status
        job.result = result if result is not None else job.result
        job.error = error
        job.finished_at = now()
        job.lease_owner = None
        job.lease_expires_at = None
        if message:
            add_event(session, job_id, message, level="error" if status == "failed" else "info")
        return True
