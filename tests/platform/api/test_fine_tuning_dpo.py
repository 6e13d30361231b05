"""Preference tuning through /v1/fine_tuning/jobs with the openai SDK: method dpo on a preference
file runs to success with its metrics (loss, accuracy, reward margin); dpo on other data,
another method on preference data, and a beta out of range are refused at creation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training needs the ml extra (torch)")

from openai import BadRequestError  # noqa: E402

from tailorml.platform.jobs.worker import Worker  # noqa: E402
from tests.conftest import EXAMPLES  # noqa: E402
from tests.platform.api.test_openai_sdk import sdk  # noqa: E402


def preference_file(path: Path, n: int) -> Path:
    """Real chats as pairs: the reply as written over the same reply in capitals."""
    lines = []
    for line in (EXAMPLES / "glaive_chat" / "train.jsonl").read_text().splitlines()[:n]:
        messages = json.loads(line)["messages"]
        reply = messages[-1]["content"]
        lines.append(
            json.dumps(
                {
                    "input": {"messages": messages[:-1]},
                    "preferred_output": [{"role": "assistant", "content": reply}],
                    "non_preferred_output": [{"role": "assistant", "content": reply.upper()}],
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_dpo_job_succeeds_with_its_metrics(client, acme, settings, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    openai = sdk(client, acme)
    uploaded = openai.files.create(
        file=preference_file(tmp_path / "pairs.jsonl", 24).open("rb"), purpose="fine-tune"
    )
    job = openai.fine_tuning.jobs.create(
        model=str(tiny_models["decoder"]),
        training_file=uploaded.id,
        method={
            "type": "dpo",
            "dpo": {
                "hyperparameters": {
                    "beta": 0.2,
                    "n_epochs": 2,
                    "batch_size": 4,
                    "learning_rate_multiplier": 100,
                }
            },
            "training": {"max_length": 96},  # type: ignore[typeddict-unknown-key]
        },  # fmt: skip
    )
    assert job.status == "queued" and job.method.type == "dpo"
    assert Worker(settings).run(max_jobs=1) == 1
    job = openai.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.method.dpo.hyperparameters.beta == 0.2  # the values in effect, as OpenAI answers
    assert job.hyperparameters.n_epochs == 2 and job.trained_tokens > 0
    events = list(openai.fine_tuning.jobs.list_events(job.id, limit=200))[::-1]
    assert any("Method dpo (lora): preference tuning with beta 0.2" in e.message for e in events)
    metrics = [e.data for e in events if e.type == "metrics"]
    base, final = metrics[0], metrics[-1]
    assert base["step"] == 0 and base["valid_accuracy"] == 0.0
    assert base["valid_reward_margin"] == 0.0
    assert final["step"] == final["total_steps"] and final["valid_reward_margin"] > 0
    assert final["valid_accuracy"] > 0.5 and final["valid_loss"] < base["valid_loss"]
    summary = job.model_extra["metrics"]  # type: ignore[index]
    assert summary["base_valid_accuracy"] == 0.0 and summary["valid_accuracy"] > 0.5
    assert "valid_reward_margin" in summary and job.model_extra["task"] == "preference"  # type: ignore[index]
    answer = openai.chat.completions.create(
        model=job.fine_tuned_model or "", max_tokens=4, temperature=0,
        messages=[{"role": "user", "content": "Can you help me book a flight to New York?"}],
    )  # fmt: skip
    assert answer.usage is not None and answer.usage.completion_tokens <= 4


def test_dpo_and_preference_data_go_together(client, acme, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    openai = sdk(client, acme)
    pairs = openai.files.create(
        file=preference_file(tmp_path / "pairs.jsonl", 12).open("rb"), purpose="fine-tune"
    ).id
    chats = openai.files.create(
        file=(EXAMPLES / "glaive_chat" / "train.jsonl").open("rb"), purpose="fine-tune"
    ).id
    model = str(tiny_models["decoder"])
    with pytest.raises(BadRequestError) as info:
        openai.fine_tuning.jobs.create(model=model, training_file=pairs)
    assert info.value.body["code"] == "invalid_method"  # type: ignore[index]
    assert "trains with method dpo, not supervised" in info.value.body["message"]  # type: ignore[index]
    with pytest.raises(BadRequestError) as info:
        openai.fine_tuning.jobs.create(model=model, training_file=pairs, method={"type": "lora"})
    assert info.value.body["param"] == "method.type"  # type: ignore[index]
    with pytest.raises(BadRequestError) as info:
        openai.fine_tuning.jobs.create(model=model, training_file=chats, method={"type": "dpo"})
    assert "upload a preference file" in info.value.body["message"]  # type: ignore[index]
    with pytest.raises(BadRequestError) as info:
        openai.fine_tuning.jobs.create(
            model=model, training_file=pairs,
            method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 5}}},
        )  # fmt: skip
    body = info.value.body
    assert body["param"] == "method.dpo.hyperparameters.beta" and "at most 2" in body["message"]  # type: ignore[index]
    with pytest.raises(BadRequestError) as info:
        openai.fine_tuning.jobs.create(
            model=model, training_file=pairs,
            method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 0}}},
        )  # fmt: skip
    assert "n_epochs" in info.value.body["message"]  # type: ignore[index]
    job = openai.fine_tuning.jobs.create(
        model=model,
        training_file=pairs,
        method={"type": "dpo", "dpo": {"tuning": "full"}},  # type: ignore[typeddict-unknown-key]
    )
    assert job.status == "queued"
