"""The ``tailor admin key`` commands through typer's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailorml.cli import app


@pytest.fixture
def runner(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TAILOR_DATABASE_URL", db_url)
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TAILOR_MASTER_SECRET", "cli-secret")
    return CliRunner()


def test_key_create_list_revoke(runner: CliRunner) -> None:
    first = runner.invoke(app, ["admin", "tenant", "create", "acme"])
    assert first.exit_code == 0, first.output
    made = runner.invoke(
        app,
        [
            "admin",
            "key",
            "create",
            "--tenant",
            "acme",
            "--scope",
            "inference",
            "--expires-in-days",
            "7",
        ],
    )
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    prefix = key.split("-")[1]
    listed = runner.invoke(app, ["admin", "key", "list", "--tenant", "acme"])
    assert listed.exit_code == 0, listed.output
    assert prefix in listed.output and "inference" in listed.output
    assert key.split("-", 2)[2] not in listed.output  # never the secret
    revoked = runner.invoke(app, ["admin", "key", "revoke", prefix])
    assert revoked.exit_code == 0 and f"tk-{prefix}" in revoked.output
    line = next(
        x for x in runner.invoke(app, ["admin", "key", "list"]).output.splitlines() if prefix in x
    )
    assert "UTC" in line.split("inference", 1)[1]  # a revoked time is shown
    bad = runner.invoke(app, ["admin", "key", "create", "--tenant", "acme", "--scope", "root"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["admin", "key", "revoke", "ffffffffffffffff"])
    assert missing.exit_code == 2


def test_tenant_delete(runner: CliRunner) -> None:
    assert runner.invoke(app, ["admin", "tenant", "create", "acme"]).exit_code == 0
    refused = runner.invoke(app, ["admin", "tenant", "delete", "acme"], input="n\n")
    assert refused.exit_code != 0  # asked, and not confirmed
    gone = runner.invoke(app, ["admin", "tenant", "delete", "acme", "--yes"])
    assert gone.exit_code == 0, gone.output
    assert '"tenant": "acme"' in gone.output and '"api_keys": 1' in gone.output
    listed = runner.invoke(app, ["admin", "tenant", "list"])
    assert "acme" not in listed.output
    again = runner.invoke(app, ["admin", "tenant", "delete", "acme", "--yes"])
    assert again.exit_code != 0
