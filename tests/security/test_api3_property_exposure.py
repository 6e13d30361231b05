"""API3 (broken object property level authorization): what the API answers must not carry server
internals (absolute paths in records' ``_meta``, reports and events), and what a tenant deleted
must not stay readable through objects derived from it."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from tailorml.platform.jobs.worker import Worker
from tests.conftest import EXAMPLES
from tests.platform.test_files import upload

RECIPE = "name: clean\nsteps:\n  - op: normalize\n  - op: exact_dedup\n"


def _dataset(client: TestClient, headers: dict[str, str], settings, tmp_path: Path) -> dict:  # type: ignore[no-untyped-def, type-arg]
    lines = (EXAMPLES / "spam_assassin" / "train.jsonl").read_text().splitlines(keepends=True)[:20]
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(lines + lines[:3]))
    file_id = upload(client, headers, raw, purpose="user_data").json()["id"]
    res = client.post("/v1/datasets", headers=headers, json={"files": [file_id], "recipe": RECIPE})
    assert res.status_code == 200, res.text
    settings.data_workers = 1
    assert Worker(settings).run(max_jobs=1) == 1
    ds = client.get(f"/v1/datasets/{res.json()['id']}", headers=headers).json()
    assert ds["status"] == "succeeded", ds["error"]
    return {**ds, "input": file_id}


def test_no_server_path_in_records_reports_or_events(client, acme, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = _dataset(client, acme, settings, tmp_path)
    base = f"/v1/datasets/{ds['id']}"
    answers = [
        client.get(base, headers=acme).text,
        client.get(f"{base}/records?limit=100", headers=acme).text,
        client.get(f"{base}/removed", headers=acme).text,
        client.get(f"{base}/report", headers=acme).text,
        client.get(f"{base}/report?format=html", headers=acme).text,
        client.get(f"{base}/events?limit=100", headers=acme).text,
    ]
    roots = {str(settings.data_dir.resolve()), str(tmp_path), str(Path.cwd())}
    for text in answers:
        for root in roots:
            assert root not in text and json.dumps(root)[1:-1] not in text
    meta = client.get(f"{base}/records", headers=acme).json()["data"][0]["_meta"]
    assert ds["input"] in json.dumps(meta)  # records still say which file they came from


def test_deleting_the_input_file_deletes_what_was_derived(client, acme, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = _dataset(client, acme, settings, tmp_path)
    base = f"/v1/datasets/{ds['id']}"
    assert client.delete(f"/v1/files/{ds['input']}", headers=acme).status_code == 200
    for path in ("records", "removed", "report"):
        res = client.get(f"{base}/{path}", headers=acme)
        assert res.status_code == 410 and res.json()["error"]["code"] == "dataset_inputs_deleted"
    assert client.get(f"/v1/files/{ds['output_file']}", headers=acme).status_code == 404
    assert not (settings.jobs_dir / ds["id"]).exists()
    job = client.post(
        "/v1/fine_tuning/jobs", headers=acme, json={"model": "minilm-l6", "training_file": ds["id"]}
    )
    assert job.status_code == 410


def test_delete_dataset(client, acme, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = _dataset(client, acme, settings, tmp_path)
    res = client.delete(f"/v1/datasets/{ds['id']}", headers=acme)
    assert res.status_code == 200 and res.json()["deleted"] is True
    assert client.get(f"/v1/datasets/{ds['id']}", headers=acme).status_code == 404
    assert client.get(f"/v1/files/{ds['output_file']}", headers=acme).status_code == 404
    assert not (settings.jobs_dir / ds["id"]).exists()
    assert client.get(f"/v1/files/{ds['input']}", headers=acme).status_code == 200
