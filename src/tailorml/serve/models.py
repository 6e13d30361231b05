"""What the engine serves: a ``ModelRef`` names one model folder and how to run it.

A model is a local folder of one of two kinds:

* a base model in the Hugging Face layout (``config.json``, safetensors,
  tokenizer, and a chat template for decoders); the caller says what it is,
  or ``ModelRef.from_folder`` infers it from ``config.json``;
* a fine-tuning output holding ``tailor_model.json`` (the
  ``tailorml.models.manifest`` that training writes) plus either a full
  model or a peft LoRA adapter that sits on the base folder named by
  ``base_path``.

A ref is a plain frozen value, so the platform can build one per request
(or cache it) and the engine keys its loaded weights by path, not by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorml.errors import ModelUnavailableError
from tailorml.models.manifest import (
    ARCHITECTURES,
    DEFAULT_CONTEXT_LENGTH,
    MANIFEST,
    METHODS,
    has_manifest,
    read_manifest,
)


@dataclass(frozen=True)
class ModelRef:
    """One servable model: its public id, its folder and how to run it."""

    key: str
    path: Path
    architecture: str
    task: str | None = None
    base_path: Path | None = None
    method: str | None = None
    labels: tuple[str, ...] | None = None
    context_length: int = DEFAULT_CONTEXT_LENGTH

    def __post_init__(self) -> None:
        problems = []
        if self.architecture not in ARCHITECTURES:
            problems.append(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        if self.method is not None and self.method not in METHODS:
            problems.append(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "lora" and self.base_path is None:
            problems.append("a LoRA model needs base_path, the folder of the model it was tuned on")
        if self.context_length < 1:
            problems.append(f"context_length must be positive, got {self.context_length}")
        if problems:
            raise ModelUnavailableError(
                f"Model {self.key!r} is misconfigured: " + "; ".join(problems) + ".",
                param="model",
            )

    @property
    def is_lora(self) -> bool:
        return self.method == "lora"

    @classmethod
    def from_folder(cls, key: str, path: Path | str) -> ModelRef:
        """Describe the model in ``path``, from ``tailor_model.json`` if there is one."""
        path = Path(path)
        if not path.is_dir():
            raise ModelUnavailableError(
                f"Model {key!r}: folder {path} does not exist; check the model's stored path "
                "or fine-tune it again.",
                param="model",
            )
        if has_manifest(path):
            return _from_manifest(key, path)
        return _from_config(key, path)


def _read_json(path: Path, key: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(
            f"Model {key!r}: {path.name} cannot be read ({exc}); rewrite it or re-run the job "
            "that produced the model.",
            param="model",
        ) from exc
    if not isinstance(value, dict):
        raise ModelUnavailableError(
            f"Model {key!r}: {path.name} must hold a JSON object.", param="model"
        )
    return value


def _from_manifest(key: str, path: Path) -> ModelRef:
    manifest = read_manifest(path, model=key)
    return ModelRef(
        key=key,
        path=path,
        architecture=manifest.architecture,
        task=manifest.task,
        base_path=manifest.base_folder(path),
        method=manifest.method,
        labels=manifest.labels,
        context_length=manifest.context_length,
    )


def _from_config(key: str, path: Path) -> ModelRef:
    if not (path / "config.json").is_file():
        raise ModelUnavailableError(
            f"Model {key!r}: {path} has neither {MANIFEST} nor config.json; point the model "
            "at a Hugging Face model folder or a fine-tuning output.",
            param="model",
        )
    config = _read_json(path / "config.json", key)
    architectures = [str(a) for a in config.get("architectures") or []]
    decoder = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    labels = None
    task = None
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        task = "classification"
        id2label = config.get("id2label") or {}
        labels = tuple(id2label[k] for k in sorted(id2label, key=int)) or None
    context = config.get("max_position_embeddings")
    return ModelRef(
        key=key,
        path=path,
        architecture="decoder" if decoder else "encoder",
        task=task,
        method="full",
        labels=labels,
        context_length=context
        if isinstance(context, int) and context > 0
        else DEFAULT_CONTEXT_LENGTH,
    )
