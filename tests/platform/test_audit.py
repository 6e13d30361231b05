"""The audit log: every change and read of tenant data is an event in the tenant's hash chain
(who, what, when, from where, with the request id the answer carries); refused callers and
admin requests go to the operator chain; an edited, removed or truncated event is found;
chains stay whole under concurrent appends; a tenant reads only its own chain."""

from __future__ import annotations

import io
import json
import threading

from sqlalchemy import delete, select, update

from tailorml.platform import audit
from tailorml.platform.db.engine import make_engine, make_sessionmaker, session_scope
from tailorml.platform.db.models import AuditEvent, AuditHead

ADMIN = {"Authorization": "Bearer admin-test-key"}


def _upload(client, headers, body: bytes = b"hello", name: str = "notes.txt"):  # type: ignore[no-untyped-def]
    return client.post("/v1/files", headers=headers, data={"purpose": "user_data"},
                       files={"file": (name, io.BytesIO(body))})  # fmt: skip


def _events(client, headers) -> list[dict]:  # type: ignore[no-untyped-def]
    res = client.get("/v1/audit_logs", headers=headers, params={"limit": 1000})
    assert res.status_code == 200, res.text
    return list(res.json()["data"])


def _factory(settings):  # type: ignore[no-untyped-def]
    engine = make_engine(settings.database_url)
    return engine, make_sessionmaker(engine)


def test_changes_and_reads_are_recorded_with_who_and_the_request_id(client, acme, globex) -> None:  # type: ignore[no-untyped-def]
    up = client.post("/v1/files", headers={**acme, "X-Request-Id": "gateway-42"},
                     data={"purpose": "user_data"},
                     files={"file": ("notes.txt", io.BytesIO(b"customer notes"))})  # fmt: skip
    assert up.status_code == 200 and up.headers["x-request-id"] == "gateway-42"
    file_id = up.json()["id"]
    content = client.get(f"/v1/files/{file_id}/content", headers=acme)
    assert content.status_code == 200
    generated = content.headers["x-request-id"]
    assert generated.startswith("req_") and len(generated) == 28
    missing = client.get("/v1/files/file-nope", headers=acme)
    assert missing.status_code == 404
    assert client.get("/health").headers["x-request-id"].startswith("req_")  # id, not audited

    events = _events(client, acme)
    actions = [(e["action"], e["method"], e["resource"], e["status"]) for e in events]
    assert actions == [
        ("files.upload_file", "POST", None, 200),
        ("files.file_content", "GET", file_id, 200),
        ("files.retrieve_file", "GET", "file-nope", 404),
    ]
    first = events[0]
    assert first["request_id"] == "gateway-42" and events[1]["request_id"] == generated
    assert first["role"] == "tenant" and first["key_id"].startswith("key_")
    assert first["tenant_id"] == first["chain"] and first["ip"]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[1]["prev_hash"] == events[0]["hash"]
    # The listing itself was audited too (a read of tenant data), after the three above.
    assert _events(client, acme)[3]["action"] == "audit.list_audit_events"
    # globex sees none of it.
    assert all(e["tenant_id"] != first["tenant_id"] for e in _events(client, globex))
    ok = client.get("/v1/audit_logs/verify", headers=acme).json()
    assert ok["ok"] is True and ok["events"] >= 4 and ok["problems"] == []


def test_refusals_and_admin_requests_go_to_the_operator_chain(client, acme) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/v1/files", headers={"Authorization": "Bearer tk-nope"}).status_code == 401
    assert client.post("/admin/tenants/acme/disable", headers=ADMIN).status_code == 200
    assert client.post("/admin/tenants/acme/enable", headers=ADMIN).status_code == 200
    page = client.get("/admin/audit/operator", headers=ADMIN, params={"limit": 1000}).json()
    actions = [(e["action"], e["status"], e["role"]) for e in page["data"]]
    assert ("admin.create_tenant", 200, "admin") in actions  # the acme fixture
    assert ("refused.unauthenticated", 401, None) in actions
    assert actions[-2:] == [("admin.disable_tenant", 200, "admin"),
                            ("admin.enable_tenant", 200, "admin")]  # fmt: skip
    assert page["data"][-1]["resource"] == "acme"
    # A tenant's chain is readable by the operator by name, and exported as JSON lines.
    _upload(client, acme)
    export = client.get("/admin/audit/acme/export", headers=ADMIN)
    assert export.status_code == 200
    lines = [json.loads(x) for x in export.text.splitlines()]
    assert [x["action"] for x in lines][:1] == ["files.upload_file"]
    assert client.get("/admin/audit/acme/verify", headers=ADMIN).json()["ok"] is True
    assert client.get("/admin/audit/nobody", headers=ADMIN).status_code == 404
    # A tenant key cannot read the operator chain.
    assert client.get("/admin/audit/operator", headers=acme).status_code in (401, 403)


def test_edited_removed_and_truncated_events_are_found(client, acme, settings) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        assert _upload(client, acme, f"file {i}".encode()).status_code == 200
    chain = _events(client, acme)[0]["chain"]
    engine, factory = _factory(settings)
    try:

        def verify() -> dict:  # type: ignore[type-arg]
            with session_scope(factory) as s:
                return audit.verify(s, chain)

        assert verify()["ok"]
        with session_scope(factory) as s:  # someone hides where a request came from
            s.execute(update(AuditEvent).where(AuditEvent.chain == chain, AuditEvent.seq == 2)
                      .values(ip="10.0.0.1"))  # fmt: skip
        result = verify()
        assert not result["ok"] and result["problems"] == [
            {"seq": 2, "problem": "edited: its hash does not match"}
        ]
        with session_scope(factory) as s:  # ... then removes the event instead
            s.execute(delete(AuditEvent).where(AuditEvent.chain == chain, AuditEvent.seq == 2))
        assert verify()["problems"] == [{"seq": 2, "problem": "events 2..2 missing"}]

        with session_scope(factory) as s:  # rewriting the rest consistently is still caught
            rows = list(s.scalars(select(AuditEvent).where(AuditEvent.chain == chain)
                                  .order_by(AuditEvent.seq)))  # fmt: skip
            last = rows[-1]
            s.delete(last)
        problems = verify()["problems"]
        assert {"seq": 2, "problem": "events 2..2 missing"} in problems
        assert any("missing" in p["problem"] and p["seq"] == last.seq for p in problems)
        with session_scope(factory) as s:
            s.execute(delete(AuditHead).where(AuditHead.chain == chain))
            s.execute(delete(AuditEvent).where(AuditEvent.chain == chain))
        assert verify() == {"chain": chain, "events": 0, "ok": True, "problems": []}
    finally:
        engine.dispose()


def test_concurrent_appends_keep_one_unbroken_chain(client, acme, settings) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(4):
                assert client.get("/v1/files", headers=acme).status_code == 200
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    events = _events(client, acme)
    assert [e["seq"] for e in events][:32] == list(range(1, 33))
    assert client.get("/v1/audit_logs/verify", headers=acme).json()["ok"] is True


def test_a_first_event_racing_on_a_new_chain_is_retried(settings, client) -> None:  # type: ignore[no-untyped-def]
    engine, factory = _factory(settings)
    entry = audit.Entry(chain="tn_race", action="x.y", method="GET", path="/v1/x", status=200)
    try:
        rows = []
        threads = [threading.Thread(target=lambda: rows.append(audit.record(factory, entry)))
                   for _ in range(6)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.seq for r in rows) == [1, 2, 3, 4, 5, 6]
        with session_scope(factory) as s:
            assert audit.verify(s, "tn_race")["ok"]
    finally:
        engine.dispose()


def test_a_control_character_in_a_path_is_kept_escaped_and_holds_nothing_back(client, acme) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL refuses a NUL in text: the event once failed on every retry, and every event
    # after it waited behind it.
    assert client.get("/v1/files/file-%00x", headers=acme).status_code == 400
    assert _upload(client, acme).status_code == 200
    assert [e["path"] for e in _events(client, acme)] == ["/v1/files"]
    refused = client.get("/admin/audit/operator", headers=ADMIN, params={"limit": 1000})
    assert "/v1/files/file-\\x00x" in [e["path"] for e in refused.json()["data"]]
    assert client.get("/admin/audit/operator/verify", headers=ADMIN).json()["ok"] is True


def test_an_event_the_database_refuses_is_dropped_and_counted_alone(settings, client) -> None:  # type: ignore[no-untyped-def]
    engine, factory = _factory(settings)
    failed: list[int] = []
    writer = audit.AuditWriter(factory, on_failure=failed.append)
    good = audit.Entry(chain="operator", action="a", method="GET", path="/a", status=200)
    refused = audit.Entry(chain="operator", action="b", method="GET", path="/b", status=10**20)
    for entry in (good, refused, good):
        writer.submit(entry)
    assert writer.flush(10)
    writer.close()
    with session_scope(factory) as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.chain == "operator")).all()
        assert [(r.seq, r.path) for r in rows] == [(1, "/a"), (2, "/a")]
    assert failed == [1]
    engine.dispose()
