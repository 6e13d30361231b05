"""/v1/datasets: a recipe over uploaded files as a job; records, report, removed, and the result
used as a fine-tuning file. Runs the real worker and the real data runner."""

from __future__ import annotations

from tailorml.platform.jobs.worker import Worker
from tests.conftest import EXAMPLES
from tests.platform.test_files import upload

RECIPE = """
name: spam-clean
steps:
  - op: normalize
  - op: length
    unit: words
    min: 3
  - op: exact_dedup
"""


def test_dataset_flow(client, acme, globex, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lines = (EXAMPLES / "spam_assassin" / "train.jsonl").read_text().splitlines(keepends=True)[:50]
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(lines + lines[:7]))  # seven exact duplicates
    file_id = upload(client, acme, raw, purpose="user_data").json()["id"]

    res = client.post(
        "/v1/datasets", headers=acme, json={"files": [file_id], "recipe": RECIPE, "name": "spam"}
    )
    assert res.status_code == 200, res.text
    ds = res.json()
    assert ds["object"] == "dataset" and ds["status"] == "queued" and ds["version"] == 1
    assert client.get(f"/v1/datasets/{ds['id']}/records", headers=acme).status_code == 409

    settings.data_workers = 1
    assert Worker(settings).run(max_jobs=1) == 1
    ds = client.get(f"/v1/datasets/{ds['id']}", headers=acme).json()
    assert ds["status"] == "succeeded", ds["error"]
    assert ds["counts"]["written"] == 50 and ds["counts"]["removed"] == 7

    records = client.get(f"/v1/datasets/{ds['id']}/records?limit=5", headers=acme).json()["data"]
    assert len(records) == 5 and {"text", "label"} <= set(records[0])
    removed = client.get(f"/v1/datasets/{ds['id']}/removed", headers=acme).json()["data"]
    assert len(removed) == 7
    report = client.get(f"/v1/datasets/{ds['id']}/report", headers=acme).json()
    removed_by = {op["op"]: op["removed"] for op in report["ops"]}
    assert removed_by["exact_dedup"] == 7 and removed_by["normalize"] == 0
    assert all(row["op"] == "exact_dedup" and row["reason"] for row in removed)
    html = client.get(f"/v1/datasets/{ds['id']}/report?format=html", headers=acme)
    assert html.headers["content-type"].startswith("text/html") and "<svg" in html.text

    out = client.get(f"/v1/files/{ds['output_file']}", headers=acme).json()
    assert (
        out["status"] == "processed" and out["task"] == "classification" and out["n_records"] == 50
    )
    job = client.post(
        "/v1/fine_tuning/jobs", headers=acme, json={"model": "minilm-l6", "training_file": ds["id"]}
    ).json()
    assert job["training_file"] == ds["output_file"] and job["status"] == "queued"

    # Another tenant sees none of it.
    assert client.get(f"/v1/datasets/{ds['id']}", headers=globex).status_code == 404
    assert client.get(f"/v1/datasets/{ds['id']}/records", headers=globex).status_code == 404
    assert client.get("/v1/datasets", headers=globex).json()["data"] == []
    again = client.post(
        "/v1/datasets", headers=acme, json={"files": [file_id], "recipe": RECIPE, "name": "spam"}
    )
    assert again.json()["version"] == 2


def test_bad_recipes_list_every_problem(client, acme) -> None:  # type: ignore[no-untyped-def]
    file_id = upload(
        client, acme, EXAMPLES / "spam_assassin" / "test.jsonl", purpose="user_data"
    ).json()["id"]
    bad = "name: x\nsteps:\n  - op: normalise\n  - op: length\n    min: many\n"
    res = client.post("/v1/datasets", headers=acme, json={"files": [file_id], "recipe": bad})
    assert res.status_code == 400
    message = res.json()["error"]["message"]
    assert "normalise" in message and "min" in message
    res = client.post(
        "/v1/datasets", headers=acme, json={"files": [file_id], "recipe": "no-such-recipe"}
    )
    assert res.status_code == 400 and "classification-cleanup" in res.json()["error"]["message"]
    res = client.post(
        "/v1/datasets", headers=acme, json={"files": ["file-missing"], "recipe": "pii-safe"}
    )
    assert res.status_code == 404 and res.json()["error"]["param"] == "files[0]"
