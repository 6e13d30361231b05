"""SQLAlchemy models: tenants, API keys, files, jobs, job events, checkpoints, models, usage.

Jobs of every kind share one table, which is also the queue (see
``platform/jobs/queue.py``). Timestamps are Unix seconds, as in OpenAI's
objects.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tn_"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    # Set by an operator: the tenant's keys are refused and its queued jobs wait.
    disabled_at: Mapped[int | None] = mapped_column(Integer)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key_"))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # "tenant" or "admin"
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    revoked_at: Mapped[int | None] = mapped_column(Integer)
    # What the key may call (``platform/scopes.py``); admin keys are always "all".
    scope: Mapped[str] = mapped_column(String(16), default="all", server_default="all")
    expires_at: Mapped[int | None] = mapped_column(Integer)
    # Updated at most once a minute, in its own short transaction (see api/deps.py).
    last_used_at: Mapped[int | None] = mapped_column(Integer)


class File(Base):
    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("file-"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    status: Mapped[str] = mapped_column(String(16))  # uploaded | processed | error
    status_details: Mapped[str | None] = mapped_column(Text)
    task: Mapped[str | None] = mapped_column(String(32))
    n_records: Mapped[int | None] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(512))


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    started_at: Mapped[int | None] = mapped_column(Integer)
    finished_at: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    # Higher runs first among one tenant's jobs; fairness between tenants comes first.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When a worker last claimed the job: the queue serves the tenant whose last claim is oldest.
    claimed_at: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (
        Index("ix_jobs_claim", "status", "created_at"),
        Index("ix_jobs_tenant_status", "tenant_id", "status"),
        Index("ix_jobs_tenant_claimed", "tenant_id", "claimed_at"),
    )


class JobEvent(Base):
    __tablename__ = "job_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: new_id("ftevent-"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    level: Mapped[str] = mapped_column(String(8), default="info")
    type: Mapped[str] = mapped_column(String(16), default="message")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ftckpt-"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(512))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(Integer, default=now)


class Model(Base):
    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    base: Mapped[str] = mapped_column(String(255))
    task: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(Integer, default=now)


class UsageBucket(Base):
    """A tenant's metered use of one model in one minute, added to by upserts (``platform/usage.py``).

    ``kind`` is ``request`` (inference), ``training`` (fine-tuning jobs), ``data`` (dataset jobs)
    or ``storage``, whose ``bytes`` is a gauge (what the tenant stored at that minute) rather
    than a sum. ``model`` is "" where no model applies.
    """

    __tablename__ = "usage_buckets"
    # No foreign key: usage is a record that outlives what it counts, and one bad row must not
    # make a whole flush fail.
    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)  # Unix seconds, a multiple of 60
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    training_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    compute_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (Index("ix_usage_buckets_tenant_minute", "tenant_id", "minute"),)


class TenantQuota(Base):
    """A limit the operator set on one of a tenant's metrics (``platform/quotas.py``)."""

    __tablename__ = "tenant_quotas"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("quota_"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    metric: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))  # minute | day | month | total
    kind: Mapped[str] = mapped_column(String(8))  # hard | rate
    limit: Mapped[float] = mapped_column(Float)
    created_at: Mapped[int] = mapped_column(Integer, default=now)
    __table_args__ = (
        UniqueConstraint("tenant_id", "metric", "period", "kind", name="uq_tenant_quotas"),
    )


class RateCounter(Base):
    """The shared state of one rate limit when Redis is not configured (``platform/ratelimit.py``):
    its theoretical arrival time, in Unix seconds (GCRA)."""

    __tablename__ = "rate_counters"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tat: Mapped[float] = mapped_column(Float)


class IdempotencyKey(Base):
    """The answer to a creating request sent with an ``Idempotency-Key`` header
    (``platform/idempotency.py``), kept for a day so a retry gets the same object."""

    __tablename__ = "idempotency_keys"
    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(64))  # "POST /v1/files"
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the request's content
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(Integer, default=now, index=True)


class AuditEvent(Base):
    """One audited request in a hash chain (``platform/audit.py``); never updated."""

    __tablename__ = "audit_events"
    chain: Mapped[str] = mapped_column(String(40), primary_key=True)  # tenant id or "operator"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[int] = mapped_column(BigInteger)  # Unix milliseconds
    tenant_id: Mapped[str | None] = mapped_column(String(40))
    key_id: Mapped[str | None] = mapped_column(String(40))
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    resource: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The last event of an audit chain: the lock appends take, and the check on its tail."""

    __tablename__ = "audit_heads"
    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
