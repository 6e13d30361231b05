"""The classification task: labels, stratified split, and training that learns on real e-mails (SpamAssassin)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tailorml.errors import InvalidRequestError
from tailorml.records import ClassificationRecord
from tailorml.train.classification import ClassificationTask
from tailorml.train.loop import TrainSpec, train

from .conftest import EventLog, spam_records


def test_labels_are_sorted_and_need_two_classes():
    task = ClassificationTask()
    records = [ClassificationRecord("a", "pos"), ClassificationRecord("b", "neg")]
    assert task.labels(records) == ["neg", "pos"]
    with pytest.raises(InvalidRequestError, match="at least two labels"):
        task.labels(records[:1])


def test_split_is_stratified_and_seeded():
    records = [
        ClassificationRecord(f"text {i}", "rare" if i < 10 else "common") for i in range(100)
    ]
    records.append(ClassificationRecord("only one", "single"))
    train_part, valid = ClassificationTask().split(records, 0.1, seed=3)
    assert Counter(r.label for r in valid) == {"common": 9, "rare": 1}
    assert any(r.label == "single" for r in train_part)  # a class keeps its only record
    assert len(train_part) + len(valid) == len(records)
    again = ClassificationTask().split(records, 0.1, seed=3)[1]
    assert [r.text for r in again] == [r.text for r in valid]


def test_training_on_real_mail_reduces_validation_loss(tiny_encoder, tmp_path):
    records = spam_records("train", 500)  # the split holds out 50, stratified
    events = EventLog()
    spec = TrainSpec(
        task="classification", method="full", n_epochs=4, batch_size=16, learning_rate=1e-3
    )
    result = train(spec, tiny_encoder, records, None, tmp_path, on_event=events)

    base, final = events.metrics[0], events.metrics[-1]
    assert base["step"] == 0 and base["valid_loss"] is not None
    assert final["valid_loss"] < base["valid_loss"]
    assert result.metrics["valid_loss"] == final["valid_loss"]
    assert result.metrics["base_valid_loss"] == base["valid_loss"]
    first_losses = [m["train_loss"] for m in events.metrics[1:11]]
    assert result.metrics["train_loss"] < sum(first_losses) / len(first_losses)
    assert result.labels == ["ham", "spam"]

    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "ham", "1": "spam"}
    assert (result.model_dir / "model.safetensors").is_file()
    manifest = json.loads((result.model_dir / "tailor_model.json").read_text())
    assert manifest["labels"] == ["ham", "spam"] and manifest["method"] == "full"


def test_a_set_too_small_for_a_validation_split_trains_without_one(tiny_encoder, tmp_path):
    # Two records, one per class: the stratified split holds out nothing, and encoding the
    # empty validation set used to raise IndexError inside the tokenizer.
    records = spam_records("train", 40)
    pair = [next(r for r in records if r.label == label) for label in ("ham", "spam")]
    events = EventLog()
    spec = TrainSpec(
        task="classification", method="full", n_epochs=1, batch_size=2, learning_rate=1e-3
    )
    result = train(spec, tiny_encoder, pair, None, tmp_path, on_event=events)
    assert result.steps == 1 and result.labels == ["ham", "spam"]
    assert events.metrics[-1]["valid_loss"] is None
    assert "(0 for validation)" in events.messages[0]
