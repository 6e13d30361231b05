"""The manifest written with every trained model: ``tailor_model.json``.

Training writes it beside the weights of the final model and of every
checkpoint; the serving engine, evaluation and the platform read it to know
what a folder holds: the task, full weights or a LoRA adapter (and the base
folder the adapter rides on), a classifier's labels, the context window and
the length the model was trained at. It is one typed value read and
written here, so every reader applies the same checks and reports every
problem with a file at once.

Versions: ``version`` 1 is the first format. A manifest without the field
was written before it existed and reads as version 1; one from a newer
TailorML is refused with a message to upgrade. Unknown keys are ignored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError, ModelUnavailableError

MANIFEST = "tailor_model.json"
MANIFEST_VERSION = 1
ARCHITECTURES = ("encoder", "decoder")
METHODS = ("full", "lora")
# A model that declares no window is served with this one (and never beyond
# the model's own max_position_embeddings, which the engine also checks).
DEFAULT_CONTEXT_LENGTH = 2048


def _problems(data: dict[str, Any]) -> list[str]:
    """Every way ``data`` (a manifest as JSON) is not a valid manifest."""
    problems = []
    version = data.get("version", MANIFEST_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(f"version must be a positive integer, got {version!r}")
    elif version > MANIFEST_VERSION:
        problems.append(
            f"version {version} is newer than this TailorML reads ({MANIFEST_VERSION}); upgrade "
            "TailorML"
        )
    architecture = data.get("architecture")
    if architecture not in ARCHITECTURES:
        problems.append(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    method = data.get("method", "full")
    if method not in METHODS:
        problems.append(f"method must be one of {METHODS}, got {method!r}")
    if method == "lora" and data.get("base_path") is None:
        problems.append("a LoRA model needs base_path, the folder of the model it was tuned on")
    for key in ("task", "base", "base_path"):
        if data.get(key) is not None and not isinstance(data[key], str):
            problems.append(f"{key} must be a string or null, got {data[key]!r}")
    labels = data.get("labels")
    if labels is not None and not (
        isinstance(labels, list | tuple) and labels and all(isinstance(x, str) for x in labels)
    ):
        problems.append("labels must be a non-empty list of strings or null")
    context_length = data.get("context_length", DEFAULT_CONTEXT_LENGTH)
    if isinstance(context_length, bool) or not isinstance(context_length, int):
        problems.append(f"context_length must be an integer, got {context_length!r}")
    max_length = data.get("max_length")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)):
        problems.append(f"max_length must be an integer or null, got {max_length!r}")
    return problems


@dataclass(frozen=True)
class ModelManifest:
    """What a trained model folder holds and how to run it."""

    architecture: str
    task: str | None = None
    method: str = "full"
    base: str | None = None
    # As written: absolute, or relative to the model folder (see ``base_folder``).
    base_path: str | None = None
    labels: tuple[str, ...] | None = None
    context_length: int = DEFAULT_CONTEXT_LENGTH
    max_length: int | None = None
    version: int = MANIFEST_VERSION

    def __post_init__(self) -> None:
        problems = _problems(self.to_json())
        if problems:
            raise ModelUnavailableError(
                "Invalid model manifest: " + "; ".join(problems) + ".", param="model"
            )

    @property
    def is_lora(self) -> bool:
        return self.method == "lora"

    def base_folder(self, model_dir: Path) -> Path | None:
        """The base folder, a relative ``base_path`` read against ``model_dir``.

        Reading it against the model folder lets a model tree move as a whole.
        """
        if self.base_path is None:
            return None
        return (Path(model_dir) / self.base_path).resolve()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = list(self.labels) if self.labels is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelManifest:
        """The manifest in ``data``; every problem is reported at once (``ModelUnavailableError``)."""
        problems = _problems(data)
        if problems:
            raise ModelUnavailableError(
                "Invalid model manifest: " + "; ".join(problems) + ".", param="model"
            )
        labels = data.get("labels")
        return cls(
            architecture=data["architecture"],
            task=data.get("task"),
            method=data.get("method", "full"),
            base=data.get("base"),
            base_path=data.get("base_path"),
            labels=tuple(labels) if labels else None,
            context_length=data.get("context_length", DEFAULT_CONTEXT_LENGTH),
            max_length=data.get("max_length"),
            version=data.get("version", MANIFEST_VERSION),
        )

    def write(self, model_dir: Path) -> Path:
        """Write ``model_dir/tailor_model.json`` and return its path."""
        path = Path(model_dir) / MANIFEST
        path.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")
        return path


def has_manifest(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a trained model folder (it holds a manifest)."""
    return (Path(model_dir) / MANIFEST).is_file()


def read_manifest(model_dir: Path, *, model: str | None = None) -> ModelManifest:
    """The manifest of a trained model folder, checked; ``model`` names it in errors.

    Besides the fields, a LoRA model's base folder must exist: the adapter
    cannot load without it.
    """
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST
    who = f"Model {model!r}: " if model is not None else ""
    if not path.is_file():
        raise InvalidRequestError(
            f"{who}{model_dir} has no {MANIFEST}; it is not a folder written by tailorml.train."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(
            f"{who}{MANIFEST} cannot be read ({exc}); rewrite it or re-run the job that "
            "produced the model.",
            param="model",
        ) from exc
    if not isinstance(data, dict):
        raise ModelUnavailableError(f"{who}{MANIFEST} must hold a JSON object.", param="model")
    problems = _problems(data)
    base_path = data.get("base_path")
    if data.get("method") == "lora" and isinstance(base_path, str):
        base = (model_dir / base_path).resolve()
        if not base.is_dir():
            problems.append(f"base_path {base} is not a folder; restore the base model there")
    if problems:
        raise ModelUnavailableError(
            f"{who}{MANIFEST} in {model_dir} is invalid: " + "; ".join(problems) + ".",
            param="model",
        )
    return ModelManifest.from_json(data)
