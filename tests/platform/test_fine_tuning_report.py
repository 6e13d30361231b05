"""A succeeded fine-tune's evaluation report (JSON and a page) and its result file, through the
API: the report the training process wrote, the CSV of every step, another tenant refused."""

from __future__ import annotations

import csv
import io

import pytest

from tailorml.platform.jobs.fine_tune import results_csv
from tailorml.platform.jobs.worker import Worker
from tests.platform.jobs.test_trainer_process import _create, _job

pytest.importorskip("torch", reason="training needs the ml extra (torch)")


def test_report_and_result_file_of_a_succeeded_job(  # type: ignore[no-untyped-def]
    client, acme, globex, settings, tiny_models, tmp_path
) -> None:
    training = {"checkpoint_every": 100, "eval_every": 2, "metrics": ["macro_f1"]}
    job_id = _create(
        client,
        acme,
        tiny_models,
        tmp_path,
        epochs=2,
        method={"type": "full", "training": training},
    )
    res = client.get(f"/v1/fine_tuning/jobs/{job_id}/report", headers=acme)
    assert res.status_code == 409 and res.json()["error"]["code"] == "report_not_ready"
    assert Worker(settings).run(max_jobs=1) == 1
    job = _job(client, acme, job_id)
    assert job["status"] == "succeeded", job["error"]

    report = client.get(f"/v1/fine_tuning/jobs/{job_id}/report", headers=acme)
    assert report.status_code == 200
    body = report.json()
    assert body["fine_tuning_job_id"] == job_id and body["task"] == "classification"
    ev = body["evaluation"]
    assert ev["tuned"]["accuracy"] == pytest.approx(job["metrics"]["valid_accuracy"])
    assert ev["n"] == body["n_validation"] == 4  # 10 % of the 40 records, held out, seeded
    # Explained by the served model: attributions and the nearest training records.
    (first, *_) = body["explanations"]
    assert len(first["tokens"]) == len(first["attributions"]) and first["label"] in ("ham", "spam")
    assert len(first["neighbors"]) == 3 and 1 <= first["neighbors"][0]["line"] <= 40
    assert "default-src 'none'" in report.headers["content-security-policy"]
    page = client.get(f"/v1/fine_tuning/jobs/{job_id}/report?format=html", headers=acme)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Evaluation report" in page.text and "<svg" in page.text
    events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=100", headers=acme).json()
    said = [e["message"] for e in events["data"]]
    assert any(m.startswith("Evaluation report: accuracy") for m in said)
    assert any(m.startswith("Fidelity check: the served model answers") for m in said)

    (file_id,) = job["result_files"]
    meta = client.get(f"/v1/files/{file_id}", headers=acme).json()
    assert (meta["purpose"], meta["filename"]) == ("fine-tune-results", "step_metrics.csv")
    content = client.get(f"/v1/files/{file_id}/content", headers=acme)
    rows = list(csv.DictReader(io.StringIO(content.text)))
    assert list(rows[0])[:5] == [
        "step",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
    ]
    assert [int(r["step"]) for r in rows] == list(range(len(rows)))  # step 0 is the base
    assert rows[-1]["valid_macro_f1"] != "" and rows[1]["valid_loss"] == ""  # evaluated every 2

    for path in (f"/v1/fine_tuning/jobs/{job_id}/report", f"/v1/files/{file_id}/content"):
        other = client.get(path, headers=globex)
        assert other.status_code == 404, path


def test_metrics_are_checked_at_creation(client, acme, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.platform.jobs.test_trainer_process import _lines
    from tests.platform.test_files import upload

    file_id = upload(client, acme, _lines(tmp_path, "t.jsonl", "train.jsonl", 20)).json()["id"]
    body = {
        "model": str(tiny_models["encoder"]),
        "training_file": file_id,
        "method": {"type": "full", "training": {"metrics": ["f7"]}},
    }
    res = client.post("/v1/fine_tuning/jobs", headers=acme, json=body)
    assert res.status_code == 400
    assert "choose from" in res.json()["error"]["message"]
    body["method"] = {"type": "full", "training": {"judge_model": "smollm2-135m-instruct"}}
    res = client.post("/v1/fine_tuning/jobs", headers=acme, json=body)
    assert res.status_code == 400 and "judges generated answers" in res.json()["error"]["message"]


def test_a_judge_must_be_a_chat_model_the_tenant_can_use(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import EXAMPLES
    from tests.platform.test_files import upload

    path = tmp_path / "chat.jsonl"
    path.write_text((EXAMPLES / "glaive_chat" / "train.jsonl").read_text())
    file_id = upload(client, acme, path).json()["id"]
    for judge, why in (("minilm-l6", "neither one of your chat models"), ("ft:x:y", "neither")):
        body = {
            "model": "smollm2-135m-instruct",
            "training_file": file_id,
            "method": {"type": "lora", "training": {"judge_model": judge}},
        }
        res = client.post("/v1/fine_tuning/jobs", headers=acme, json=body)
        assert res.status_code == 400 and why in res.json()["error"]["message"], res.text
    body["method"] = {"type": "lora", "training": {"judge_model": "smollm2-135m-instruct"}}
    assert client.post("/v1/fine_tuning/jobs", headers=acme, json=body).status_code == 200


def test_results_csv_keeps_the_last_row_of_a_step_run_twice() -> None:
    rows = [
        {"step": 0, "valid_loss": 0.9},
        {"step": 1, "train_loss": 0.8},
        {"step": 1, "train_loss": 0.7},  # a resumed attempt ran step 1 again
        {"step": 2, "train_loss": 0.6, "valid_loss": 0.5, "valid_macro_f1": 0.4},
    ]
    parsed = list(csv.DictReader(io.StringIO(results_csv(rows).decode())))
    assert [r["train_loss"] for r in parsed] == ["", "0.7", "0.6"]
    assert parsed[2]["valid_macro_f1"] == "0.4"
