"""What the engine serves: a ``ModelRef`` names one model folder and how to run it.

A model is a local folder of one of two kinds:

* a base model in the Hugging Face layout (``config.json``, safetensors,
  tokenizer, and a chat template for decoders); the caller says what it is,
  or ``ModelRef.from_folder`` infers it from ``config.json``;
* a fine-tuning output holding ``tailor_model.json`` (written by
  ``tailorml.train``) plus either a full model or a peft LoRA adapter that
  sits on the base folder named by ``base_path``.

A ref is a plain frozen value, so the platform can build one per request
(or cache it) and the engine keys its loaded weights by path, not by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorml.errors import ModelUnavailableError

MANIFEST = "tailor_model.json"
ARCHITECTURES = ("encoder", "decoder")
METHODS = ("full", "lora")
# A base folder that declares no window is served with this one (and never
# beyond the model's own max_position_embeddings, which the engine also checks).
DEFAULT_CONTEXT_LENGTH = 2048


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
        if (path / MANIFEST).is_file():
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
    meta = _read_json(path / MANIFEST, key)
    problems = []
    architecture = meta.get("architecture")
    if architecture not in ARCHITECTURES:
        problems.append(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    method = meta.get("method", "full")
    if method not in METHODS:
        problems.append(f"method must be one of {METHODS}, got {method!r}")
    base_path = None
    if meta.get("base_path") is not None:
        # A relative base_path is read against the model folder so a model
        # tree can be moved as a whole.
        base_path = (path / str(meta["base_path"])).resolve()
        if not base_path.is_dir():
            problems.append(f"base_path {base_path} is not a folder; restore the base model there")
    elif method == "lora":
        problems.append("a LoRA model needs base_path, the folder of the model it was tuned on")
    labels = meta.get("labels")
    if labels is not None and not (
        isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)
    ):
        problems.append("labels must be a non-empty list of strings or null")
    context_length = meta.get("context_length", DEFAULT_CONTEXT_LENGTH)
    if isinstance(context_length, bool) or not isinstance(context_length, int):
        problems.append(f"context_length must be an integer, got {context_length!r}")
    if problems:
        raise ModelUnavailableError(
            f"Model {key!r}: {MANIFEST} in {path} is invalid: " + "; ".join(problems) + ".",
            param="model",
        )
    return ModelRef(
        key=key,
        path=path,
        architecture=str(architecture),
        task=meta.get("task"),
        base_path=base_path,
        method=method,
        labels=tuple(labels) if labels else None,
        context_length=context_length,
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
