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
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Job, JobEvent, now

ACTIVE = ("validating_files", "queued", "running")
FINAL = ("succeeded", "failed", "cancelled")
MAX_ATTEMPTS = 3


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


def claim(
    factory: sessionmaker[Session],
    *,
    worker_id: str,
    lease_seconds: float,
    kinds: list[str] | None = None,
) -> Claim | None:
    """Claim the oldest runnable job for ``worker_id``, or return None when there is none."""
    t = time.time()
    with session_scope(factory) as session:
        _reap_expired(session, t)
        runnable = or_(
            Job.status == "queued",
            and_(Job.status == "running", Job.lease_expires_at < t),
        )
        query = select(Job).where(runnable, Job.cancel_requested.is_(False))
        if kinds:
            query = query.where(Job.kind.in_(kinds))
        query = query.order_by(Job.created_at, Job.id).limit(1)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job = session.scalar(query)
        if job is None:
            return None
        resumed = job.status == "running"
        job.status = "running"
        job.lease_owner = worker_id
        job.lease_expires_at = t + lease_seconds
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
