"""Overfitting control: the best evaluated model is the result, and a run whose validation loss
stops improving stops early, saying so."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from tailorml.train.evaluation import evaluate
from tailorml.train.loop import Recipe, TrainSpec, train

from .conftest import EventLog, spam_records


def overfitting_spec(**overrides) -> TrainSpec:  # type: ignore[no-untyped-def]
    # 16 e-mails, many epochs, a large rate: the validation loss falls, then climbs.
    values = dict(task="classification", method="full", n_epochs=12, batch_size=4,
                  learning_rate=3e-3, eval_every=2, checkpoint_every=1000)  # fmt: skip
    values.update(overrides)
    return TrainSpec(**values)  # type: ignore[arg-type]


def _valid_loss(model_dir, spec, base, train_records, valid_records, tmp_path) -> float:  # type: ignore[no-untyped-def]
    probe = Recipe(spec, base, tmp_path, on_event=EventLog())
    probe.setup_data(train_records, valid_records)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    loss = evaluate(probe.task, model, probe.data.valid, probe.data.pad_id, 8)["valid_loss"]
    assert loss is not None
    return loss


def test_a_run_that_overfits_stops_early_and_returns_its_best_model(tiny_encoder, tmp_path):
    records, valid = spam_records("train", 16), spam_records("dev", 24)
    events = EventLog()
    spec = overfitting_spec()
    result = train(spec, tiny_encoder, records, valid, tmp_path / "run", on_event=events)
    evaluated = [
        (m["step"], m["valid_loss"]) for m in events.metrics if m["valid_loss"] is not None
    ]
    best_step, best_loss = min(evaluated[1:], key=lambda pair: pair[1])  # step 0 is the base
    total = events.metrics[0]["total_steps"]
    assert result.steps < total  # it stopped early ...
    assert all(loss > best_loss for _, loss in evaluated[-3:])  # patience 3: three worse
    assert any("stopping early" in m for m in events.messages)
    # ... and the result is the best model, not the last one.
    assert result.metrics["best_step"] == best_step and best_step < result.steps
    assert result.metrics["valid_loss"] == pytest.approx(best_loss)
    on_disk = _valid_loss(result.model_dir, spec, tiny_encoder, records, valid, tmp_path / "p")
    assert on_disk == pytest.approx(best_loss, rel=1e-4)
    assert not list((tmp_path / "run").glob("best-step-*"))  # copied into model/, then removed


@pytest.mark.parametrize("patience", [None, 0])
def test_without_patience_it_runs_every_step_and_still_returns_the_best(
    tiny_encoder, tmp_path, patience
):
    records, valid = spam_records("train", 16), spam_records("dev", 24)
    events = EventLog()
    spec = overfitting_spec(early_stopping_patience=patience)
    result = train(spec, tiny_encoder, records, valid, tmp_path, on_event=events)
    evaluated = [
        (m["step"], m["valid_loss"]) for m in events.metrics[1:] if m["valid_loss"] is not None
    ]
    best_step, best_loss = min(evaluated, key=lambda pair: pair[1])
    assert result.steps == events.metrics[0]["total_steps"]
    assert result.metrics["best_step"] == best_step
    assert result.metrics["valid_loss"] == pytest.approx(best_loss)


def test_patience_cannot_be_negative(tiny_encoder, tmp_path):
    with pytest.raises(Exception, match="early_stopping_patience"):
        train(overfitting_spec(early_stopping_patience=-1), tiny_encoder, spam_records("train", 8),
              [], tmp_path, on_event=EventLog())  # fmt: skip
