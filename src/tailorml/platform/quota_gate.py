"""The quota gate: hard quotas and rate limits checked for a request before its body is read.

``admit`` runs in the request guard right after the key check (see ``platform/quotas.py`` for
what is checked and how exact it is). A tenant with no quotas costs a dictionary lookup; its
quotas are re-read every ``cache_seconds``, so a quota set through another process applies
that much later (at once in the process that set it).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailorml.errors import QuotaExceededError, RateLimitError, TokenRateLimitError
from tailorml.platform.auth import Principal
from tailorml.platform.db.engine import read_scope
from tailorml.platform.db.models import TenantQuota
from tailorml.platform.quotas import (
    HARD_CHECKS,
    METRICS,
    RATE_CHECKED,
    RATE_WINDOWS,
    STORAGE_CHANGES,
    Quota,
    format_duration,
    format_number,
    iso_minute,
    period_end,
    period_start,
    ratelimit_headers,
    used_of,
)
from tailorml.platform.ratelimit import RateDecision, RateLimiter, RefusalCache
from tailorml.platform.usage import Counts, UsageRecorder, latest_storage, totals_since


class QuotaGate:
    """Enforces the tenants' quotas for the request guard; charges tokens after the fact."""

    def __init__(
        self,
        read_sessions: sessionmaker[Session],
        *,
        limiter: RateLimiter,
        recorder: UsageRecorder,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.read_sessions = read_sessions
        self.limiter = limiter
        self.recorder = recorder
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.refusals = RefusalCache()
        # The serving engine's per-tenant concurrency check, once this process has an engine
        # (``AppState.serving`` sets it): refuses before the body is read.
        self.engine_check: Callable[[str], None] | None = None
        self._quotas: dict[str, tuple[float, tuple[Quota, ...]]] = {}
        self._totals: dict[tuple[str, float], tuple[float, Counts, int]] = {}
        self._lock = threading.Lock()

    # -- what applies -------------------------------------------------------------------

    @staticmethod
    def applies(method: str, path: str) -> bool:
        """Whether ``admit`` has anything to check for this request (no I/O)."""
        return (method, path.rstrip("/")) in HARD_CHECKS

    def quotas_for(self, tenant_id: str) -> tuple[Quota, ...]:
        now = time.monotonic()
        with self._lock:
            cached = self._quotas.get(tenant_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        with read_scope(self.read_sessions) as session:
            rows = session.scalars(select(TenantQuota).where(TenantQuota.tenant_id == tenant_id))
            quotas = tuple(sorted(Quota(r.metric, r.period, r.kind, float(r.limit)) for r in rows))
        with self._lock:
            self._quotas[tenant_id] = (now, quotas)
        if cached is not None and cached[1] != quotas:
            self.refusals.forget(tenant_id + ":")  # a raised limit may let it in now
        return quotas

    def concurrency_limit(self, tenant_id: str) -> int | None:
        """The operator's bound on the tenant's inference requests in flight, if any (read
        through the same cache as the other quotas; the engine's admission control asks)."""
        for quota in self.quotas_for(tenant_id):
            if quota.metric == "concurrent_requests":
                return max(1, int(quota.limit))
        return None

    def forget(self, tenant_id: str) -> None:
        """Drop what this process remembers of the tenant (its quotas changed here)."""
        with self._lock:
            self._quotas.pop(tenant_id, None)
            for key in [k for k in self._totals if k[0] == tenant_id]:
                del self._totals[key]
        self.refusals.forget(tenant_id + ":")

    def _totals_for(self, tenant_id: str, since: float) -> tuple[Counts, int]:
        """Written use since ``since`` plus what this process has not written yet; storage."""
        now = time.monotonic()
        with self._lock:
            cached = self._totals.get((tenant_id, since))
        if cached is None or now - cached[0] >= self.cache_seconds:
            with read_scope(self.read_sessions) as session:
                counts = totals_since(session, tenant_id=tenant_id, since=since)
                storage = latest_storage(session, tenant_id=tenant_id)
            cached = (now, counts, storage)
            with self._lock:
                self._totals[(tenant_id, since)] = cached
        total = Counts()
        total.add(cached[1])
        total.add(self.recorder.pending(tenant_id, since=since))
        return total, cached[2]

    # -- the checks ---------------------------------------------------------------------

    def admit(
        self, principal: Principal, method: str, path: str, declared: int | None
    ) -> dict[str, str]:
        """Refuse (429) a request over one of its tenant's quotas; the headers for its answer."""
        tenant_id = principal.tenant_id
        checks = HARD_CHECKS.get((method, path.rstrip("/")))
        if tenant_id is None or checks is None:
            return {}
        if self.engine_check is not None and (method, path.rstrip("/")) in RATE_CHECKED:
            self.engine_check(tenant_id)  # over its concurrency bound: 429 before the body
        quotas = [q for q in self.quotas_for(tenant_id) if q.metric in checks]
        if not quotas:
            return {}
        now = self.clock()
        tenant = principal.tenant_name or tenant_id
        for quota in quotas:
            if quota.kind == "hard":
                self._check_hard(tenant_id, tenant, quota, now, declared=declared)
        headers: dict[str, str] = {}
        rated = (method, path.rstrip("/")) in RATE_CHECKED
        rates = [q for q in quotas if q.kind == "rate" and rated]
        # Tokens first: a refusal for tokens must not take a request from the request bucket.
        tokens = [
            self._rate(tenant_id, tenant, q, now, acquire=False)
            for q in rates
            if q.metric == "tokens"
        ]
        requests = [
            self._rate(tenant_id, tenant, q, now, acquire=True)
            for q in rates
            if q.metric == "requests"
        ]
        for kind, decisions in (("tokens", tokens), ("requests", requests)):
            if decisions:
                headers.update(ratelimit_headers(kind, min(decisions, key=lambda d: d.remaining)))
        return headers

    def _check_hard(
        self, tenant_id: str, tenant: str, quota: Quota, now: float, *, declared: int | None
    ) -> None:
        since = period_start(quota.period, now)
        counts, storage = self._totals_for(tenant_id, since)
        used = used_of(quota.metric, counts, storage)
        adds = 1.0 if quota.metric == "requests" else 0.0
        if quota.metric == "storage_bytes" and declared:
            adds = float(declared)  # an upload's size, envelope included
        if used + adds <= quota.limit and (adds or used < quota.limit):
            return
        unit = METRICS[quota.metric][0]
        end = period_end(quota.period, now)
        when = f"since {iso_minute(since)}" if quota.period != "total" else "in total"
        resets = f" It resets at {iso_minute(end)}." if end is not None else ""
        upload = (
            f" (this upload adds {format_number(adds)})"
            if quota.metric == "storage_bytes" and adds
            else ""
        )
        raise QuotaExceededError(
            f"You exceeded your quota of {format_number(quota.limit)} {unit} per {quota.period}: "
            f"{format_number(used)} used {when}{upload}.{resets} Retrying will not help until the "
            f"operator raises it (`tailor admin quota set {tenant} {quota.metric} LIMIT "
            f"--period {quota.period}`)."
            if quota.period != "total"
            else f"You exceeded your quota of {format_number(quota.limit)} {unit}: {format_number(used)} "
            f"used {when}{upload}. Retrying will not help until the operator raises it "
            f"(`tailor admin quota set {tenant} {quota.metric} LIMIT --period total`)."
        )

    def _rate(
        self, tenant_id: str, tenant: str, quota: Quota, now: float, *, acquire: bool
    ) -> RateDecision:
        key = f"{tenant_id}:{quota.metric}:{quota.period}"
        window = RATE_WINDOWS[quota.period]
        decision = self.refusals.get(key, now)
        if decision is None:
            if acquire:
                decision = self.limiter.acquire(
                    key, limit=quota.limit, window=window, cost=1.0, now=now
                )
            else:
                decision = self.limiter.peek(key, limit=quota.limit, window=window, now=now)
            if not decision.allowed:
                self.refusals.put(key, now, decision)
        if decision.allowed:
            return decision
        kind = "requests" if quota.metric == "requests" else "tokens"
        error = RateLimitError if kind == "requests" else TokenRateLimitError
        raise error(
            f"Rate limit reached for {quota.metric} per {quota.period}: limit "
            f"{format_number(quota.limit)}, remaining {int(decision.remaining)}. Please try again in "
            f"{format_duration(decision.retry_after)}, or ask the operator to raise it "
            f"(`tailor admin quota set {tenant} {quota.metric} LIMIT --period {quota.period} "
            "--kind rate`).",
            retry_after=float(math.ceil(decision.retry_after)),
            headers=ratelimit_headers(kind, decision),
        )

    # -- after the request -------------------------------------------------------------

    def done(self, principal: Principal, method: str, path: str, status: int) -> None:
        """After an answer: a successful upload or deletion changes the tenant's storage."""
        if principal.tenant_id is None or status >= 400:
            return
        if any(
            method == m and (path == p or (p.endswith("/") and path.startswith(p)))
            for m, p in STORAGE_CHANGES
        ):
            self.recorder.touch_storage(principal.tenant_id)

    def charge_tokens(self, by_tenant: dict[str, Counts]) -> None:
        """The recorder wrote these tenants' use: charge their tokens to token rate limits and
        read their totals afresh next time."""
        now = self.clock()
        with self._lock:
            for key in [k for k in self._totals if k[0] in by_tenant]:
                del self._totals[key]
        for tenant_id, counts in by_tenant.items():
            if not counts.tokens:
                continue
            for quota in self.quotas_for(tenant_id):
                if quota.metric == "tokens" and quota.kind == "rate":
                    self.limiter.spend(
                        f"{tenant_id}:tokens:{quota.period}",
                        limit=quota.limit,
                        window=RATE_WINDOWS[quota.period],
                        amount=float(counts.tokens),
                        now=now,
                    )
