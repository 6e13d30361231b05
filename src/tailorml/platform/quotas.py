"""Quotas per tenant, set by the operator, and the gate that enforces them before any work.

A quota is (metric, period, kind, limit). ``hard`` quotas cap use over a calendar period
(UTC minute, day, month, or all time); over one, a request answers 429 ``insufficient_quota``
without ``Retry-After``: retrying does not help until the operator raises it or the period
ends. ``rate`` quotas (requests or tokens per minute or day) are enforced by the shared rate
limiter (``platform/ratelimit.py``); over one, 429 ``rate_limit_exceeded`` with
``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers, which successful answers carry too.

The request guard calls ``QuotaGate.admit`` right after the key check, before a body byte is
read, so a tenant far over its quota is refused for the price of a key check; a refusal is
remembered until it can change (``RefusalCache``) and a tenant's quotas and totals are read
at most every ``TAILOR_QUOTA_CACHE_SECONDS`` per process. Hard quotas are therefore exact
within a process and, across processes, late by at most that long plus one usage flush;
request rate limits are exact everywhere. Tokens are known only after a request: the gate
lets a request in while a token bucket has room and charges the tokens when they are written
(``UsageRecorder.after_flush``), so a tenant over its token rate waits the debt off.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tailorml.errors import InvalidRequestError
from tailorml.platform.db.models import Tenant, TenantQuota
from tailorml.platform.key_scopes import INFERENCE_PATHS
from tailorml.platform.ratelimit import RateDecision
from tailorml.platform.usage import Counts

# metric -> (unit, the quota kinds it may have)
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "requests": ("requests", ("hard", "rate")),
    "tokens": ("tokens", ("hard", "rate")),  # prompt plus completion tokens
    "prompt_tokens": ("prompt tokens", ("hard",)),
    "completion_tokens": ("completion tokens", ("hard",)),
    "training_tokens": ("training tokens", ("hard",)),
    "compute_seconds": ("compute seconds", ("hard",)),
    "storage_bytes": ("bytes stored", ("hard",)),
    # Inference requests in flight at once, enforced by the serving engine's admission
    # control (serve/admission.py): over it, a fast 429 rate_limit_exceeded with Retry-After.
    "concurrent_requests": ("requests in flight", ("hard",)),
}
PERIODS = ("minute", "day", "month", "total")
RATE_WINDOWS = {"minute": 60.0, "day": 86400.0}
MAX_LIMIT = 1e15
_INFERENCE_HARD = ("requests", "tokens", "prompt_tokens", "completion_tokens")
# (method, path) -> the hard quotas checked before it; storage and compute grow with these.
HARD_CHECKS: dict[tuple[str, str], tuple[str, ...]] = {
    **{("POST", p): _INFERENCE_HARD for p in INFERENCE_PATHS},
    ("POST", "/v1/fine_tuning/jobs"): ("training_tokens", "compute_seconds", "storage_bytes"),
    ("POST", "/v1/datasets"): ("compute_seconds", "storage_bytes"),
    ("POST", "/v1/files"): ("storage_bytes",),
    # A batch's answers use tokens: refused at creation once a hard quota is used up.
    ("POST", "/v1/batches"): (*_INFERENCE_HARD[1:], "compute_seconds"),
}
# Rate limits count calls of the inference routes only.
RATE_CHECKED = frozenset(("POST", p) for p in INFERENCE_PATHS)
# Answers after which the tenant's storage is measured again.
STORAGE_CHANGES = (("POST", "/v1/files"), ("DELETE", "/v1/files/"), ("DELETE", "/v1/datasets/"))


@dataclass(frozen=True, order=True)
class Quota:
    metric: str
    period: str
    kind: str
    limit: float


def check_quota(*, metric: str, period: str, kind: str, limit: float) -> None:
    """Refuse (400, every problem at once) a quota that cannot be enforced as asked."""
    problems: list[tuple[str, str]] = []
    if metric not in METRICS:
        problems.append(("metric", f"metric must be one of {', '.join(METRICS)}"))
    if kind not in ("hard", "rate"):
        problems.append(("kind", "kind must be 'hard' or 'rate'"))
    if period not in PERIODS:
        problems.append(("period", f"period must be one of {', '.join(PERIODS)}"))
    if not problems:
        if kind not in METRICS[metric][1]:
            problems.append(("kind", f"{metric} has hard quotas only; leave out kind=rate"))
        elif kind == "rate" and period not in RATE_WINDOWS:
            problems.append(("period", "a rate quota is per minute or per day"))
        elif metric == "storage_bytes" and period != "total":
            problems.append(("period", "storage_bytes is what is stored now: use period total"))
        elif metric == "concurrent_requests" and (period != "total" or limit < 1):
            problems.append(("period", "concurrent_requests is a bound at every moment: use "
                             "period total and a limit of at least 1"))  # fmt: skip
    if not (math.isfinite(limit) and 0 <= limit <= MAX_LIMIT) or (kind == "rate" and limit < 1):
        problems.append(("limit", f"limit must be a number from {int(kind == 'rate')} to 1e15"))
    if problems:
        raise InvalidRequestError(
            "Invalid quota: " + "; ".join(why for _p, why in problems) + ".",
            param=problems[0][0],
        )


def set_quota(
    session: Session, *, tenant: Tenant, metric: str, limit: float, period: str, kind: str
) -> TenantQuota:
    """Create or change the tenant's quota on (metric, period, kind)."""
    check_quota(metric=metric, period=period, kind=kind, limit=limit)
    row = session.scalar(
        select(TenantQuota).where(
            TenantQuota.tenant_id == tenant.id,
            TenantQuota.metric == metric,
            TenantQuota.period == period,
            TenantQuota.kind == kind,
        )
    )
    if row is None:
        row = TenantQuota(tenant_id=tenant.id, metric=metric, period=period, kind=kind)
        session.add(row)
    row.limit = float(limit)
    session.flush()
    return row


def list_quotas(session: Session, *, tenant_id: str | None = None) -> list[TenantQuota]:
    query = select(TenantQuota).order_by(
        TenantQuota.tenant_id, TenantQuota.metric, TenantQuota.period, TenantQuota.kind
    )
    if tenant_id is not None:
        query = query.where(TenantQuota.tenant_id == tenant_id)
    return list(session.scalars(query))


def clear_quotas(
    session: Session,
    *,
    tenant_id: str,
    metric: str | None = None,
    period: str | None = None,
    kind: str | None = None,
) -> int:
    """Remove the tenant's quotas (those matching what is given); how many were removed."""
    stmt = delete(TenantQuota).where(TenantQuota.tenant_id == tenant_id)
    for column, value in (
        (TenantQuota.metric, metric),
        (TenantQuota.period, period),
        (TenantQuota.kind, kind),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def quota_object(row: TenantQuota, tenant_name: str | None = None) -> dict[str, object]:
    limit = int(row.limit) if float(row.limit).is_integer() else row.limit
    return {
        "object": "tailorml.quota",
        "id": row.id,
        "tenant_id": row.tenant_id,
        "tenant": tenant_name,
        "metric": row.metric,
        "period": row.period,
        "kind": row.kind,
        "limit": limit,
        "created_at": row.created_at,
    }


def period_start(period: str, now: float) -> float:
    """The start of the calendar period (UTC) holding ``now``; 0 for ``total``."""
    if period == "minute":
        return math.floor(now / 60) * 60.0
    if period == "day":
        return math.floor(now / 86400) * 86400.0
    if period == "month":
        t = datetime.fromtimestamp(now, UTC)
        return float(calendar.timegm((t.year, t.month, 1, 0, 0, 0)))
    return 0.0


def period_end(period: str, now: float) -> float | None:
    if period == "minute":
        return period_start(period, now) + 60
    if period == "day":
        return period_start(period, now) + 86400
    if period == "month":
        t = datetime.fromtimestamp(now, UTC)
        year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
        return float(calendar.timegm((year, month, 1, 0, 0, 0)))
    return None


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: ``20ms``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    tenths = math.ceil(seconds * 10) / 10
    if tenths < 60:
        return f"{tenths:g}s"
    minutes, secs = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{secs}s"


def format_number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def iso_minute(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def used_of(metric: str, counts: Counts, storage: int) -> float:
    if metric == "storage_bytes":
        return float(storage)
    if metric == "tokens":
        return float(counts.tokens)
    return float(getattr(counts, metric))


def ratelimit_headers(kind: str, decision: RateDecision) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(int(decision.limit)),
        f"x-ratelimit-remaining-{kind}": str(int(decision.remaining)),
        f"x-ratelimit-reset-{kind}": format_duration(decision.reset_seconds),
    }
