"""Admission control: bounded work per model and per tenant, refused fast when over.

Every engine request takes a ticket before it touches a model and gives it
back when its answer ends (a stream: when it finishes, fails or its client
goes away). Two bounds apply:

- per model (the loaded base's folder name): at most ``max_queue``
  requests in flight, running or waiting, so a backlog cannot grow
  without end and every admitted request is answered in bounded time;
- per tenant: at most ``tenant_concurrency`` requests in flight across the
  engine (an operator may set another bound per tenant), so one tenant's
  flood fills its own share and not the model's queue.

Over either bound the request is refused at once with OpenAI's 429
``rate_limit_exceeded`` and a ``Retry-After`` estimated from how long
requests on that model have been taking, before any tokenizing or model
work. Fair ordering between admitted requests is the schedulers' job
(``batching.py`` and ``encoder_batching.py`` take the tenant with the
fewest rows running first).

Why hand-written: this is a pair of counters under a lock, checked in the
engine process that owns the models; rate limits over time windows and
across API processes are the platform's (Redis or the database).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from tailorml.errors import RateLimitError

# Weight of the newest request's duration in the running estimate behind Retry-After.
_EWMA = 0.2


@dataclass(frozen=True)
class AdmissionStats:
    """Requests in flight now, and how many were refused since start, by reason."""

    in_flight: dict[str, int]  # by model
    by_tenant: dict[str, int]
    rejected: dict[str, int]  # "model_queue" / "tenant_concurrency"


class Rejected(RateLimitError):
    """A request refused by admission control; ``reason`` is which bound it hit."""

    def __init__(self, message: str, *, reason: str, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.reason = reason  # "model_queue" or "tenant_concurrency"


class Ticket:
    """One admitted request's place; ``release`` is idempotent and thread-safe."""

    __slots__ = ("_admission", "_model", "_tenant", "_start", "_released")

    def __init__(self, admission: Admission, model: str, tenant: str | None) -> None:
        self._admission = admission
        self._model = model
        self._tenant = tenant
        self._start = time.monotonic()
        self._released = False

    @property
    def tenant(self) -> str | None:
        return self._tenant

    def release(self) -> None:
        self._admission._release(self)

    def __del__(self) -> None:  # a stream dropped before it ever started
        self.release()


class Admission:
    """Counts requests in flight per model and per tenant; refuses those over a bound."""

    def __init__(
        self,
        *,
        max_queue: int = 256,
        tenant_concurrency: int = 64,
        limit_for: Callable[[str], int | None] | None = None,
    ) -> None:
        if max_queue < 1 or tenant_concurrency < 1:
            raise ValueError("max_queue and tenant_concurrency must be at least 1")
        self.max_queue = max_queue
        self.tenant_concurrency = tenant_concurrency
        # The operator's bound for one tenant (the platform's quotas), asked outside the lock.
        self._limit_for = limit_for
        self._lock = threading.Lock()
        self._by_model: Counter[str] = Counter()
        self._by_tenant: Counter[str] = Counter()
        self._tenant_limits: dict[str, int] = {}
        self._seconds: dict[str, float] = {}  # running mean of request durations, per model
        self._rejected: Counter[str] = Counter()

    def set_tenant_limit(self, tenant: str, limit: int | None) -> None:
        """Bound ``tenant``'s requests in flight to ``limit`` (None: the default)."""
        if limit is not None and limit < 1:
            raise ValueError("a tenant's concurrency limit must be at least 1")
        with self._lock:
            if limit is None:
                self._tenant_limits.pop(tenant, None)
            else:
                self._tenant_limits[tenant] = limit

    def tenant_limit(self, tenant: str) -> int:
        """The tenant's bound: set here, else the operator's (``limit_for``), else the default."""
        if tenant in self._tenant_limits:
            return self._tenant_limits[tenant]
        if self._limit_for is not None:
            limit = self._limit_for(tenant)
            if limit is not None:
                return limit
        return self.tenant_concurrency

    def enter(self, model: str, tenant: str | None) -> Ticket:
        """A ticket for one request on ``model`` by ``tenant``, or ``RateLimitError``."""
        limit = self.tenant_limit(tenant) if tenant is not None else 0
        with self._lock:
            if self._by_model[model] >= self.max_queue:
                self._rejected["model_queue"] += 1
                raise Rejected(
                    f"Model {model} has {self.max_queue} requests in flight, its queue's "
                    "limit; retry after the time in the Retry-After header, or spread "
                    "requests over time.",
                    reason="model_queue",
                    retry_after=self._retry_after(model),
                )
            if tenant is not None:
                if self._by_tenant[tenant] >= limit:
                    self._rejected["tenant_concurrency"] += 1
                    raise Rejected(
                        f"Your organization has {limit} requests in flight, its limit on "
                        "concurrent requests; wait for some to finish (see Retry-After) or "
                        "ask the operator to raise the limit.",
                        reason="tenant_concurrency",
                        retry_after=self._retry_after(model),
                    )
                self._by_tenant[tenant] += 1
            self._by_model[model] += 1
        return Ticket(self, model, tenant)

    def check_tenant(self, tenant: str) -> None:
        """Refuse (``Rejected``) a tenant that already has its limit in flight, taking no ticket.

        The API's request guard asks this before it reads a request's body, so a tenant
        flooding past its bound is refused without its bodies being parsed, its model
        resolved or its prompt tokenized; ``enter`` still decides for the requests let by.
        """
        limit = self.tenant_limit(tenant)
        with self._lock:
            if self._by_tenant.get(tenant, 0) < limit:
                return
            self._rejected["tenant_concurrency"] += 1
            retry_after = max((self._retry_after(m) for m in self._by_model), default=1.0)
        raise Rejected(
            f"Your organization has {limit} requests in flight, its limit on concurrent "
            "requests; wait for some to finish (see Retry-After) or ask the operator to raise "
            "the limit.",
            reason="tenant_concurrency",
            retry_after=retry_after,
        )

    def stats(self) -> AdmissionStats:
        with self._lock:
            return AdmissionStats(
                {k: v for k, v in self._by_model.items() if v},
                {k: v for k, v in self._by_tenant.items() if v},
                dict(self._rejected),
            )

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket._released:
                return
            ticket._released = True
            model, tenant = ticket._model, ticket._tenant
            self._by_model[model] -= 1
            if not self._by_model[model]:
                del self._by_model[model]
            if tenant is not None:
                self._by_tenant[tenant] -= 1
                if not self._by_tenant[tenant]:
                    del self._by_tenant[tenant]
            took = time.monotonic() - ticket._start
            mean = self._seconds.get(model)
            self._seconds[model] = took if mean is None else mean + _EWMA * (took - mean)

    def _retry_after(self, model: str) -> float:
        """About when one request on ``model`` ends: the running mean duration, 1-60 s."""
        return float(min(60, max(1, math.ceil(self._seconds.get(model, 1.0)))))
