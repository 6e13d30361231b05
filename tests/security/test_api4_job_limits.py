"""API4 (unrestricted resource consumption): a tenant could queue any number of jobs at once; now
its active jobs of every kind are capped (429 beyond), and other tenants are not affected."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.conftest import EXAMPLES
from tests.platform import conftest as platform
from tests.platform.test_files import upload

# The platform suite's fixtures: settings on a fresh database (SQLite and PostgreSQL), a client
# of the app, and two tenants with keys.
settings, client, acme, globex = platform.settings, platform.client, platform.acme, platform.globex


def _job(client: TestClient, headers: dict[str, str], file_id: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/fine_tuning/jobs",
        headers=headers,
        json={"model": "minilm-l6", "training_file": file_id},
    )


def test_active_jobs_beyond_the_cap_answer_429(client, acme, globex, settings) -> None:  # type: ignore[no-untyped-def]
    settings.max_active_jobs_per_tenant = 3
    spam = EXAMPLES / "spam_assassin" / "test.jsonl"
    file_id = upload(client, acme, spam).json()["id"]
    ids = [_job(client, acme, file_id).json()["id"] for _ in range(3)]

    res = _job(client, acme, file_id)
    assert res.status_code == 429, res.text
    error = res.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "too_many_active_jobs"
    assert "3 active jobs" in error["message"] and "limit is 3" in error["message"]
    assert len(client.get("/v1/fine_tuning/jobs", headers=acme).json()["data"]) == 3

    # Another tenant keeps its own room; a cancelled job frees a place.
    other = upload(client, globex, spam).json()["id"]
    assert _job(client, globex, other).status_code == 200
    client.post(f"/v1/fine_tuning/jobs/{ids[0]}/cancel", headers=acme)
    assert _job(client, acme, file_id).status_code == 200


def test_datasets_count_toward_the_cap(client, acme, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.max_active_jobs_per_tenant = 2
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(4)))
    raw_id = upload(client, acme, raw, purpose="user_data").json()["id"]
    for _ in range(2):
        res = client.post(
            "/v1/datasets", headers=acme, json={"files": [raw_id], "recipe": "web-text-cleanup"}
        )
        assert res.status_code == 200, res.text
    spam = upload(client, acme, EXAMPLES / "spam_assassin" / "test.jsonl").json()["id"]
    res = _job(client, acme, spam)
    assert res.status_code == 429 and res.json()["error"]["code"] == "too_many_active_jobs"
