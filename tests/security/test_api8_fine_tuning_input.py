"""API8 (security misconfiguration): fine-tuning input the platform did not check at the door.

A classification file too small to train failed the job later with an internal IndexError; the
jobs routes answered 500 (or served the object) for a dataset's id; a model path was accepted
without being checked and its error showed the server's home folder; a hub name could make the
fine-tuned model id longer than its column; unbounded metadata was stored; and a job's internal
error quoted a server path.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Job, Model
from tailorml.platform.jobs.worker import Worker
from tests.conftest import EXAMPLES
from tests.platform import conftest as platform
from tests.platform.test_files import upload

# The platform suite's fixtures: settings on a fresh database (SQLite and PostgreSQL), a client
# of the app, and a tenant with a key.
settings, client, acme = platform.settings, platform.client, platform.acme


def _jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _create(client: TestClient, headers: dict[str, str], **body: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/fine_tuning/jobs", headers=headers, json=body)


def _spam(client: TestClient, headers: dict[str, str]) -> str:
    return str(upload(client, headers, EXAMPLES / "spam_assassin" / "test.jsonl").json()["id"])


def test_too_small_classification_files_are_refused_at_creation(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    two = _jsonl(
        tmp_path / "two.jsonl",
        [{"text": "free money now", "label": "spam"}, {"text": "lunch at noon?", "label": "ham"}],
    )
    res = _create(
        client, acme, model="minilm-l6", training_file=upload(client, acme, two).json()["id"]
    )
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert (error["code"], error["param"]) == ("too_few_records", "training_file")
    assert "at least 10" in error["message"] and "2 record" in error["message"]

    one_class = _jsonl(
        tmp_path / "one.jsonl", [{"text": f"offer {i}", "label": "spam"} for i in range(12)]
    )
    res = _create(
        client, acme, model="minilm-l6", training_file=upload(client, acme, one_class).json()["id"]
    )
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert error["code"] == "too_few_classes" and "at least 2 classes" in error["message"]
    assert client.get("/v1/fine_tuning/jobs", headers=acme).json()["data"] == []


def test_jobs_routes_answer_404_for_a_dataset_id(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    raw = _jsonl(tmp_path / "raw.jsonl", [{"text": f"row {i}"} for i in range(4)])
    raw_id = upload(client, acme, raw, purpose="user_data").json()["id"]
    ds = client.post(
        "/v1/datasets", headers=acme, json={"files": [raw_id], "recipe": "web-text-cleanup"}
    ).json()
    base = "/v1/fine_tuning/jobs"
    for job_id in (ds["id"], "ds-doesnotexist"):
        answers = [
            client.get(f"{base}/{job_id}", headers=acme),
            client.post(f"{base}/{job_id}/cancel", headers=acme),
            client.get(f"{base}/{job_id}/events", headers=acme),
            client.get(f"{base}/{job_id}/checkpoints", headers=acme),
        ]
        for res in answers:
            assert res.status_code == 404, res.text
            assert res.json()["error"]["code"] == "fine_tuning_job_not_found"
            assert res.json()["error"]["message"] == f"No such fine-tuning job: {job_id!r}."
    # The dataset itself was left alone by the cancel above.
    assert client.get(f"/v1/datasets/{ds['id']}", headers=acme).json()["status"] == "queued"


def test_a_model_path_is_checked_at_creation_and_never_expanded(client, acme, settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.allow_model_paths  # the operator allows paths; a missing one is still refused
    res = _create(client, acme, model="~/no-such-model-folder", training_file=_spam(client, acme))
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_available", "model")
    assert "'~/no-such-model-folder'" in error["message"]
    assert str(Path.home()) not in res.text


def test_a_long_hub_name_cannot_overflow_the_model_id(client, acme, settings) -> None:  # type: ignore[no-untyped-def]
    settings.allow_hub_models = True
    res = _create(
        client,
        acme,
        model="some-org/" + "m" * 240,
        suffix="s" * 64,
        training_file=_spam(client, acme),
    )
    assert res.status_code == 200, res.text
    with session_scope(client.app.state.tailor.sessions) as s:
        name = s.scalar(select(Job).where(Job.id == res.json()["id"])).spec["fine_tuned_model"]
    assert len(name) <= Model.__table__.c.id.type.length


def test_unbounded_strings_are_refused_before_the_database(client, acme) -> None:  # type: ignore[no-untyped-def]
    file_id = _spam(client, acme)
    cases = {
        "metadata": {"metadata": {f"k{i}": "v" for i in range(17)}},
        "metadata.note": {"metadata": {"note": "x" * 513}},
        "model": {"model": "/" + "m" * 300},
        "training_file": {"training_file": "file-" + "0" * 300},
        "method.lora.lora_target_modules": {
            "method": {"type": "lora", "lora": {"lora_target_modules": ["q" * 500]}}
        },
    }
    for param, extra in cases.items():
        body = {"model": "minilm-l6", "training_file": file_id, **extra}
        res = client.post("/v1/fine_tuning/jobs", headers=acme, json=body)
        assert res.status_code == 400, (param, res.text)
        assert res.json()["error"]["param"].startswith(param.split(".")[0]), res.text
    assert client.get("/v1/fine_tuning/jobs", headers=acme).json()["data"] == []


def test_a_job_error_quotes_no_server_path(client, acme, settings) -> None:  # type: ignore[no-untyped-def]
    file_id = _spam(client, acme)
    job = _create(client, acme, model="minilm-l6", training_file=file_id).json()
    state = client.app.state.tailor
    with session_scope(state.sessions) as s:
        key = s.get(Job, job["id"]).spec["training_file_key"]
    state.storage.path(key).unlink()  # the stored file vanished under the job
    assert Worker(settings).run(max_jobs=1) == 1
    job = client.get(f"/v1/fine_tuning/jobs/{job['id']}", headers=acme).json()
    assert job["status"] == "failed" and job["error"]["code"] == "internal_error"
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events", headers=acme).text
    for answer in (json.dumps(job), events):
        assert str(settings.data_dir.resolve()) not in answer and "/files/" not in answer
