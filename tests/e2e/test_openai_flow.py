"""The whole flow through the official OpenAI SDK against a live server: upload, job, events,
poll to succeeded, use the model; on tiny models so it runs in seconds."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import EXAMPLES
from tests.e2e.conftest import all_events, wait_for


def subset(src, dst, n: int):  # type: ignore[no-untyped-def]
    dst.write_text("".join(src.read_text().splitlines(keepends=True)[:n]))
    return dst


def test_classification_and_chat_flow(live_server, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = live_server()
    client = server.client(server.create_tenant("acme"))

    # Classification on real e-mails, on a tiny BERT.
    train = subset(EXAMPLES / "spam_assassin" / "train.jsonl", tmp_path / "spam.jsonl", 60)
    uploaded = client.files.create(file=train.open("rb"), purpose="fine-tune")
    assert uploaded.status == "processed"
    job = client.fine_tuning.jobs.create(
        model=str(tiny_models["encoder"]),
        training_file=uploaded.id,
        suffix="spam",
        hyperparameters={"n_epochs": 2, "batch_size": 8},
        # Every step, so the epoch-end checkpoint exists (TailorML extension).
        method={"type": "supervised", "training": {"early_stopping_patience": 0}},  # type: ignore[typeddict-unknown-key]
    )
    assert job.status in ("queued", "running") and job.fine_tuned_model is None
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith("ft:tiny-bert:acme:spam:")
    assert job.hyperparameters.n_epochs == 2 and job.trained_tokens > 0
    events = all_events(client, job.id)
    messages = [e.message for e in events]
    assert (
        messages[0].startswith("Validating training file")
        and messages[-1] == "The job has successfully completed."
    )
    metrics = [e.data for e in events if e.type == "metrics"]
    assert metrics and metrics[-1]["step"] == metrics[-1]["total_steps"]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].fine_tuned_model_checkpoint.startswith(
        job.fine_tuned_model
    )
    listed = [m.id for m in client.models.list().data]
    assert job.fine_tuned_model in listed
    # A checkpoint is a model too: listed, and it classifies.
    step = checkpoints[0].fine_tuned_model_checkpoint
    assert step in listed
    early = client.post("/classifications", body={"model": step, "input": ["win money now"]},
                        cast_to=object)  # fmt: skip
    assert early["data"][0]["label"] in ("ham", "spam") and early["model"] == step
    texts = [
        json.loads(line)["text"]
        for line in (EXAMPLES / "spam_assassin" / "test.jsonl").read_text().splitlines()[:3]
    ]
    res = client.post(
        "/classifications", body={"model": job.fine_tuned_model, "input": texts}, cast_to=object
    )
    assert [d["index"] for d in res["data"]] == [0, 1, 2]
    for item in res["data"]:
        assert item["label"] in ("ham", "spam") and abs(sum(item["scores"].values()) - 1) < 1e-4
    why = client.post(
        "/classifications",
        body={"model": job.fine_tuned_model, "input": texts[0], "explain": True},
        cast_to=object,
    )["data"][0]
    assert why["label"] == res["data"][0]["label"]
    ex = why["explanation"]
    assert ex["target"] == why["label"] and len(ex["tokens"]) == len(ex["attributions"]) > 2
    assert abs(sum(ex["attributions"]) - (why["score"] - ex["baseline_score"])) < 0.05
    # The report of the job, and its step metrics as a file, through the SDK.
    report = client.get(f"/fine_tuning/jobs/{job.id}/report", cast_to=object)
    assert report["evaluation"]["tuned"]["accuracy"] >= 0
    (results,) = job.result_files
    assert client.files.content(results).text.startswith("step,train_loss,train_accuracy")
    vectors = client.embeddings.create(model="minilm-l6", input=texts[:2]).data
    assert len(vectors) == 2 and len(vectors[0].embedding) == 384

    # Chat SFT with LoRA on real chats, on a tiny Llama.
    chat = subset(EXAMPLES / "glaive_chat" / "train.jsonl", tmp_path / "chat.jsonl", 24)
    chat_file = client.files.create(file=chat.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=str(tiny_models["decoder"]),
        training_file=chat_file.id,
        method={"type": "lora", "training": {"checkpoint_every": 2, "early_stopping_patience": 0}},  # type: ignore[typeddict-unknown-key]
        hyperparameters={"n_epochs": 1, "batch_size": 4},
    )
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.method.type == "lora"
    model = job.fine_tuned_model
    messages = [{"role": "user", "content": "Can you help me book a flight to New York?"}]
    ckpt = client.fine_tuning.jobs.checkpoints.list(job.id).data[0].fine_tuned_model_checkpoint
    early_answer = client.chat.completions.create(
        model=ckpt, messages=messages, max_tokens=4, temperature=0
    )
    assert early_answer.model == ckpt and early_answer.usage.completion_tokens <= 4
    answer = client.chat.completions.create(
        model=model, messages=messages, max_tokens=8, temperature=0
    )
    assert (
        answer.choices[0].finish_reason in ("stop", "length")
        and answer.usage.completion_tokens <= 8
    )
    streamed = client.chat.completions.create(
        model=model, messages=messages, max_tokens=8, temperature=0, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == answer.choices[0].message.content
    completion = client.completions.create(model=model, prompt="Hello", max_tokens=5, temperature=0)
    assert completion.usage.completion_tokens <= 5

    # Errors come back in OpenAI's shape, through the SDK's exception classes.
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="ft:nope:acme::12345678", messages=messages)
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "word " * 5000}]
        )
    assert info.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=messages, temperature="hot")
    assert info.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/classifications", body={"model": model, "input": "hi"}, cast_to=object)
    assert info.value.body["code"] == "invalid_model_for_endpoint"


def test_tenants_cannot_see_each_other(live_server, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = live_server()
    acme, globex = (
        server.client(server.create_tenant("acme")),
        server.client(server.create_tenant("globex")),
    )
    train = subset(EXAMPLES / "spam_assassin" / "train.jsonl", tmp_path / "spam.jsonl", 24)
    file = acme.files.create(file=train.open("rb"), purpose="fine-tune")
    job = wait_for(
        acme,
        acme.fine_tuning.jobs.create(
            model=str(tiny_models["encoder"]),
            training_file=file.id,
            hyperparameters={"n_epochs": 1},
        ).id,
    )
    assert job.status == "succeeded", job.error

    for call in (
        lambda: globex.files.retrieve(file.id),
        lambda: globex.files.content(file.id),
        lambda: globex.fine_tuning.jobs.retrieve(job.id),
        lambda: globex.fine_tuning.jobs.list_events(job.id),
        lambda: globex.fine_tuning.jobs.cancel(job.id),
        lambda: globex.models.retrieve(job.fine_tuned_model),
        lambda: globex.post(
            "/classifications", body={"model": job.fine_tuned_model, "input": "x"}, cast_to=object
        ),
        lambda: globex.fine_tuning.jobs.create(
            model=str(tiny_models["encoder"]), training_file=file.id
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert globex.files.list().data == [] and globex.fine_tuning.jobs.list().data == []
    assert job.fine_tuned_model not in [m.id for m in globex.models.list().data]
    with pytest.raises(openai.AuthenticationError):
        server.client("tk-0123456789abcdef-not-a-real-key").models.list()
