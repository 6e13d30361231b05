"""Bad requests get OpenAI's error object with the right 4xx status, and change nothing."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLES
from tests.platform.test_files import upload


def error(res, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert res.status_code == status, res.text
    body = res.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["code"], str) and body["error"]["message"]
    return body["error"]


@pytest.fixture
def spam_file(client, acme) -> str:  # type: ignore[no-untyped-def]
    return upload(client, acme, EXAMPLES / "spam_assassin" / "test.jsonl").json()["id"]


def test_malformed_json(client, acme) -> None:  # type: ignore[no-untyped-def]
    res = client.post(
        "/v1/fine_tuning/jobs",
        headers={**acme, "Content-Type": "application/json"},
        content=b"{model: ",
    )
    assert error(res, 400)["code"] == "invalid_json"


def test_wrong_types_and_missing_fields(client, acme, spam_file) -> None:  # type: ignore[no-untyped-def]
    err = error(
        client.post(
            "/v1/fine_tuning/jobs", headers=acme, json={"model": 3, "training_file": spam_file}
        ),
        400,
    )
    assert err["param"] == "model"
    err = error(client.post("/v1/fine_tuning/jobs", headers=acme, json={"model": "minilm-l6"}), 400)
    assert (err["param"], err["code"]) == ("training_file", "missing_required_parameter")
    body = {
        "model": "minilm-l6",
        "training_file": spam_file,
        "hyperparameters": {"n_epochs": "many"},
    }
    assert error(client.post("/v1/fine_tuning/jobs", headers=acme, json=body), 400)[
        "param"
    ].startswith("hyperparameters")
    body["hyperparameters"] = {"n_epochs": 500}
    assert (
        error(client.post("/v1/fine_tuning/jobs", headers=acme, json=body), 400)["param"]
        == "hyperparameters.n_epochs"
    )
    err = error(
        client.post(
            "/v1/chat/completions",
            headers=acme,
            json={"model": "smollm2-135m-instruct", "messages": "hi"},
        ),
        400,
    )
    assert err["param"] == "messages"
    assert (
        client.get("/v1/fine_tuning/jobs", headers=acme).json()["data"] == []
    )  # nothing half-written


def test_unknown_models(client, acme, spam_file) -> None:  # type: ignore[no-untyped-def]
    err = error(
        client.post(
            "/v1/fine_tuning/jobs",
            headers=acme,
            json={"model": "gpt-9", "training_file": spam_file},
        ),
        400,
    )
    assert (err["code"], err["param"]) == ("model_not_available", "model")
    err = error(
        client.post(
            "/v1/chat/completions",
            headers=acme,
            json={"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]},
        ),
        404,
    )
    assert err["code"] == "model_not_found"
    err = error(
        client.post(
            "/v1/embeddings",
            headers=acme,
            json={"model": "ft:minilm-l6:acme::deadbeef", "input": "hi"},
        ),
        404,
    )
    assert err["code"] == "model_not_found"


def test_task_must_fit_the_base(client, acme) -> None:  # type: ignore[no-untyped-def]
    chat = upload(client, acme, EXAMPLES / "glaive_chat" / "valid.jsonl").json()["id"]
    err = error(
        client.post(
            "/v1/fine_tuning/jobs", headers=acme, json={"model": "minilm-l6", "training_file": chat}
        ),
        400,
    )
    assert err["code"] == "invalid_task_for_model" and "chat" in err["message"]


def test_embedding_pairs_make_a_job(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests import fixture_data

    pairs = tmp_path / "pairs.jsonl"
    near = fixture_data.near_duplicate_pairs()[:12]
    pairs.write_text("".join(json.dumps({"anchor": a, "positive": b}) + "\n" for a, b in near))
    file_id = upload(client, acme, pairs).json()["id"]
    res = client.post(
        "/v1/fine_tuning/jobs", headers=acme, json={"model": "minilm-l6", "training_file": file_id}
    )
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "queued"


def test_model_paths_need_the_operator(client, acme, spam_file, settings) -> None:  # type: ignore[no-untyped-def]
    settings.allow_model_paths = False
    err = error(
        client.post(
            "/v1/fine_tuning/jobs",
            headers=acme,
            json={"model": "/models/mine", "training_file": spam_file},
        ),
        400,
    )
    assert "TAILOR_ALLOW_MODEL_PATHS" in err["message"]


def test_unknown_route_and_method(client, acme) -> None:  # type: ignore[no-untyped-def]
    assert error(client.get("/v1/nothing-here", headers=acme), 404)["code"] == "not_found"
    assert (
        error(client.delete("/v1/fine_tuning/jobs", headers=acme), 405)["code"]
        == "method_not_allowed"
    )


def test_body_too_large(client, acme, settings) -> None:  # type: ignore[no-untyped-def]
    big = {"model": "minilm-l6", "input": "spam " * (settings.max_request_bytes // 5 + 10)}
    assert (
        error(client.post("/v1/embeddings", headers=acme, json=big), 413)["code"]
        == "payload_too_large"
    )


def test_cancel_queued_and_finished_jobs(client, acme, spam_file) -> None:  # type: ignore[no-untyped-def]
    job = client.post(
        "/v1/fine_tuning/jobs",
        headers=acme,
        json={"model": "minilm-l6", "training_file": spam_file},
    ).json()
    assert job["status"] == "queued" and job["hyperparameters"]["n_epochs"] == "auto"
    assert (
        client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=acme).json()["status"]
        == "cancelled"
    )
    err = error(client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=acme), 409)
    assert "cancelled" in err["message"]


def test_files_in_use_cannot_be_deleted(client, acme, spam_file) -> None:  # type: ignore[no-untyped-def]
    client.post(
        "/v1/fine_tuning/jobs",
        headers=acme,
        json={"model": "minilm-l6", "training_file": spam_file},
    )
    assert error(client.delete(f"/v1/files/{spam_file}", headers=acme), 409)["param"] == "file_id"


def test_job_listing_pages(client, acme, spam_file) -> None:  # type: ignore[no-untyped-def]
    ids = [
        client.post(
            "/v1/fine_tuning/jobs",
            headers=acme,
            json={"model": "minilm-l6", "training_file": spam_file},
        ).json()["id"]
        for _ in range(3)
    ]
    page = client.get("/v1/fine_tuning/jobs?limit=2", headers=acme).json()
    assert page["has_more"] is True and len(page["data"]) == 2
    rest = client.get(
        f"/v1/fine_tuning/jobs?limit=2&after={page['data'][-1]['id']}", headers=acme
    ).json()
    assert rest["has_more"] is False
    assert sorted(j["id"] for j in page["data"] + rest["data"]) == sorted(ids)
