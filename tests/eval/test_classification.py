"""Classification baselines and the accuracy of a trained classifier, on real SpamAssassin e-mails."""

from __future__ import annotations

import pytest

from tailorml.errors import InvalidRequestError
from tailorml.eval.classification import accuracy, baseline_accuracies
from tailorml.models.sources import materialize
from tailorml.records import ChatRecord, ClassificationRecord, Message
from tailorml.train.loop import TrainSpec, train
from tests.train.conftest import EventLog, spam_records


@pytest.mark.slow
def test_baselines_with_real_minilm(tmp_path):
    base = materialize("minilm-l6", tmp_path)
    train_records, test_records = spam_records("train", 120), spam_records("dev", 60)
    result = baseline_accuracies(base, train_records, test_records)
    share = sum(r.label == result["majority_label"] for r in test_records) / len(test_records)
    assert result["majority_accuracy"] == share
    assert result["n_test"] == 60
    # Frozen MiniLM sentence embeddings tell spam from ham: clearly better than chance.
    assert result["nearest_centroid_accuracy"] > 0.6


def test_baselines_with_a_skewed_label_set(tiny_encoder):
    train_records = [ClassificationRecord(f"good text {i}", "pos") for i in range(5)]
    train_records.append(ClassificationRecord("bad text", "neg"))
    test_records = [ClassificationRecord("good", "pos"), ClassificationRecord("bad", "neg")]
    result = baseline_accuracies(tiny_encoder, train_records, test_records)
    assert (result["majority_label"], result["majority_accuracy"]) == ("pos", 0.5)
    assert 0.0 <= result["nearest_centroid_accuracy"] <= 1.0


def test_accuracy_of_a_trained_classifier(tiny_encoder, tmp_path):
    spec = TrainSpec(
        task="classification", method="full", n_epochs=1, batch_size=16, learning_rate=1e-3
    )
    dev = spam_records("dev", 40)
    result = train(
        spec, tiny_encoder, spam_records("train", 80), dev, tmp_path, on_event=EventLog()
    )
    # Batched inference from the saved folder agrees with the loop's own validation.
    assert accuracy(result.model_dir, dev) == pytest.approx(result.metrics["valid_accuracy"])


def test_accuracy_of_a_lora_classifier(tiny_encoder, tmp_path):
    records = spam_records("train", 40)
    spec = TrainSpec(
        task="classification", method="lora", n_epochs=1, batch_size=8, learning_rate=1e-3
    )
    result = train(spec, tiny_encoder, records, None, tmp_path, on_event=EventLog())
    assert (result.model_dir / "adapter_model.safetensors").is_file()
    assert 0.0 <= accuracy(result.model_dir, spam_records("dev", 20)) <= 1.0


def test_records_must_be_classification(tiny_encoder):
    chat = [ChatRecord([Message("user", "hi"), Message("assistant", "hello")])]
    with pytest.raises(InvalidRequestError, match="classification records"):
        baseline_accuracies(tiny_encoder, chat, chat)
