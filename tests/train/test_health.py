"""The training health guard: a poisoned batch (NaN loss) is skipped and its records
quarantined, and the run ends like the clean one; bad weights roll back to the last checkpoint;
a run that keeps faulting stops with an error that says what to do."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import pytest
import torch

from tailorml.errors import InvalidRequestError
from tailorml.train.health import GradientWatch
from tailorml.train.loop import Recipe, TrainSpec, train

from .conftest import EventLog, spam_records

POISONED = {5, 17}  # training-file indices of the records whose batches give a NaN loss


def spec(**overrides) -> TrainSpec:  # type: ignore[no-untyped-def]
    values = dict(task="classification", method="full", n_epochs=2, batch_size=8,
                  learning_rate=1e-3, early_stopping_patience=None, checkpoint_every=3)  # fmt: skip
    values.update(overrides)
    return TrainSpec(**values)  # type: ignore[arg-type]


@contextlib.contextmanager
def nan_scores(recipe: Recipe) -> Iterator[None]:
    """The injected fault: while inside, every batch the recipe scores has a NaN loss."""
    original = recipe.task.score

    def nan_score(model, batch):  # type: ignore[no-untyped-def]
        score = original(model, batch)
        score.loss = score.loss * float("nan")
        return score

    recipe.task.score = nan_score  # type: ignore[method-assign]
    try:
        yield
    finally:
        recipe.task.score = original  # type: ignore[method-assign]


class Poisoned(Recipe):
    """A batch holding a poisoned record scores NaN."""

    def train_step(self, micro_batches):  # type: ignore[no-untyped-def]
        records = {e.record for batch in micro_batches for e in batch}
        if records & POISONED:
            with nan_scores(self):
                return super().train_step(micro_batches)
        return super().train_step(micro_batches)


def test_a_poisoned_batch_is_skipped_and_its_records_quarantined(tiny_encoder, tmp_path):
    records, valid = spam_records("train", 64), spam_records("dev", 24)
    clean_events, poisoned_events = EventLog(), EventLog()
    clean = train(spec(), tiny_encoder, records, valid, tmp_path / "clean", on_event=clean_events)
    hit = train(spec(), tiny_encoder, records, valid, tmp_path / "hit", on_event=poisoned_events,
                recipe=Poisoned)  # fmt: skip
    assert hit.steps == clean.steps
    quarantined = hit.metrics["quarantined_records"]
    assert POISONED <= set(quarantined) and len(quarantined) <= 4 * 8  # whole batches, no more
    skipped = [m for m in poisoned_events.metrics if m["step"] > 0 and m["train_loss"] is None]
    assert 1 <= len(skipped) <= 4  # each poisoned record's batch, in each epoch
    assert all(math.isfinite(m["train_loss"]) for m in poisoned_events.metrics[1:]
               if m["train_loss"] is not None)  # fmt: skip
    warnings = [e["message"] for e in poisoned_events.events if e.get("level") == "warning"]
    assert any("skipped (nan" in w and "quarantined" in w for w in warnings)
    # The loss curve ends like the clean run's.
    assert hit.metrics["valid_loss"] == pytest.approx(clean.metrics["valid_loss"], rel=0.25)
    assert "quarantined_records" not in clean.metrics


def test_weights_gone_bad_roll_back_to_the_last_checkpoint(tiny_encoder, tmp_path):
    class Corrupting(Recipe):
        steps = 0

        def train_step(self, micro_batches):  # type: ignore[no-untyped-def]
            self.steps += 1
            if self.steps == 5:  # after the step-3 checkpoint: a weight turns NaN, the loss with it
                with torch.no_grad():
                    next(iter(self.params)).view(-1)[0] = float("nan")
            return super().train_step(micro_batches)

    events = EventLog()
    result = train(spec(), tiny_encoder, spam_records("train", 64), spam_records("dev", 24),
                   tmp_path, on_event=events, recipe=Corrupting)  # fmt: skip
    assert any("rolled back to step-3" in m for m in events.messages)
    assert math.isfinite(result.metrics["valid_loss"])


def test_a_run_that_keeps_faulting_stops_with_advice(tiny_encoder, tmp_path):
    class AlwaysNan(Recipe):
        def train_step(self, micro_batches):  # type: ignore[no-untyped-def]
            with nan_scores(self):
                return super().train_step(micro_batches)

    with pytest.raises(InvalidRequestError, match="Training diverged.*Lower the learning rate"):
        train(spec(), tiny_encoder, spam_records("train", 64), [], tmp_path,
              on_event=EventLog(), recipe=AlwaysNan)  # fmt: skip


def test_the_watch_tells_faults_from_a_hard_batch():
    watch = GradientWatch()
    for _ in range(12):
        assert watch.check(0.05, 0.05) is None
    assert watch.check(2.0, 17.0) is None  # a hard batch after easy ones: nothing wrong
    fault = watch.check(5.0, 1e4)
    assert fault is not None and fault.kind == "explosion"
    assert watch.check(float("nan"), 1.0).kind == "nan"  # type: ignore[union-attr]
    assert watch.check(0.1, float("inf")).kind == "nan"  # type: ignore[union-attr]
