"""API4 (unrestricted resource consumption): one tenant's backlog starved the others, because the
queue claimed strictly by creation time; the claim now takes turns between tenants."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tailorml.platform.jobs import queue
from tests.conftest import EXAMPLES
from tests.platform import conftest as platform
from tests.platform.test_files import upload

# The platform suite's fixtures: settings on a fresh database (SQLite and PostgreSQL), a client
# of the app, and two tenants with keys.
settings, client, acme, globex = platform.settings, platform.client, platform.acme, platform.globex

BACKLOG = 50


def _create(client: TestClient, headers: dict[str, str], file_id: str) -> str:
    res = client.post(
        "/v1/fine_tuning/jobs",
        headers=headers,
        json={"model": "minilm-l6", "training_file": file_id},
    )
    assert res.status_code == 200, res.text
    return str(res.json()["id"])


def test_a_backlog_of_one_tenant_does_not_delay_another(client, acme, globex, settings) -> None:  # type: ignore[no-untyped-def]
    settings.max_active_jobs_per_tenant = BACKLOG + 1  # the backlog itself is allowed here
    spam = EXAMPLES / "spam_assassin" / "test.jsonl"
    acme_file = upload(client, acme, spam).json()["id"]
    globex_file = upload(client, globex, spam).json()["id"]
    for _ in range(BACKLOG):
        _create(client, acme, acme_file)
    late = _create(client, globex, globex_file)

    sessions = client.app.state.tailor.sessions
    first_two = [queue.claim(sessions, worker_id=f"w{i}", lease_seconds=60) for i in range(2)]
    assert late in [c.job_id for c in first_two if c is not None]
    # And with globex served, the next turn is acme's again, not globex's.
    third = queue.claim(sessions, worker_id="w2", lease_seconds=60)
    assert third is not None and third.job_id != late
