"""API1 (broken object level authorization) for usage and quotas: /v1/usage shows the caller's
tenant only, whatever it asks for; quotas and the operator's report need an admin key; and one
tenant's quota or rate limit never refuses another tenant's requests."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tailorml.platform.auth import get_tenant
from tailorml.platform.db.engine import session_scope

ADMIN = {"Authorization": "Bearer admin-test-key"}


def _tenant_id(client: TestClient, name: str) -> str:
    with session_scope(client.app.state.tailor.sessions) as s:
        return get_tenant(s, name_or_id=name).id


def test_usage_shows_only_the_callers_tenant(client, acme, globex) -> None:  # type: ignore[no-untyped-def]
    state = client.app.state.tailor
    acme_id, globex_id = _tenant_id(client, "acme"), _tenant_id(client, "globex")
    state.usage.record_request(acme_id, "ft:base:acme:mine:1", prompt_tokens=3, completion_tokens=4)
    for _ in range(5):
        state.usage.record_request(globex_id, "ft:base:globex:secret:2", prompt_tokens=100)
    state.usage.touch_storage(globex_id)
    state.usage.flush()
    start = int(time.time()) - 3600
    for params in (
        {"start_time": start, "group_by": "model"},
        {"start_time": start, "bucket_width": "1m", "limit": 90},
        # Parameters that name other tenants or projects are refused or ignored, never obeyed.
        {"start_time": start, "group_by": "model", "tenant": "globex", "project_ids": globex_id},
    ):
        res = client.get("/v1/usage", headers=acme, params=params)
        assert res.status_code == 200, res.text
        text = res.text
        assert "globex" not in text and globex_id not in text
        rows = [r for b in res.json()["data"] for r in b["results"]]
        assert sum(r.get("num_model_requests", 0) for r in rows) == 1
        assert sum(r.get("input_tokens", 0) for r in rows) == 3
    assert (
        client.get(
            "/v1/usage", headers=acme, params={"start_time": start, "group_by": "project_id"}
        ).status_code
        == 400
    )
    theirs = client.get("/v1/usage", headers=globex, params={"start_time": start}).json()
    assert sum(r.get("num_model_requests", 0) for b in theirs["data"] for r in b["results"]) == 5


def test_quotas_and_reports_need_the_admin_key(client, acme, globex) -> None:  # type: ignore[no-untyped-def]
    body = {"metric": "requests", "limit": 1_000_000, "period": "day"}
    for method, path, kwargs in (
        ("POST", "/admin/tenants/acme/quotas", {"json": body}),
        ("GET", "/admin/tenants/globex/quotas", {}),
        ("DELETE", "/admin/tenants/acme/quotas", {}),
        ("GET", "/admin/usage", {"params": {"start_time": 0, "tenant": "globex"}}),
    ):
        res = client.request(method, path, headers=acme, **kwargs)
        assert res.status_code == 403, (method, path, res.text)
    assert client.get("/admin/tenants/acme/quotas", headers=ADMIN).json()["data"] == []


def test_one_tenants_limits_do_not_refuse_another(client, acme, globex) -> None:  # type: ignore[no-untyped-def]
    for metric, extra in (
        ("requests", {"period": "minute", "kind": "rate"}),
        ("tokens", {"period": "day"}),
    ):
        res = client.post(
            "/admin/tenants/acme/quotas",
            headers=ADMIN,
            json={"metric": metric, "limit": 1, **extra},
        )
        assert res.status_code == 200, res.text
    body = {"model": "nope", "input": "hi"}
    client.app.state.tailor.usage.record_request(_tenant_id(client, "acme"), "m", prompt_tokens=5)
    assert client.post("/v1/embeddings", headers=acme, json=body).status_code == 429
    for _ in range(5):
        res = client.post("/v1/embeddings", headers=globex, json=body)
        assert res.status_code == 404 and "x-ratelimit-limit-requests" not in res.headers
