"""Which base weights, and which adapter, a ``ModelRef`` runs on.

A base is loaded once per ``BaseSpec`` (folder, head, and what its own
``config.json`` says about precision and quantization) and shared by every
fine-tune made from it; a LoRA fine-tune adds an ``AdapterRequest`` that
rides on its base per request. Both are plain values read from the model's
files, with no torch, so the engine can check a request before any weights
load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorml.errors import ModelUnavailableError
from tailorml.serve.models import ModelRef

HEADS = ("causal_lm", "encoder", "classifier")


@dataclass(frozen=True)
class BaseSpec:
    """Which weights to hold in memory: a folder and the head on it (the LRU key).

    ``dtype`` and ``quantization`` are what the checkpoint declares
    (``config.json``'s ``dtype``/``torch_dtype`` and
    ``quantization_config.quant_method``); the backend decides the dtype it
    runs from these and the operator's settings (``resolve_dtype``).
    """

    path: str
    head: str
    num_labels: int = 0
    dtype: str | None = None
    quantization: str | None = None


@dataclass(frozen=True)
class AdapterRequest:
    """A LoRA adapter to run one request with, the way vLLM's ``LoRARequest`` names one.

    ``name`` is derived from the folder and its weights file's version, not
    the public id: peft uses it as a module key, which must not contain dots,
    two ids for one folder share one adapter, and a new version of the
    weights in the same folder is a new adapter.
    """

    name: str
    path: Path


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _precision(config: dict[str, Any]) -> tuple[str | None, str | None]:
    dtype = config.get("dtype") or config.get("torch_dtype")
    quant = config.get("quantization_config")
    method = quant.get("quant_method") if isinstance(quant, dict) else None
    return (str(dtype) if dtype else None), (str(method) if method else None)


def base_spec(ref: ModelRef) -> BaseSpec:
    """The base weights ``ref`` runs on: its own folder, or its LoRA base."""
    if ref.is_lora:
        assert ref.base_path is not None  # ModelRef refuses LoRA without base_path
        folder = ref.base_path.resolve()
        dtype, quant = _precision(_read_config(folder))
        if ref.task == "classification":
            if not ref.labels:
                raise ModelUnavailableError(
                    f"Model {ref.key!r} is a LoRA classifier without labels; write the label "
                    "list into its tailor_model.json.",
                    param="model",
                )
            return BaseSpec(str(folder), "classifier", len(ref.labels), dtype, quant)
        head = "causal_lm" if ref.architecture == "decoder" else "encoder"
        return BaseSpec(str(folder), head, 0, dtype, quant)
    folder = ref.path.resolve()
    config = _read_config(folder)
    dtype, quant = _precision(config)
    architectures = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return BaseSpec(str(folder), "classifier", 0, dtype, quant)
    head = "causal_lm" if ref.architecture == "decoder" else "encoder"
    return BaseSpec(str(folder), head, 0, dtype, quant)


def adapter_request(ref: ModelRef) -> AdapterRequest | None:
    """The adapter ``ref`` runs with on its base, or None for a model that has none."""
    if not ref.is_lora:
        return None
    folder = ref.path.resolve()
    # The weights file's identity is part of the name: a job that writes a new version into
    # the same folder gets a new adapter on its next request, loaded beside the old one, which
    # is dropped once no answer uses it (``Weights._load_adapter``).
    try:
        stat = (folder / "adapter_model.safetensors").stat()
        version = f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        version = ""
    digest = hashlib.sha1(f"{folder}|{version}".encode()).hexdigest()[:16]
    return AdapterRequest("adapter_" + digest, folder)


def resolve_dtype(requested: str, device: str, declared: str | None) -> str:
    """The dtype to run in: the operator's choice, or for "auto" what suits the device.

    On a CPU "auto" is float32 whatever the checkpoint says: CPUs without
    bf16 units (AVX2 machines) run bf16 matmuls two orders of magnitude
    slower than fp32, and fp16 worse. On a GPU it follows vLLM's rule: a
    bf16 checkpoint runs in bf16, anything else in fp16.
    """
    if requested != "auto":
        return requested
    if not device.startswith(("cuda", "rocm", "xpu")):
        return "float32"
    return "bfloat16" if declared == "bfloat16" else "float16"
