"""/v1/fine_tuning/jobs at creation: which base-model references the operator's settings allow,
what the data must hold, and the validation file's checks; all refused before a job exists."""

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
