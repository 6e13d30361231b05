"""Exports load without TailorML and answer as the trained model: the adapter with peft, the
merged weights with transformers alone, ONNX in onnxruntime; formats a model cannot take are
refused with the one it can."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

from tailorml.errors import InvalidRequestError
from tailorml.eval.classification import load_classifier
from tailorml.eval.generation import load_generator
from tailorml.models.export import archive, export_model
from tailorml.train.loop import train
from tests.train.conftest import EventLog, glaive_chats, spam_records
from tests.train.test_loop import chat_spec, cls_spec


def _logits(model, tokenizer, text: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits[0].float()


def test_a_lora_chat_model_as_adapter_and_merged(tiny_decoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    chats = glaive_chats(8, max_chars=300)
    result = train(
        chat_spec(n_epochs=1), tiny_decoder, chats, [], tmp_path / "run", on_event=EventLog()
    )
    trained, tokenizer, _ = load_generator(result.model_dir)
    text = "Can you order a pizza for me?"
    want = _logits(trained, tokenizer, text)

    adapter = export_model(result.model_dir, "adapter", tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {
        p.name for p in adapter.iterdir()
    }
    assert not (adapter / "neighbors.jsonl").exists()  # training texts stay behind
    loaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_decoder.path), adapter
    )
    assert torch.allclose(
        _logits(loaded.eval(), AutoTokenizer.from_pretrained(adapter), text), want, atol=1e-5
    )

    merged = export_model(result.model_dir, "merged", tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(merged).eval()  # transformers alone
    assert torch.allclose(
        _logits(plain, AutoTokenizer.from_pretrained(merged), text), want, atol=1e-4
    )
    assert "PeftModel" not in type(plain).__name__

    tar = archive(merged, tmp_path / "merged.tar")
    with tarfile.open(tar) as f:
        assert "merged/model.safetensors" in f.getnames()
    with pytest.raises(InvalidRequestError, match="ONNX export is for encoder"):
        export_model(result.model_dir, "onnx", tmp_path / "onnx")


def test_a_classifier_as_merged_and_onnx(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    records = spam_records("train", 16)
    result = train(
        cls_spec(n_epochs=1), tiny_encoder, records, [], tmp_path / "run", on_event=EventLog()
    )
    model, tokenizer, labels = load_classifier(result.model_dir)
    texts = [records[0].text[:200], "win a free prize now"]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        want = model(**enc).logits

    merged = export_model(result.model_dir, "merged", tmp_path / "merged")
    plain = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    assert [plain.config.id2label[i] for i in range(len(labels))] == labels
    with torch.no_grad():
        assert torch.allclose(plain(**enc).logits, want, atol=1e-5)

    onnx = export_model(result.model_dir, "onnx", tmp_path / "onnx")
    session = onnxruntime.InferenceSession(str(onnx / "model.onnx"))
    np_enc = AutoTokenizer.from_pretrained(onnx)(
        texts, padding=True, truncation=True, max_length=128, return_tensors="np"
    )
    got = session.run(
        None, {"input_ids": np_enc["input_ids"], "attention_mask": np_enc["attention_mask"]}
    )[0]
    assert np.abs(got - want.numpy()).max() < 1e-4
    with pytest.raises(InvalidRequestError, match="no adapter; export it as format=merged"):
        export_model(result.model_dir, "adapter", tmp_path / "x")
    with pytest.raises(InvalidRequestError, match="format must be one of"):
        export_model(result.model_dir, "gguf", tmp_path / "y")
