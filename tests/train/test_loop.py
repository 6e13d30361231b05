"""The training loop: events, LoRA, outputs, checkpoints, exact resume and cancellation."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from tailorml.errors import InvalidRequestError, JobCancelledError
from tailorml.train.checkpoints import list_checkpoints
from tailorml.train.loop import TrainSpec, train

from .conftest import EventLog, glaive_chats, spam_records

METRIC_KEYS = {
    "type",
    "step",
    "total_steps",
    "epoch",
    "train_loss",
    "valid_loss",
    "valid_accuracy",
    "learning_rate",
    "trained_tokens",
}


def cls_spec(**overrides) -> TrainSpec:
    values = dict(
        task="classification",
        method="full",
        n_epochs=2,
        batch_size=8,
        learning_rate=1e-3,
        checkpoint_every=4,
        early_stopping_patience=None,  # these tests follow every step (test_selection.py stops)
    )
    values.update(overrides)
    return TrainSpec(**values)


def chat_spec(**overrides) -> TrainSpec:
    values = dict(
        task="chat",
        method="lora",
        n_epochs=2,
        batch_size=2,
        learning_rate=1e-2,
        max_length=128,
        checkpoint_every=3,
        early_stopping_patience=None,
    )
    values.update(overrides)
    return TrainSpec(**values)


class StopAfter:
    """``should_stop`` that turns True once ``step`` steps have run (it reads the events)."""

    def __init__(self, events: EventLog, step: int):
        self.events, self.step = events, step

    def __call__(self) -> bool:
        return bool(self.events.metrics) and self.events.metrics[-1]["step"] >= self.step


def test_events_and_outputs(tiny_encoder, tmp_path):
    events, saved = EventLog(), []
    records = spam_records("train", 60)
    result = train(
        cls_spec(),
        tiny_encoder,
        records,
        spam_records("dev", 20),
        tmp_path,
        on_event=events,
        on_checkpoint=saved.append,
    )
    metrics = events.metrics
    assert [m["step"] for m in metrics] == list(range(0, 17))  # 60 / 8 -> 8 steps x 2 epochs
    assert all(set(m) == METRIC_KEYS for m in metrics)
    assert metrics[0]["train_loss"] is None and metrics[0]["valid_accuracy"] is not None
    assert all(m["total_steps"] == 16 for m in metrics)
    assert metrics[8]["epoch"] == 1.0 and metrics[-1]["epoch"] == 2.0
    assert metrics[-1]["valid_loss"] is not None  # evaluated at the end
    rates = [m["learning_rate"] for m in metrics[1:]]
    assert rates[0] < rates[2] and rates[-1] < rates[2]  # warmup, then decay
    assert any("Training" in m for m in events.messages)

    assert [c.step for c in saved] == [4, 8, 12]  # every 4 steps and each epoch, not the last
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-8", "step-12"]
    state = json.loads((saved[-1].path / "trainer_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (12, 1, 4)
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pt", "model.safetensors"} <= {
        p.name for p in saved[-1].path.iterdir()
    }
    assert result.steps == 16 and result.trained_tokens > 0
    manifest = json.loads((result.model_dir / "tailor_model.json").read_text())
    assert manifest == {
        "task": "classification",
        "method": "full",
        "base": tiny_encoder.name,
        "base_path": str(tiny_encoder.path),
        "architecture": "encoder",
        "labels": ["ham", "spam"],
        "context_length": 512,
        "max_length": 512,
        "version": 1,
    }


def test_lora_chat_on_tiny_decoder(tiny_decoder, tmp_path):
    events = EventLog()
    chats = glaive_chats(12, max_chars=400)
    result = train(chat_spec(), tiny_decoder, chats, None, tmp_path, on_event=events)
    base, final = events.metrics[0], events.metrics[-1]
    assert final["valid_loss"] < base["valid_loss"]
    assert final["valid_accuracy"] is None
    names = {p.name for p in result.model_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tailor_model.json"} <= names
    assert "chat_template.jinja" in names or "tokenizer_config.json" in names
    assert "model.safetensors" not in names  # the adapter only
    adapter = json.loads((result.model_dir / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    manifest = json.loads((result.model_dir / "tailor_model.json").read_text())
    assert (manifest["method"], manifest["labels"], manifest["max_length"]) == ("lora", None, 128)


def final_weights(model_dir) -> dict[str, torch.Tensor]:
    name = (
        "adapter_model.safetensors"
        if (model_dir / "adapter_model.safetensors").exists()
        else ("model.safetensors")
    )
    return load_file(model_dir / name)


@pytest.mark.parametrize("kind", ["classification-full", "chat-lora"])
def test_resume_equals_an_uninterrupted_run(kind, tiny_encoder, tiny_decoder, tmp_path):
    if kind == "classification-full":
        spec, base, records = cls_spec(), tiny_encoder, spam_records("train", 60)
        stop_at, resume_step = 6, 4
    else:
        spec, base, records = chat_spec(), tiny_decoder, glaive_chats(12, max_chars=400)
        stop_at, resume_step = 5, 3
    whole_events = EventLog()
    whole = train(spec, base, records, None, tmp_path / "whole", on_event=whole_events)

    events = EventLog()
    with pytest.raises(JobCancelledError):
        train(
            spec,
            base,
            records,
            None,
            tmp_path / "parts",
            on_event=events,
            should_stop=StopAfter(events, stop_at),
        )
    checkpoint = tmp_path / "parts" / "checkpoints" / f"step-{resume_step}"
    assert checkpoint.is_dir()
    resumed_events = EventLog()
    resumed = train(
        spec,
        base,
        records,
        None,
        tmp_path / "parts",
        on_event=resumed_events,
        resume_from=checkpoint,
    )

    assert resumed.steps == whole.steps
    assert resumed.trained_tokens == whole.trained_tokens
    assert resumed.metrics.keys() == whole.metrics.keys()
    for key, value in whole.metrics.items():
        if value is None:
            assert resumed.metrics[key] is None, key
        else:
            assert resumed.metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    after = [m for m in whole_events.metrics if m["step"] > resume_step]
    assert len(after) == len(resumed_events.metrics)
    for a, b in zip(after, resumed_events.metrics, strict=True):
        assert b["step"] == a["step"]
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["learning_rate"] == pytest.approx(a["learning_rate"])
    expected, got = final_weights(whole.model_dir), final_weights(resumed.model_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6)


def test_resume_with_another_spec_is_refused(tiny_encoder, tmp_path):
    records = spam_records("train", 60)
    train(cls_spec(), tiny_encoder, records, None, tmp_path, on_event=EventLog())
    checkpoint = list_checkpoints(tmp_path / "checkpoints")[-1]
    with pytest.raises(InvalidRequestError, match="batch_size"):
        train(
            cls_spec(batch_size=4),
            tiny_encoder,
            records,
            None,
            tmp_path / "other",
            on_event=EventLog(),
            resume_from=checkpoint,
        )


def test_cancellation_stops_within_one_step(tiny_encoder, tmp_path):
    events = EventLog()
    with pytest.raises(JobCancelledError):
        train(
            cls_spec(),
            tiny_encoder,
            spam_records("train", 60),
            None,
            tmp_path,
            on_event=events,
            should_stop=StopAfter(events, 3),
        )
    assert events.metrics[-1]["step"] == 3
    assert not (tmp_path / "model").exists()


def test_cancellation_before_the_first_step(tiny_encoder, tmp_path):
    events = EventLog()
    with pytest.raises(JobCancelledError):
        train(
            cls_spec(),
            tiny_encoder,
            spam_records("train", 60),
            None,
            tmp_path,
            on_event=events,
            should_stop=lambda: True,
        )
    assert [m["step"] for m in events.metrics if m["step"] > 0] == []


def test_wrong_task_for_the_base_is_refused(tiny_decoder, tmp_path):
    with pytest.raises(InvalidRequestError, match="pick a base model for classification"):
        train(
            cls_spec(), tiny_decoder, spam_records("train", 20), None, tmp_path, on_event=EventLog()
        )


def test_records_of_another_task_are_refused(tiny_encoder, tmp_path):
    with pytest.raises(InvalidRequestError, match="is a chat record"):
        train(cls_spec(), tiny_encoder, glaive_chats(3), None, tmp_path, on_event=EventLog())


def test_invalid_spec_lists_every_problem(tiny_encoder, tmp_path):
    spec = cls_spec(n_epochs=0, learning_rate=0.0, valid_fraction=1.5)
    with pytest.raises(InvalidRequestError) as info:
        train(spec, tiny_encoder, spam_records("train", 20), None, tmp_path, on_event=EventLog())
    message = info.value.message
    assert "n_epochs" in message and "learning_rate" in message and "valid_fraction" in message


def test_the_run_says_its_effective_settings_and_what_it_cut(tiny_encoder, tmp_path):
    events = EventLog()
    records = spam_records("train", 30)  # e-mails: most are longer than 16 tokens
    train(cls_spec(n_epochs=1, max_length=16, gradient_accumulation_steps=2), tiny_encoder,
          records, None, tmp_path, on_event=events)  # fmt: skip
    settings = next(m for m in events.messages if m.startswith("Settings:"))
    assert "learning rate 0.001" in settings and "batch 8 x 2 accumulated = 16" in settings
    assert "max_length 16 tokens" in settings and "3 training records" in settings
    assert "held out" in settings
    cut = next(m for m in events.messages if "were cut" in m)
    found = re.match(r"(\d+) of 27 training records are longer than max_length=16 tokens", cut)
    assert found and 20 <= int(found.group(1)) <= 27, cut  # e-mails: nearly all longer


def test_metrics_named_in_the_spec_at_every_evaluation(tiny_encoder, tmp_path):
    from tailorml.eval.classification import load_classifier, predict_labels
    from tailorml.eval.metrics import step_metrics

    events = EventLog()
    valid = spam_records("dev", 12)
    spec = cls_spec(n_epochs=1, metrics=["macro_f1", "balanced_accuracy"])
    result = train(spec, tiny_encoder, spam_records("train", 24), valid, tmp_path, on_event=events)
    evaluated = [m for m in events.metrics if m["valid_loss"] is not None]
    assert all(0 <= m["valid_macro_f1"] <= 1 for m in evaluated)
    # The result is the best step's model; its figures are the ones recomputed from the folder.
    model, tokenizer, labels = load_classifier(result.model_dir)
    predicted = predict_labels(model, tokenizer, labels, [r.text for r in valid], 512)
    again = step_metrics(
        ["macro_f1"],
        [labels.index(r.label) for r in valid],
        [labels.index(p) for p in predicted],
        labels,
    )
    assert result.metrics["valid_macro_f1"] == pytest.approx(again["valid_macro_f1"], abs=1e-6)


def test_metrics_need_a_classifier_and_known_names(tiny_decoder, tiny_encoder, tmp_path):
    with pytest.raises(InvalidRequestError, match="metrics are computed over a classifier"):
        train(
            chat_spec(metrics=["macro_f1"]),
            tiny_decoder,
            glaive_chats(4),
            None,
            tmp_path,
            on_event=EventLog(),
        )
    with pytest.raises(InvalidRequestError, match="unknown metric.*'f9'"):
        train(
            cls_spec(metrics=["f9"]),
            tiny_encoder,
            spam_records("train", 8),
            None,
            tmp_path,
            on_event=EventLog(),
        )
