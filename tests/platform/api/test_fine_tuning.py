"""/v1/fine_tuning/jobs at creation: which base-model references the operator's settings allow,
what the data must hold, the validation file's checks and the differential privacy a run could
not honour; all refused before a job exists. And a private job through the openai SDK."""

from __future__ import annotations

import json
from pathlib import Path

from tailorml.platform.settings import Settings
from tests.conftest import EXAMPLES
from tests.platform.api.test_errors import error
from tests.platform.test_files import upload


def _create(client, headers, **body):  # type: ignore[no-untyped-def]
    return client.post("/v1/fine_tuning/jobs", headers=headers, json=body)


def _rows(path: Path, n: int, labels: tuple[str, ...] = ("spam", "ham")) -> Path:
    path.write_text(
        "".join(
            json.dumps({"text": f"message number {i}", "label": labels[i % len(labels)]}) + "\n"
            for i in range(n)
        )
    )
    return path


def test_hub_ids_need_the_operator(client, acme, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    file_id = upload(client, acme, _rows(tmp_path / "t.jsonl", 10)).json()["id"]
    assert Settings.model_fields["allow_hub_models"].default is False
    settings.allow_hub_models = False
    err = error(_create(client, acme, model="org/some-model", training_file=file_id), 400)
    assert err["code"] == "model_not_available" and "TAILOR_ALLOW_HUB_MODELS" in err["message"]
    settings.allow_hub_models = True
    job = _create(client, acme, model="Org/Some-Model", training_file=file_id, suffix="x").json()
    assert job["status"] == "queued" and job["model"] == "Org/Some-Model"


def test_paths_off_answer_alike_whether_or_not_the_path_exists(
    client, acme, settings, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    file_id = upload(client, acme, _rows(tmp_path / "t.jsonl", 10)).json()["id"]
    settings.allow_model_paths = False
    (tmp_path / "models" / "real").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    answers = [
        error(_create(client, acme, model=name, training_file=file_id), 400)
        for name in ("models/real", "models/none", "/etc", "./models/real")
    ]
    # A relative name is never looked up on disk: the two answers differ only by the name.
    assert answers[0]["message"].replace("real", "none") == answers[1]["message"]
    assert all("TAILOR_ALLOW_MODEL_PATHS" in a["message"] for a in answers[2:])


def test_a_model_folder_is_checked_for_the_task(client, acme, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    file_id = upload(client, acme, _rows(tmp_path / "t.jsonl", 10)).json()["id"]
    err = error(
        _create(client, acme, model=str(tiny_models["decoder"]), training_file=file_id), 400
    )
    assert err["code"] == "invalid_task_for_model" and "classification" in err["message"]
    (tmp_path / "not-a-model").mkdir()
    err = error(
        _create(client, acme, model=str(tmp_path / "not-a-model"), training_file=file_id), 400
    )
    assert "config.json" in err["message"]
    job = _create(client, acme, model=str(tiny_models["encoder"]), training_file=file_id).json()
    assert job["status"] == "queued"


def test_ten_records_of_two_classes_are_enough(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nine = upload(client, acme, _rows(tmp_path / "nine.jsonl", 9)).json()["id"]
    err = error(_create(client, acme, model="minilm-l6", training_file=nine), 400)
    assert err["code"] == "too_few_records" and "9 record" in err["message"]
    ten = upload(client, acme, _rows(tmp_path / "ten.jsonl", 10)).json()["id"]
    assert _create(client, acme, model="minilm-l6", training_file=ten).status_code == 200


def test_the_validation_file_must_be_a_fine_tune_file(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train = upload(client, acme, EXAMPLES / "spam_assassin" / "test.jsonl").json()["id"]
    other = upload(client, acme, _rows(tmp_path / "v.jsonl", 4), purpose="user_data").json()["id"]
    err = error(
        _create(client, acme, model="minilm-l6", training_file=train, validation_file=other), 400
    )
    assert err["param"] == "validation_file" and "purpose=fine-tune" in err["message"]


def _dp(epsilon: float = 8.0, **more) -> dict:  # type: ignore[no-untyped-def]
    return {"type": "full", "training": {"differential_privacy": {"epsilon": epsilon, **more}}}


def test_differential_privacy_it_cannot_honour_is_refused(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spam = upload(client, acme, _rows(tmp_path / "spam.jsonl", 40)).json()["id"]

    def refused(method, training_file=spam):  # type: ignore[no-untyped-def]
        return error(_create(client, acme, model="minilm-l6", training_file=training_file,
                             method=method), 400)  # fmt: skip

    for epsilon in (0, -1, 101):
        assert refused(_dp(epsilon))["param"].endswith("epsilon")
    err = refused(_dp(delta=0.05))  # 40 records: delta must be below 1/40
    assert "below 1/N" in err["message"] and "0.025" in err["message"]
    assert err["param"] == "method.training.differential_privacy.delta"
    err = refused(_dp(0.005))
    assert "No amount of noise" in err["message"] and err["param"].endswith("epsilon")
    accumulated = _dp()
    accumulated["training"]["gradient_accumulation_steps"] = 2
    assert "raise batch_size" in refused(accumulated)["message"]
    assert refused(_dp(delta=0.001, accountant="prv"))["param"]  # unknown fields too
    chat = upload(client, acme, EXAMPLES / "glaive_chat" / "train.jsonl").json()["id"]
    err = error(_create(client, acme, model="smollm2-135m-instruct", training_file=chat,
                        method={"type": "lora", **_dp()}), 400)  # fmt: skip
    assert "classification jobs only" in err["message"]


def test_a_private_job_through_the_sdk_reports_its_epsilon(  # type: ignore[no-untyped-def]
    client, acme, settings, tiny_models, tmp_path
) -> None:
    from openai import OpenAI

    from tailorml.platform.jobs.worker import Worker
    from tests.platform.jobs.test_trainer_process import _lines

    sdk = OpenAI(base_url="http://testserver/v1", http_client=client, max_retries=0,
                 api_key=acme["Authorization"].removeprefix("Bearer "))  # fmt: skip
    with _lines(tmp_path, "train.jsonl", "train.jsonl", 40).open("rb") as f:
        file = sdk.files.create(file=f, purpose="fine-tune")
    job = sdk.fine_tuning.jobs.create(
        model=str(tiny_models["encoder"]),
        training_file=file.id,
        hyperparameters={"n_epochs": 2, "batch_size": 8},
        # No early stop: a run that stops early spends less than its epsilon.
        extra_body={
            "method": {
                **_dp(4.0),
                "training": {**_dp(4.0)["training"], "early_stopping_patience": 0},
            }
        },
    )
    assert Worker(settings).run(max_jobs=1) == 1
    done = sdk.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded", done.error
    metrics = done.to_dict()["metrics"]
    assert 4.0 - 0.01 <= metrics["epsilon_spent"] <= 4.0
    assert metrics["dp_delta"] == 1 / (10 * 36)  # 36 records trained, 4 held out
    events = [e.message for e in sdk.fine_tuning.jobs.list_events(job.id, limit=100)]
    said = " ".join(events)
    assert f"noise multiplier {metrics['dp_noise_multiplier']:.4g}" in said
    assert "(ε=4, δ=0.00278)-DP with respect to one training record" in said
    assert "not indexed for explain.neighbors" in said
