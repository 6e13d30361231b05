"""The same flow as test_openai_flow on the two real base models of the catalog:
all-MiniLM-L6-v2 (classification, full fine-tune) and SmolLM2-135M-Instruct (chat, LoRA).
Small slices of the example data keep it to a couple of minutes on 2 cores."""

from __future__ import annotations

import json

import pytest

from tests.conftest import EXAMPLES
from tests.e2e.conftest import all_events, wait_for

pytestmark = pytest.mark.slow


def lines(path, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    return path.read_text().splitlines(keepends=True)[:n]


def test_real_base_models(live_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = live_server(OMP_NUM_THREADS="2")
    client = server.client(server.create_tenant("acme"))
    ids = {m.id for m in client.models.list().data}
    assert {"minilm-l6", "smollm2-135m-instruct"} <= ids

    spam = tmp_path / "spam.jsonl"
    spam.write_text("".join(lines(EXAMPLES / "spam_assassin" / "train.jsonl", 160)))
    file = client.files.create(file=spam.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="minilm-l6",
        training_file=file.id,
        suffix="spam",
        hyperparameters={"n_epochs": 3, "batch_size": 16},
        method={"type": "supervised", "training": {"max_length": 128, "eval_every": 10}},
    )
    job = wait_for(client, job.id, timeout=600)
    assert job.status == "succeeded", job.error
    assert job.method.resolved == "full" and job.fine_tuned_model.startswith(
        "ft:minilm-l6:acme:spam:"
    )
    test = [json.loads(x) for x in lines(EXAMPLES / "spam_assassin" / "test.jsonl", 40)]
    res = client.post(
        "/classifications",
        body={"model": job.fine_tuned_model, "input": [r["text"] for r in test]},
        cast_to=object,
    )
    accuracy = sum(d["label"] == r["label"] for d, r in zip(res["data"], test, strict=True)) / len(
        test
    )
    assert accuracy >= 0.7, accuracy  # the classes are balanced: chance is 0.5

    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(lines(EXAMPLES / "glaive_chat" / "train.jsonl", 32)))
    valid = tmp_path / "valid.jsonl"
    valid.write_text("".join(lines(EXAMPLES / "glaive_chat" / "valid.jsonl", 8)))
    chat_file = client.files.create(file=chat.open("rb"), purpose="fine-tune")
    valid_file = client.files.create(file=valid.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct",
        training_file=chat_file.id,
        validation_file=valid_file.id,
        method={"type": "lora"},
        hyperparameters={"n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": 2},
    )
    job = wait_for(client, job.id, timeout=900)
    assert job.status == "succeeded", job.error
    assert job.metrics["valid_loss"] < job.metrics["base_valid_loss"]
    metrics = [e.data for e in all_events(client, job.id) if e.type == "metrics"]
    assert metrics[0]["step"] == 0 and metrics[0]["valid_loss"] == pytest.approx(
        job.metrics["base_valid_loss"]
    )
    prompt = [json.loads(lines(EXAMPLES / "glaive_chat" / "valid.jsonl", 1)[0])["messages"][0]]
    for model in ("smollm2-135m-instruct", job.fine_tuned_model):
        reply = client.chat.completions.create(
            model=model, messages=prompt, temperature=0, max_tokens=24
        )
        assert reply.choices[0].message.content.strip()
