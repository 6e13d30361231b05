"""An operator disables a tenant: its keys answer 403 tenant_disabled (other tenants are
unaffected), its queued jobs wait for a worker until it is enabled again; through the admin
API and the CLI, each recorded in the operator's audit chain."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from tailorml.cli import app as cli
from tailorml.platform.db.engine import make_engine, make_sessionmaker
from tailorml.platform.db.models import AuditEvent
from tailorml.platform.jobs.queue import claim
from tests.platform.api.test_errors import error
from tests.platform.test_files import upload

ADMIN = {"Authorization": "Bearer admin-test-key"}


def _rows(path: Path) -> Path:
    path.write_text("".join(json.dumps({"text": f"m {i}", "label": "ab"[i % 2]}) + "\n"
                            for i in range(10)))  # fmt: skip
    return path


def test_a_disabled_tenant_is_refused_and_its_jobs_wait(
    client, acme, globex, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings.allow_hub_models = True
    file_id = upload(client, acme, _rows(tmp_path / "t.jsonl")).json()["id"]
    job = client.post("/v1/fine_tuning/jobs", headers=acme,
                      json={"model": "org/m", "training_file": file_id}).json()  # fmt: skip
    disabled = client.post("/admin/tenants/acme/disable", headers=ADMIN).json()
    assert disabled["name"] == "acme" and disabled["disabled_at"] > 0
    err = error(client.get("/v1/files", headers=acme), 403)
    assert err["code"] == "tenant_disabled" and "enable" in err["message"]
    assert client.get("/v1/files", headers=globex).status_code == 200

    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    try:
        assert claim(factory, worker_id="w1", lease_seconds=30) is None
        again = client.post("/admin/tenants/acme/disable", headers=ADMIN).json()
        assert again["disabled_at"] == disabled["disabled_at"]  # idempotent
        assert (
            client.post("/admin/tenants/acme/enable", headers=ADMIN).json()["disabled_at"] is None
        )
        assert client.get("/v1/files", headers=acme).status_code == 200
        claimed = claim(factory, worker_id="w1", lease_seconds=30)
        assert claimed is not None and claimed.job_id == job["id"]
    finally:
        engine.dispose()


def test_the_cli_disables_and_enables_and_is_audited(client, acme, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name, value in {"TAILOR_DATA_DIR": str(settings.data_dir),
                        "TAILOR_DATABASE_URL": settings.database_url,
                        "TAILOR_MASTER_SECRET": "test-secret"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    res = runner.invoke(cli, ["admin", "tenant", "disable", "acme"])
    assert res.exit_code == 0, res.output
    assert error(client.get("/v1/files", headers=acme), 403)["code"] == "tenant_disabled"
    assert runner.invoke(cli, ["admin", "tenant", "enable", "acme"]).exit_code == 0
    assert client.get("/v1/files", headers=acme).status_code == 200
    chain = client.get("/admin/audit/operator", headers=ADMIN).json()["data"]
    cli_events = [(e["action"], e["role"], e["method"]) for e in chain if e["role"] == "cli"]
    assert cli_events == [("cli.tenant_disable", "cli", "CLI"), ("cli.tenant_enable", "cli", "CLI")]
    verified = runner.invoke(cli, ["admin", "audit", "verify", "operator"])
    assert verified.exit_code == 0 and "intact" in verified.output
    assert runner.invoke(cli, ["admin", "tenant", "disable", "nobody"]).exit_code == 2
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:  # someone rewrites who disabled the tenant
        conn.execute(update(AuditEvent).where(AuditEvent.action == "cli.tenant_disable")
                     .values(key_id="someone-else"))  # fmt: skip
    engine.dispose()
    tampered = runner.invoke(cli, ["admin", "audit", "verify", "operator"])
    assert tampered.exit_code == 1 and "edited" in tampered.output
    exported = runner.invoke(cli, ["admin", "audit", "export", "operator"])
    assert exported.exit_code == 0
    actions = [json.loads(x)["action"] for x in exported.output.splitlines()]
    assert [a for a in actions if a.startswith("cli.")] == [
        "cli.tenant_disable",
        "cli.tenant_enable",
    ]
