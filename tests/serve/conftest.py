"""Tiny models for the serving tests, built once per session, and real text to feed them.

Every model is random and tiny (built in seconds from ``tailorml.models.tiny``
with the real MiniLM / SmolLM2 tokenizers), so the tests check mechanics:
that adapters change outputs, streams join to the whole, limits are
enforced. Answer quality is checked only on the real MiniLM weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the serving tests need the ml extra (torch)")

from tailorml.models.tiny import build_tiny_model  # noqa: E402
from tailorml.serve import Engine, ModelRef  # noqa: E402
from tests import fixture_data  # noqa: E402

TOPIC_LABELS = fixture_data.TOPICS  # the chatterbot topics a classifier adapter is built for


def questions(n: int) -> list[str]:
    """The first ``n`` distinct questions people open chatterbot-corpus conversations with."""
    return fixture_data.english_questions()[:n]


def sentences(n: int) -> list[str]:
    """The first ``n`` distinct English statements of chatterbot-corpus."""
    return fixture_data.english_sentences()[:n]


def manifest(folder: Path, **fields: object) -> None:
    meta = {"base": "tiny", "max_length": 128, "labels": None, "context_length": 512} | fields
    (folder / "tailor_model.json").write_text(json.dumps(meta), encoding="utf-8")


def lora_adapter(base: Path, out: Path, seed: int, task_type: str, **extra: object) -> Path:
    """A LoRA adapter with random (not zero) B matrices, so it really changes the model."""
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    torch.manual_seed(seed)
    if task_type == "CAUSAL_LM":
        model = AutoModelForCausalLM.from_pretrained(base)
        targets = ["q_proj", "v_proj"]
    elif task_type == "SEQ_CLS":
        model = AutoModelForSequenceClassification.from_pretrained(base, **extra)
        targets = ["query", "value"]
    else:
        model = AutoModel.from_pretrained(base)
        targets = ["query", "value"]
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=targets, task_type=task_type, init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def spread_weights(folder: Path, std: float = 0.3) -> None:
    """Redraw the tiny decoder's matrices wider.

    With the usual 0.02 init a random model repeats one token forever under
    greedy decoding, which would make the stream and stop-string checks
    trivial; at 0.3 its greedy text varies token to token.
    """
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0.0, std)
    model.save_pretrained(folder)


@dataclass(frozen=True)
class TinyModels:
    decoder: Path
    encoder: Path
    lora_a: Path
    lora_b: Path
    classifier: Path
    lora_classifier: Path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("serve_models")
    decoder = build_tiny_model("decoder", root / "decoder")
    spread_weights(decoder)
    encoder = build_tiny_model("encoder", root / "encoder")

    lora_a = lora_adapter(decoder, root / "lora_a", seed=1, task_type="CAUSAL_LM")
    lora_b = lora_adapter(decoder, root / "lora_b", seed=2, task_type="CAUSAL_LM")
    for folder in (lora_a, lora_b):
        manifest(folder, task="chat", method="lora", base_path=str(decoder), architecture="decoder")

    classifier = root / "classifier"
    torch.manual_seed(3)
    labels = {0: "negative", 1: "positive"}
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    model.save_pretrained(classifier)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(classifier)
    manifest(classifier, task="classification", method="full", architecture="encoder",
             labels=list(labels.values()))  # fmt: skip

    lora_classifier = lora_adapter(
        encoder, root / "lora_classifier", seed=4, task_type="SEQ_CLS",
        num_labels=len(TOPIC_LABELS),
    )  # fmt: skip
    manifest(lora_classifier, task="classification", method="lora", base_path=str(encoder),
             architecture="encoder", labels=list(TOPIC_LABELS))  # fmt: skip
    return TinyModels(decoder, encoder, lora_a, lora_b, classifier, lora_classifier)


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine(max_loaded=4)


@pytest.fixture(scope="session")
def decoder_ref(tiny: TinyModels) -> ModelRef:
    return ModelRef.from_folder("tiny-decoder", tiny.decoder)


@pytest.fixture(scope="session")
def encoder_ref(tiny: TinyModels) -> ModelRef:
    return ModelRef.from_folder("tiny-encoder", tiny.encoder)
