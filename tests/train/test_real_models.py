"""The real catalog models end to end (slow: minutes on 2 cores)."""

from __future__ import annotations

import pytest

from tailorml.eval.classification import accuracy
from tailorml.models.sources import materialize
from tailorml.train.hyperparams import resolve_hyperparameters
from tailorml.train.loop import TrainSpec, train

from .conftest import EventLog, glaive_chats, spam_records

pytestmark = pytest.mark.slow


def test_minilm_full_fine_tune_on_spam(tmp_path):
    base = materialize("minilm-l6", tmp_path / "cache")
    records, dev = spam_records("train", 200), spam_records("dev", 100)
    hp = resolve_hyperparameters(
        task="classification", method="full", n_train=len(records), n_epochs=2
    )
    spec = TrainSpec(
        task="classification",
        method="full",
        n_epochs=hp.n_epochs,
        batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
    )
    result = train(spec, base, records, dev, tmp_path / "run", on_event=EventLog())
    assert result.metrics["valid_loss"] < result.metrics["base_valid_loss"]
    assert accuracy(result.model_dir, dev) > 0.6


def test_smollm2_lora_chat(tmp_path):
    base = materialize("smollm2-135m-instruct", tmp_path / "cache")
    chats = glaive_chats(24, max_chars=600)
    spec = TrainSpec(
        task="chat", method="lora", n_epochs=1, batch_size=4, learning_rate=2e-4, max_length=256
    )
    events = EventLog()
    result = train(spec, base, chats, None, tmp_path / "run", on_event=events)
    assert result.metrics["valid_loss"] < result.metrics["base_valid_loss"]
    assert (result.model_dir / "adapter_model.safetensors").is_file()
