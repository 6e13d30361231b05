"""An operator deletes a tenant: every row and every stored byte of it goes (checked by scanning
the data folder for a canary), the report says what went, other tenants keep everything, and a
running job is asked to stop first."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tailorml.platform.auth import get_tenant
from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Job
from tests.platform.api.test_errors import error

pytest.importorskip("torch", reason="serving a model needs the ml extra (torch)")

from tests.platform.api.test_inference import adapters, chat  # noqa: E402, F401
from tests.platform.test_model_deletion import MARK, canaries, fine_tuned  # noqa: E402

ADMIN = {"Authorization": "Bearer admin-test-key"}


def upload(client, headers, body: bytes) -> str:  # type: ignore[no-untyped-def]
    res = client.post("/v1/files", headers=headers, data={"purpose": "user_data"},
                      files={"file": ("notes.txt", io.BytesIO(body))})  # fmt: skip
    assert res.status_code == 200, res.text
    return str(res.json()["id"])


def test_deleting_a_tenant_leaves_nothing_of_it(client, acme, globex, settings, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    upload(client, acme, MARK + b" acme's customer records")
    kept = upload(client, globex, b"globex's own file")
    model = fine_tuned(client, settings, "acme", adapters["a"], "ftjob-tenantdel001")
    assert chat(client, acme, model).status_code == 200
    quota = client.post("/admin/tenants/acme/quotas", headers=ADMIN,
                        json={"metric": "requests", "limit": 1000, "period": "day"})  # fmt: skip
    assert quota.status_code == 200
    state = client.app.state.tailor
    with session_scope(state.sessions) as s:
        acme_id = get_tenant(s, name_or_id="acme").id
    assert canaries(Path(settings.data_dir))

    report = client.delete("/admin/tenants/acme", headers=ADMIN)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["object"] == "tenant.deletion" and body["tenant"] == "acme"
    assert body["removed"]["files"] == 1 and body["removed"]["models"] == [model]
    assert body["removed"]["api_keys"] == 1 and body["removed"]["jobs"] == {"fine_tune": 1}
    assert canaries(Path(settings.data_dir)) == []
    assert error(client.get("/v1/files", headers=acme), 401)
    assert model not in state.serving.loaded()
    engine = state.engine
    inspector = inspect(engine)
    tables = [t for t in inspector.get_table_names()
              if "tenant_id" in {c["name"] for c in inspector.get_columns(t)}]  # fmt: skip
    assert "files" in tables and "usage_buckets" in tables
    with engine.connect() as conn:
        for table in tables:
            query = text(f"SELECT COUNT(*) FROM {table} WHERE tenant_id = :t")
            assert conn.execute(query, {"t": acme_id}).scalar() == 0, table
    assert client.get(f"/v1/files/{kept}", headers=globex).status_code == 200
    assert error(client.delete("/admin/tenants/acme", headers=ADMIN), 404)
    assert error(client.delete("/admin/tenants/globex", headers=globex), 403)


def test_a_running_job_is_stopped_before_its_tenant_goes(client, acme) -> None:  # type: ignore[no-untyped-def]
    state = client.app.state.tailor
    with session_scope(state.sessions) as s:
        tenant_id = get_tenant(s, name_or_id="acme").id
        s.add(Job(id="ftjob-running00001", kind="fine_tune", tenant_id=tenant_id,
                  status="running", spec={}))  # fmt: skip
    refused = client.delete("/admin/tenants/acme", headers=ADMIN)
    assert error(refused, 409)["param"] == "tenant"
    with session_scope(state.sessions) as s:
        job = s.get(Job, "ftjob-running00001")
        assert job is not None and job.cancel_requested
        job.status = "cancelled"  # what the worker does once the job has stopped
    assert client.delete("/admin/tenants/acme", headers=ADMIN).status_code == 200
