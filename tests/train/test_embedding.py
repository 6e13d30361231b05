"""The embedding task: the ranking loss against a direct computation, and training that learns
to retrieve real sentence pairs (C4 sentences and their edited copies)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from tailorml.records import EmbeddingPairRecord
from tailorml.train.embedding import SCALE, EmbeddingTask
from tailorml.train.loop import TrainSpec, train
from tailorml.train.tasks import load_task
from tests import fixture_data

from .conftest import EventLog


def _pairs(kind: str) -> list[EmbeddingPairRecord]:
    """``edited``: C4 sentences and their edited copies; ``other``: two sentences of a page."""
    return [EmbeddingPairRecord(p["a"], p["b"]) for p in fixture_data.sentence_pairs()
            if kind in ("all", p["kind"])]  # fmt: skip


def test_the_task_is_registered_with_full_fine_tuning_by_default():
    task = load_task("embedding")
    assert isinstance(task, EmbeddingTask)
    assert task.method("supervised") == "full" and task.method("lora") == "lora"


def test_examples_hold_each_text_and_count_their_tokens(tiny_encoder):
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder.path)
    records = [
        EmbeddingPairRecord("a short anchor", "its positive", negative="an unrelated text"),
        EmbeddingPairRecord("word " * 40, "another positive"),
    ]
    examples, skipped = EmbeddingTask().encode(tokenizer, records, None, max_length=16)
    first, second = examples
    assert skipped == [] and [e.record for e in examples] == [0, 1]
    assert first.anchor == tokenizer("a short anchor")["input_ids"]
    assert first.negative == tokenizer("an unrelated text")["input_ids"]
    assert first.trained_tokens == len(first.anchor) + len(first.positive) + len(first.negative)
    assert not first.truncated and second.negative is None
    # Cut at max_length, keeping the closing [SEP] as the server does.
    assert second.truncated and len(second.anchor) == 16
    assert second.anchor[-1] == tokenizer.sep_token_id and second.length == 16


def test_loss_equals_a_direct_computation(tiny_encoder):
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder.path)
    model = AutoModel.from_pretrained(tiny_encoder.path).eval()
    records = [
        EmbeddingPairRecord("the cat sat on the mat", "a cat is sitting on a mat",
                            negative="the dog ran in the park"),
        EmbeddingPairRecord("stock prices fell sharply", "markets dropped today"),
        EmbeddingPairRecord("it rained all day long", "a cat is sitting on a mat"),
    ]  # fmt: skip
    task = EmbeddingTask()
    examples, _ = task.encode(tokenizer, records, None, max_length=64)
    batch = task.collate(examples, tokenizer.pad_token_id)
    with torch.no_grad():
        score = task.score(model, batch)

        def one(text: str) -> torch.Tensor:  # alone, unpadded: mean over its tokens
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
            return hidden.mean(0) / hidden.mean(0).norm()

        anchors = torch.stack([one(r.anchor) for r in records])
        candidates = torch.stack([one(t) for t in [r.positive for r in records] + [
            "the dog ran in the park"]])  # fmt: skip
    logits = SCALE * anchors @ candidates.T
    # Rows 0 and 2 share a positive text: neither counts the other's copy as a negative.
    logits[0, 2] = logits[2, 0] = float("-inf")
    expected = -torch.log_softmax(logits, dim=-1).diagonal().mean()
    assert score.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert score.weight == 3
    assert score.correct == int((logits.argmax(-1) == torch.arange(3)).sum())
    assert batch["same_text"].tolist() == [
        [False, False, True, False],
        [False, False, False, False],
        [True, False, False, False],
    ]


def test_training_lowers_the_held_out_loss(tiny_encoder, tmp_path):
    records = _pairs("all")  # 400 pairs; 100 held out
    events = EventLog()
    spec = TrainSpec(
        task="embedding", method="full", n_epochs=2, batch_size=16, learning_rate=2e-3,
        max_length=64, valid_fraction=0.25,
    )  # fmt: skip
    result = train(spec, tiny_encoder, records, None, tmp_path, on_event=events)

    base, final = events.metrics[0], events.metrics[-1]
    assert final["valid_loss"] < 0.7 * base["valid_loss"]
    assert 0 < final["valid_accuracy"] <= 1 and result.labels is None
    assert result.metrics["base_valid_accuracy"] == base["valid_accuracy"]
    manifest = json.loads((result.model_dir / "tailor_model.json").read_text())
    assert manifest["task"] == "embedding" and manifest["method"] == "full"
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]  # the bare encoder the server loads


@pytest.mark.parametrize(("method", "learning_rate"), [("full", 2e-3), ("lora", 5e-2)])
def test_in_batch_accuracy_rises_as_pairs_are_learned(tiny_encoder, tmp_path, method,
                                                      learning_rate):  # fmt: skip
    # Two sentences of one page share a topic, not words: a random encoder finds the right
    # one about as often as chance. Validated on the pairs it trains on, accuracy must rise.
    records = _pairs("other")
    events = EventLog()
    spec = TrainSpec(
        task="embedding", method=method, n_epochs=6, batch_size=16,
        learning_rate=learning_rate, max_length=64,
    )  # fmt: skip
    result = train(spec, tiny_encoder, records, records, tmp_path, on_event=events)

    base, final = events.metrics[0], events.metrics[-1]
    assert base["valid_accuracy"] < 0.1
    assert final["valid_accuracy"] > (0.9 if method == "full" else 2 * base["valid_accuracy"])
    assert final["valid_loss"] < base["valid_loss"]
    weights = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert (result.model_dir / weights).is_file()
