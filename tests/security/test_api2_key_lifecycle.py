"""Keys that expired, were revoked or rotated, and the last-used time, through the API.

API2:2023 Broken Authentication: a key stops working when it expires or is revoked; rotation
keeps the old key working until it is revoked; ``last_used_at`` is written without turning
every key check into a write.
"""

from __future__ import annotations

import sqlite3
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from tailorml.platform.db.engine import read_scope
from tailorml.platform.db.models import ApiKey

ADMIN = {"Authorization": "Bearer admin-test-key"}


def _key(client: TestClient, tenant: str = "acme", **body: object) -> dict[str, object]:
    res = client.post(f"/admin/tenants/{tenant}/keys", json=body, headers=ADMIN)
    assert res.status_code == 200, res.text
    return res.json()


def _bearer(key: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['api_key']}"}


def _row(client: TestClient, prefix: object) -> ApiKey:
    with read_scope(client.app.state.tailor.read_sessions) as s:  # type: ignore[attr-defined]
        row = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        assert row is not None
        return row


def test_expired_key_answers_401_saying_it_expired(client: TestClient, acme) -> None:  # type: ignore[no-untyped-def]
    """API2:2023 Broken Authentication: an expired key is refused and told so."""
    key = _key(client, expires_in_days=1)
    assert client.get("/v1/models", headers=_bearer(key)).status_code == 200
    with client.app.state.tailor.sessions() as s:  # type: ignore[attr-defined]
        s.get(ApiKey, key["id"]).expires_at = int(time.time()) - 1
        s.commit()
    res = client.get("/v1/models", headers=_bearer(key))
    assert res.status_code == 401
    err = res.json()["error"]
    assert err["code"] == "expired_api_key" and "expired" in err["message"]
    assert "tailor admin key create" in err["message"]


def test_expiry_is_checked_only_after_the_secret(client: TestClient, acme) -> None:  # type: ignore[no-untyped-def]
    """API2:2023 Broken Authentication: a guessed key of an expired prefix learns nothing."""
    key = _key(client, expires_in_days=1)
    with client.app.state.tailor.sessions() as s:  # type: ignore[attr-defined]
        s.get(ApiKey, key["id"]).expires_at = int(time.time()) - 1
        s.commit()
    forged = f"tk-{key['prefix']}-" + "A" * 32
    res = client.get("/v1/models", headers={"Authorization": f"Bearer {forged}"})
    assert res.status_code == 401 and res.json()["error"]["code"] == "invalid_api_key"


def test_bad_expiry_and_scope_are_refused(client: TestClient, acme) -> None:  # type: ignore[no-untyped-def]
    res = client.post("/admin/tenants/acme/keys", json={"expires_in_days": 0}, headers=ADMIN)
    assert res.status_code == 400 and res.json()["error"]["param"] == "expires_in_days"
    res = client.post("/admin/tenants/acme/keys", json={"scope": "root"}, headers=ADMIN)
    assert res.status_code == 400 and "read-only" in res.json()["error"]["message"]


def test_rotation_without_downtime(client: TestClient, acme) -> None:  # type: ignore[no-untyped-def]
    """API2:2023 Broken Authentication: the old key works until revoked, then only the new one."""
    old = client.get("/admin/keys", params={"tenant": "acme"}, headers=ADMIN).json()["data"]
    assert len(old) == 1
    new = _key(client, name="rotated")
    assert client.get("/v1/files", headers=acme).status_code == 200
    assert client.get("/v1/files", headers=_bearer(new)).status_code == 200
    res = client.post(f"/admin/keys/{old[0]['prefix']}/revoke", headers=ADMIN)
    assert res.status_code == 200 and res.json()["revoked_at"] is not None
    assert client.get("/v1/files", headers=acme).status_code == 401
    assert client.get("/v1/files", headers=_bearer(new)).status_code == 200
    # by id as well; revoking twice keeps the first time
    again = client.post(f"/admin/keys/{old[0]['id']}/revoke", headers=ADMIN).json()
    assert again["revoked_at"] == res.json()["revoked_at"]


def test_key_list_shows_no_secret(client: TestClient, acme, globex) -> None:  # type: ignore[no-untyped-def]
    """API3:2023 Broken Object Property Level Authorization: listing keys never shows secrets."""
    key = _key(client, scope="inference", expires_in_days=30)
    res = client.get("/admin/keys", headers=ADMIN)
    assert res.status_code == 200
    rows = res.json()["data"]
    assert {r["tenant"] for r in rows} == {"acme", "globex"}
    assert str(key["api_key"]) not in res.text and "key_hash" not in res.text
    mine = next(r for r in rows if r["id"] == key["id"])
    assert mine["scope"] == "inference" and mine["expires_at"] > time.time() + 29 * 86400
    only = client.get("/admin/keys", params={"tenant": "globex"}, headers=ADMIN).json()["data"]
    assert [r["tenant"] for r in only] == ["globex"]
    assert client.get("/admin/keys", headers=acme).status_code == 403


def test_last_used_at_is_written_at_most_once_a_minute(client: TestClient, acme) -> None:  # type: ignore[no-untyped-def]
    key = _key(client)
    assert _row(client, key["prefix"]).last_used_at is None
    assert client.get("/v1/models", headers=_bearer(key)).status_code == 200
    first = _row(client, key["prefix"]).last_used_at
    assert first is not None and abs(first - time.time()) < 5
    with client.app.state.tailor.sessions() as s:  # type: ignore[attr-defined]
        s.get(ApiKey, key["id"]).last_used_at = first - 30  # used 30 s ago: not stale yet
        s.commit()
    assert client.get("/v1/models", headers=_bearer(key)).status_code == 200
    assert _row(client, key["prefix"]).last_used_at == first - 30
    with client.app.state.tailor.sessions() as s:  # type: ignore[attr-defined]
        s.get(ApiKey, key["id"]).last_used_at = first - 61
        s.commit()
    assert client.get("/v1/models", headers=_bearer(key)).status_code == 200
    assert _row(client, key["prefix"]).last_used_at >= first


def test_a_busy_sqlite_writer_does_not_delay_key_checks(client: TestClient, acme, settings) -> None:  # type: ignore[no-untyped-def]
    """API4:2023 Unrestricted Resource Consumption: a held write lock skips the last-used write."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return  # PostgreSQL has no database-wide write lock; the row update takes none here
    key = _key(client)
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what a worker claiming a job holds
    try:
        started = time.monotonic()
        res = client.get("/v1/models", headers=_bearer(key))
        assert res.status_code == 200 and time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _row(client, key["prefix"]).last_used_at is None  # skipped, written next time
    # Written by a later request once the lock is free. The app's own background writers
    # (audit, usage) may hold it for a moment under load, which skips that request's write
    # too, so allow a few requests.
    deadline = time.monotonic() + 10
    while _row(client, key["prefix"]).last_used_at is None and time.monotonic() < deadline:
        client.get("/v1/models", headers=_bearer(key))
        time.sleep(0.05)
    assert _row(client, key["prefix"]).last_used_at is not None
