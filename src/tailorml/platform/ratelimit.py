"""Rate limits shared by every API process: GCRA on Redis when configured, else on the database.

GCRA (the generic cell rate algorithm, a token bucket kept as one number) stores, per key,
the *theoretical arrival time* ``tat``: when the bucket would be full again. A limit of ``L``
per ``W`` seconds refills one unit every ``W / L`` seconds and holds at most ``L`` units, so a
request of cost ``n`` fits when ``max(tat, now) + n * W / L - now <= W``. One number per key
makes the check one atomic statement on either backend, and OpenAI's headers fall out of it:
``remaining`` is the room left, ``reset`` the time until the bucket is full.

Three operations:

* ``acquire`` (requests): take ``n`` units if they fit, else refuse with the wait;
* ``peek`` (tokens, before a request whose size is not known yet): is at least one unit left?
* ``spend`` (tokens, after the request): take what it used, going into debt if need be, so
  a large answer makes the tenant wait longer instead of being cut off.

A refusal is remembered in the process until its wait is over (``RefusalCache``): another
process can only take more, never give back, so nothing can fit sooner. A tenant sending four
times its limit then costs one dictionary lookup per request instead of a backend round trip.

Backends: ``RedisRateLimiter`` runs each operation as one Lua script (atomic on the server);
``DatabaseRateLimiter`` as one conditional upsert on ``rate_counters`` (SQLite and PostgreSQL),
which is a short write per admitted request, so Redis is the choice for high request rates.
The clock is the caller's (``time.time()``): hosts sharing a limit need synchronised clocks,
as the job leases already do.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from tailorml.platform.db.engine import READ_ONLY
from tailorml.platform.db.models import RateCounter

log = logging.getLogger("tailorml.ratelimit")

# How long a rate check may wait for the database's lock before letting the request through:
# refusing because the database is busy would turn contention into a storm of 429s.
SQLITE_BUSY_MS = 1000
POSTGRES_LOCK_TIMEOUT = "1s"
SQLITE_DEFAULT_BUSY_MS = 30000  # engine.py's busy timeout, restored on the pooled connection
REDIS_PREFIX = "tailorml:rl:"


@dataclass(frozen=True)
class RateDecision:
    """What one check found: whether it fits, the room left, and the waits."""

    allowed: bool
    limit: float
    remaining: float  # units left after this request (admitted) or now (refused)
    reset_seconds: float  # until the bucket is full again
    retry_after: float = 0.0  # when refused: until the request would fit


# Redis hands a counter's time back as text with six decimals, so a fresh bucket's arrival time
# can come back up to about a microsecond late: without this tolerance its "remaining" would
# floor to one less than it is (x-ratelimit-remaining said 2 of 4 on a first request).
_ROUNDING = 1e-5


def decide(
    tat: float | None, *, now: float, limit: float, window: float, cost: float
) -> tuple[RateDecision, float]:
    """The GCRA decision for a request of ``cost`` units, and the ``tat`` to store if allowed."""
    interval = window / limit
    start = max(tat or now, now)
    new = start + cost * interval
    if new - now <= window + 1e-9:
        remaining = max(0.0, (window - (new - now)) / interval)
        return RateDecision(True, limit, math.floor(remaining + _ROUNDING), new - now), new
    remaining = max(0.0, (window - (start - now)) / interval)
    return (
        RateDecision(
            False,
            limit,
            math.floor(remaining + _ROUNDING),
            start - now,
            retry_after=new - now - window,
        ),
        start,
    )


def after_admission(tat: float, *, now: float, limit: float, window: float) -> RateDecision:
    """The decision for an admitted request, from the ``tat`` the backend stored for it."""
    interval = window / limit
    remaining = max(0.0, (window - (tat - now)) / interval)
    return RateDecision(True, limit, math.floor(remaining + _ROUNDING), max(0.0, tat - now))


def debt_decision(tat: float | None, *, now: float, limit: float, window: float) -> RateDecision:
    """``peek``: allowed while at least one unit is left (the request's size is not known yet)."""
    decision, _ = decide(tat, now=now, limit=limit, window=window, cost=1.0)
    return decision


class RateLimiter(Protocol):
    def acquire(
        self, key: str, *, limit: float, window: float, cost: float, now: float
    ) -> RateDecision: ...

    def peek(self, key: str, *, limit: float, window: float, now: float) -> RateDecision: ...

    def spend(
        self, key: str, *, limit: float, window: float, amount: float, now: float
    ) -> None: ...


class RefusalCache:
    """Refusals remembered until their wait is over, so a flood is answered without I/O."""

    def __init__(self) -> None:
        self._until: dict[str, tuple[float, RateDecision]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> RateDecision | None:
        with self._lock:
            entry = self._until.get(key)
            if entry is None:
                return None
            until, decision = entry
            if now >= until:
                del self._until[key]
                return None
        left = until - now
        shift = decision.retry_after - left
        return RateDecision(
            False,
            decision.limit,
            decision.remaining,
            max(0.0, decision.reset_seconds - shift),
            left,
        )

    def put(self, key: str, now: float, decision: RateDecision) -> None:
        with self._lock:
            self._until[key] = (now + decision.retry_after, decision)

    def forget(self, prefix: str = "") -> None:
        with self._lock:
            for key in [k for k in self._until if k.startswith(prefix)]:
                del self._until[key]


class DatabaseRateLimiter:
    """GCRA counters in the ``rate_counters`` table: one conditional upsert per check."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

    def _upsert(self, key: str, *, now: float, increment: float, window: float | None) -> Any:
        """Insert or raise the key's tat by ``increment``; with ``window``, only if it fits."""
        insert = sqlite.insert if self.sqlite else postgresql.insert
        greatest = func.max if self.sqlite else func.greatest
        stmt = insert(RateCounter).values(key=key, tat=now + increment)
        new_tat = greatest(RateCounter.tat, now) + increment
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"tat": new_tat},
            where=(new_tat - now <= window + 1e-9) if window is not None else None,
        )
        return stmt.returning(RateCounter.tat)

    def _run(self, work: Any) -> Any:
        """``work(conn)`` in one short write transaction that waits at most about a second."""
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None  # a checked-out pooled connection
            if self.sqlite:
                raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            try:
                with conn.begin():
                    if not self.sqlite:
                        conn.execute(text(f"SET LOCAL lock_timeout = '{POSTGRES_LOCK_TIMEOUT}'"))
                    return work(conn)
            finally:
                if self.sqlite:
                    raw.execute(f"PRAGMA busy_timeout={SQLITE_DEFAULT_BUSY_MS}")

    def acquire(
        self, key: str, *, limit: float, window: float, cost: float, now: float
    ) -> RateDecision:
        increment = cost * window / limit
        if increment > window + 1e-9:  # more than the whole bucket: it never fits
            return decide(None, now=now, limit=limit, window=window, cost=cost)[0]

        def work(conn: Any) -> tuple[bool, float | None]:
            stored = conn.execute(
                self._upsert(key, now=now, increment=increment, window=window)
            ).scalar()
            if stored is not None:
                return True, stored
            return False, conn.execute(
                select(RateCounter.tat).where(RateCounter.key == key)
            ).scalar()

        try:
            admitted, tat = self._run(work)
        except OperationalError as exc:  # locked or timed out: let it through (see above)
            log.warning("rate limit %s not checked (database busy): %s", key, exc.orig)
            return RateDecision(True, limit, limit, 0.0)
        if admitted:
            return after_admission(tat, now=now, limit=limit, window=window)
        return decide(tat, now=now, limit=limit, window=window, cost=cost)[0]

    def tat(self, key: str) -> float | None:
        """The stored tat, read without a lock (a deferred transaction on SQLite)."""
        with self.engine.execution_options(**{READ_ONLY: True}).connect() as conn:
            return conn.execute(select(RateCounter.tat).where(RateCounter.key == key)).scalar()

    def peek(self, key: str, *, limit: float, window: float, now: float) -> RateDecision:
        return debt_decision(self.tat(key), now=now, limit=limit, window=window)

    def spend(self, key: str, *, limit: float, window: float, amount: float, now: float) -> None:
        increment = amount * window / limit
        try:
            self._run(
                lambda conn: conn.execute(
                    self._upsert(key, now=now, increment=increment, window=None)
                ).scalar(),
            )
        except OperationalError as exc:
            log.warning(
                "rate limit %s: %s units not recorded (database busy): %s", key, amount, exc.orig
            )


# KEYS[1] the counter; ARGV: now, interval (window / limit), window, cost, mode. Returns
# {1, tat} when it stored a new tat, {0, tat} (the current one) when the request does not fit.
# Numbers go back as strings: Redis turns a Lua number into an integer.
_GCRA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + cost * interval
if ARGV[5] == 'spend' or new - now <= window + 1e-9 then
  local ttl = math.ceil((new - now) * 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', ttl)
  return {1, string.format('%.6f', new)}
end
return {0, string.format('%.6f', tat)}
"""


class RedisRateLimiter:
    """GCRA counters in Redis (``TAILOR_REDIS_URL``): one Lua script per check, atomic there.

    A counter expires once its bucket is full again, so idle tenants leave no keys behind.
    """

    def __init__(self, url: str, *, prefix: str = REDIS_PREFIX) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.prefix = prefix
        self._script = self.client.register_script(_GCRA)

    def _call(
        self, key: str, *, now: float, limit: float, window: float, cost: float, mode: str
    ) -> tuple[bool, float] | None:
        import redis

        try:
            stored, tat = self._script(
                keys=[self.prefix + key],
                args=[repr(now), repr(window / limit), repr(window), repr(cost), mode],
            )
        except redis.RedisError as exc:  # Redis down: let it through, as the database backend does
            log.warning("rate limit %s not checked (Redis: %s)", key, exc)
            return None
        return bool(int(stored)), float(tat)

    def acquire(
        self, key: str, *, limit: float, window: float, cost: float, now: float
    ) -> RateDecision:
        if cost * window / limit > window + 1e-9:
            return decide(None, now=now, limit=limit, window=window, cost=cost)[0]
        answer = self._call(key, now=now, limit=limit, window=window, cost=cost, mode="acquire")
        if answer is None:
            return RateDecision(True, limit, limit, 0.0)
        admitted, tat = answer
        if admitted:
            return after_admission(tat, now=now, limit=limit, window=window)
        return decide(tat, now=now, limit=limit, window=window, cost=cost)[0]

    def peek(self, key: str, *, limit: float, window: float, now: float) -> RateDecision:
        import redis

        try:
            raw = self.client.get(self.prefix + key)
        except redis.RedisError as exc:
            log.warning("rate limit %s not checked (Redis: %s)", key, exc)
            return RateDecision(True, limit, limit, 0.0)
        tat = float(raw) if raw is not None else None
        return debt_decision(tat, now=now, limit=limit, window=window)

    def spend(self, key: str, *, limit: float, window: float, amount: float, now: float) -> None:
        self._call(key, now=now, limit=limit, window=window, cost=amount, mode="spend")


def make_limiter(*, redis_url: str, engine: Engine) -> RateLimiter:
    """Redis when ``TAILOR_REDIS_URL`` is set, else the database every process shares."""
    if redis_url:
        return RedisRateLimiter(redis_url)
    return DatabaseRateLimiter(engine)
