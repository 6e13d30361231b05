"""Rate limits shared by several API processes: GCRA on Redis and on the database (SQLite and
PostgreSQL), two limiter instances sharing one limit, and through two apps on one database:
429 ``rate_limit_exceeded`` with ``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers,
decided before the body is read, and a flood answered from memory."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from tailorml.platform.api.app import create_app
from tailorml.platform.db.engine import make_engine, migrate
from tailorml.platform.quotas import format_duration
from tailorml.platform.ratelimit import (
    DatabaseRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    decide,
)
from tailorml.platform.settings import Settings
from tests.platform.api.test_errors import error
from tests.platform.conftest import make_tenant

ADMIN = {"Authorization": "Bearer admin-test-key"}
REDIS_URL = "redis://127.0.0.1:6379/15"
NOW = 1_800_000_000.0


def redis_available() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["database", "redis"])
def limiters(
    request: pytest.FixtureRequest, db_url: str
) -> Iterator[tuple[RateLimiter, RateLimiter]]:
    """Two limiters as two API processes would have them: each its own connection(s)."""
    if request.param == "redis":
        if not db_url.startswith("sqlite"):
            pytest.skip("the Redis backend does not depend on the database: run it once")
        if not redis_available():
            pytest.skip("Redis is not reachable on 127.0.0.1:6379")
        prefix = f"test:{uuid.uuid4().hex}:"
        yield RedisRateLimiter(REDIS_URL, prefix=prefix), RedisRateLimiter(REDIS_URL, prefix=prefix)
        return
    engines = [make_engine(db_url), make_engine(db_url)]
    migrate(engines[0])
    yield DatabaseRateLimiter(engines[0]), DatabaseRateLimiter(engines[1])
    for engine in engines:
        engine.dispose()


def test_gcra_refills_one_unit_per_interval() -> None:
    tat = None
    for left in range(9, -1, -1):  # 10 a minute: a burst of 10, then one every 6 s
        decision, tat = decide(tat, now=NOW, limit=10, window=60, cost=1)
        assert decision.allowed and decision.remaining == left
    refused, _ = decide(tat, now=NOW, limit=10, window=60, cost=1)
    assert not refused.allowed and refused.retry_after == pytest.approx(6.0)
    assert refused.reset_seconds == pytest.approx(60.0)
    later, _ = decide(tat, now=NOW + 6.0, limit=10, window=60, cost=1)
    assert later.allowed and later.remaining == 0
    assert format_duration(0.02) == "20ms" and format_duration(1.5) == "1.5s"
    assert format_duration(360) == "6m0s" and format_duration(3723) == "1h2m3s"


def test_two_limiters_share_one_limit(limiters: tuple[RateLimiter, RateLimiter]) -> None:
    a, b = limiters
    key, args = "tn_1:requests:minute", {"limit": 5.0, "window": 60.0}
    answers = [(a, b)[i % 2].acquire(key, cost=1, now=NOW, **args) for i in range(8)]
    assert [d.allowed for d in answers] == [True] * 5 + [False] * 3
    assert [d.remaining for d in answers[:5]] == [4, 3, 2, 1, 0]
    assert answers[-1].retry_after == pytest.approx(12.0, abs=1e-3)
    # One unit refills every 12 s, for whichever process asks first.
    assert b.acquire(key, cost=1, now=NOW + 12.0, **args).allowed
    assert not a.acquire(key, cost=1, now=NOW + 12.0, **args).allowed
    # Other keys (another tenant, another metric) have their own buckets.
    assert a.acquire("tn_2:requests:minute", cost=1, now=NOW, **args).allowed


def test_spent_tokens_are_a_debt_both_limiters_see(
    limiters: tuple[RateLimiter, RateLimiter],
) -> None:
    a, b = limiters
    key, args = "tn_1:tokens:minute", {"limit": 100.0, "window": 60.0}
    assert b.peek(key, now=NOW, **args).allowed
    a.spend(key, amount=250, now=NOW, **args)  # one large answer: 2.5 minutes' worth
    refused = b.peek(key, now=NOW, **args)
    assert not refused.allowed and refused.remaining == 0
    # It fits again once the debt is paid down to one token of room: (250 - 100 + 1) * 0.6 s.
    assert refused.retry_after == pytest.approx(90.6, abs=1e-3)
    assert not a.peek(key, now=NOW + 90.0, **args).allowed
    assert a.peek(key, now=NOW + 90.7, **args).allowed


def test_concurrent_acquisitions_never_exceed_the_limit(
    limiters: tuple[RateLimiter, RateLimiter],
) -> None:
    a, b = limiters
    key = f"tn_{uuid.uuid4().hex[:6]}:requests:minute"
    allowed: list[bool] = []
    lock = threading.Lock()

    def hammer(limiter: RateLimiter) -> None:
        for _ in range(15):
            decision = limiter.acquire(key, limit=12, window=60, cost=1, now=NOW)
            with lock:
                allowed.append(decision.allowed)

    threads = [threading.Thread(target=hammer, args=(lim,)) for lim in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 60 and sum(allowed) == 12


def _rate_quota(client: TestClient, tenant: str, metric: str, limit: float) -> None:
    res = client.post(
        f"/admin/tenants/{tenant}/quotas",
        headers=ADMIN,
        json={"metric": metric, "limit": limit, "period": "minute", "kind": "rate"},
    )
    assert res.status_code == 200, res.text


def _embed(client: TestClient, headers: dict[str, str]) -> Any:
    # Admitted requests reach the route, which answers 404 for a model nobody has: enough to
    # count requests without running a model.
    return client.post("/v1/embeddings", headers=headers, json={"model": "nope", "input": "hi"})


@pytest.fixture(params=["database", "redis"])
def two_apps(request: pytest.FixtureRequest, settings: Settings) -> Iterator[list[TestClient]]:
    """Two API apps on one database, as two `tailor serve` processes (each its own engine)."""
    if request.param == "redis":
        if not redis_available():
            pytest.skip("Redis is not reachable on 127.0.0.1:6379")
        settings = settings.model_copy(update={"redis_url": REDIS_URL})
    apps = [create_app(settings), create_app(settings)]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        yield [first, second]
    for app in apps:
        app.state.tailor.engine.dispose()


def test_two_api_processes_share_a_request_rate(two_apps: list[TestClient]) -> None:
    first, second = two_apps
    acme = make_tenant(first, "acme")
    globex = make_tenant(first, "globex")
    _rate_quota(first, "acme", "requests", 4)
    started = time.monotonic()
    answers = [_embed(two_apps[i % 2], acme) for i in range(7)]
    elapsed = time.monotonic() - started
    assert [r.status_code for r in answers] == [404] * 4 + [429] * 3
    assert [r.headers["x-ratelimit-remaining-requests"] for r in answers[:4]] == list("3210")
    assert all(r.headers["x-ratelimit-limit-requests"] == "4" for r in answers)
    refused = answers[-1]
    body = error(refused, 429)
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "requests"
    assert "requests per minute" in body["message"] and "tailor admin quota set" in body["message"]
    # One request refills every 15 s, counted from the first: what is left of that, rounded up.
    assert math.floor(15 - elapsed) <= int(refused.headers["retry-after"]) <= 15
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    # Another tenant is not limited, and answers carry no rate headers without a rate quota.
    other = _embed(second, globex)
    assert other.status_code == 404 and "x-ratelimit-limit-requests" not in other.headers


def test_a_rate_refusal_comes_before_the_body_is_read(
    client: TestClient, acme: dict[str, str]
) -> None:
    _rate_quota(client, "acme", "requests", 1)
    assert _embed(client, acme).status_code == 404
    app = client.app
    read: list[bool] = []
    sent: list[dict[str, Any]] = []
    body = json.dumps({"model": "nope", "input": "hi"}).encode()

    async def receive() -> dict[str, Any]:
        read.append(True)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/embeddings",
        "raw_path": b"/v1/embeddings",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", acme["Authorization"].encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    anyio.run(app, scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 429 and not read
    headers = dict(sent[0]["headers"])
    assert headers[b"retry-after"] == b"60" and headers[b"x-ratelimit-limit-requests"] == b"1"


def test_a_flood_is_refused_from_memory(client: TestClient, acme: dict[str, str]) -> None:
    state = client.app.state.tailor
    _rate_quota(client, "acme", "requests", 2)
    calls: list[str] = []
    real = state.quotas.limiter.acquire

    def counted(key: str, **kw: Any) -> Any:
        calls.append(key)
        return real(key, **kw)

    state.quotas.limiter.acquire = counted  # type: ignore[method-assign]
    codes = [_embed(client, acme).status_code for _ in range(8)]  # four times the limit
    assert codes == [404, 404] + [429] * 6
    # Two admissions and the first refusal asked the shared counter; the rest were answered
    # from the refusal remembered until its Retry-After.
    assert len(calls) == 3


def test_a_tenant_at_its_engine_bound_is_refused_before_its_body_is_read(
    client: TestClient, acme: dict[str, str], settings: Settings
) -> None:
    """The engine's per-tenant concurrency bound is checked in the guard, so a flood past it
    costs no body parsing, model resolution or tokenizing (benchmarks/serve/overload.py)."""
    from tailorml.platform.auth import get_tenant
    from tailorml.platform.db.engine import session_scope

    state = client.app.state.tailor
    settings.serve_tenant_concurrency = 2
    engine = state.serving  # started (no model loaded): the pre-check is wired now
    with session_scope(state.sessions) as s:
        tenant_id = get_tenant(s, name_or_id="acme").id
    held = [engine.admission.enter("some-base", tenant_id) for _ in range(2)]
    read: list[bool] = []
    sent: list[dict[str, Any]] = []
    body = json.dumps({"model": "nope", "input": "hi"}).encode()

    async def receive() -> dict[str, Any]:
        read.append(True)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/embeddings", "raw_path": b"/v1/embeddings",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("testserver", 80), "state": {},
        "headers": [(b"authorization", acme["Authorization"].encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    anyio.run(client.app, scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 429 and not read
    assert dict(sent[0]["headers"])[b"retry-after"] == b"1"
    assert engine.admission.stats().rejected == {"tenant_concurrency": 1}
    held[0].release()
    assert _embed(client, acme).status_code == 404  # under the bound again: on to the route
    held[1].release()
