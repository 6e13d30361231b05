"""Export a trained model as a standard folder others can load: Hugging Face or ONNX.

Formats:

- ``adapter``: a LoRA model's adapter as peft saves it (``adapter_config.json``,
  ``adapter_model.safetensors``) with its tokenizer: ``PeftModel.from_pretrained``
  on the base named in the model card loads it;
- ``merged``: the adapter folded into its base (or a full fine-tune's weights),
  saved by transformers as safetensors: ``AutoModelFor...from_pretrained`` loads
  it with no peft and no TailorML;
- ``onnx`` (encoders: classification and embedding models): the merged model
  traced by ``torch.onnx.export`` (the dynamo exporter, opset 18) with dynamic
  batch and length, checked in onnxruntime against PyTorch on probe texts
  (``ONNX_TOLERANCE``); a model that does not reproduce is refused, never
  shipped.

TailorML's own files are left out (the training-record index holds the
tenant's training texts; the report and fidelity probes are the platform's),
and a ``README.md`` model card says what the folder is and how to load it.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import uuid
from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError
from tailorml.models.atomic import atomic_directory
from tailorml.models.manifest import MANIFEST, ModelManifest, read_manifest

FORMATS = ("adapter", "merged", "onnx")
ONNX_TOLERANCE = 1e-4
ONNX_OPSET = 18
PROBE_TEXTS = (
    "The delivery was late and nobody answered the phone.",
    "Great product, works exactly as described!",
    "ok",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "merges.txt",
    "vocab.json",
    "chat_template.jinja",
    "tokenizer.model",
    "added_tokens.json",
)
_AUTO_CLASS = {
    "classification": "AutoModelForSequenceClassification",
    "embedding": "AutoModel",
    "chat": "AutoModelForCausalLM",
    "completion": "AutoModelForCausalLM",
    "preference": "AutoModelForCausalLM",
}


def check_format(manifest: ModelManifest, fmt: str) -> None:
    """Refuse a format the model cannot be exported as, saying which it can."""
    if fmt not in FORMATS:
        raise InvalidRequestError(
            f"format must be one of {', '.join(FORMATS)}; got {fmt!r}.", param="format"
        )
    if fmt == "adapter" and not manifest.is_lora:
        raise InvalidRequestError(
            "This model was fully fine-tuned and has no adapter; export it as format=merged "
            "(its weights as a Hugging Face folder).",
            param="format",
        )
    if fmt == "onnx" and manifest.architecture != "encoder":
        raise InvalidRequestError(
            "ONNX export is for encoder models (classification, embeddings); export this "
            "decoder as format=merged or format=adapter.",
            param="format",
        )


def _auto_class(task: str) -> Any:
    import transformers

    return getattr(transformers, _AUTO_CLASS[task])


def load_merged(model_dir: Path) -> tuple[Any, Any, ModelManifest]:
    """The model with any adapter folded into its base, its tokenizer and manifest."""
    import torch
    from transformers import AutoTokenizer

    manifest = read_manifest(model_dir)
    cls = _auto_class(manifest.task)
    extra: dict[str, Any] = {}
    if manifest.task == "classification" and manifest.labels:
        labels = list(manifest.labels)
        extra = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }
    if manifest.is_lora:
        from peft import PeftModel

        base = cls.from_pretrained(manifest.base_folder(model_dir), dtype=torch.float32, **extra)
        model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    else:
        model = cls.from_pretrained(model_dir, dtype=torch.float32, **extra)
    return model.eval(), AutoTokenizer.from_pretrained(model_dir), manifest


def _model_card(manifest: ModelManifest, fmt: str, name: str) -> str:
    load = {
        "adapter": f"from peft import PeftModel\nmodel = PeftModel.from_pretrained("
        f"{_AUTO_CLASS[manifest.task]}.from_pretrained(BASE), 'this-folder')",
        "merged": f"model = {_AUTO_CLASS[manifest.task]}.from_pretrained('this-folder')",
        "onnx": "import onnxruntime\nsession = onnxruntime.InferenceSession('this-folder/model.onnx')",
    }[fmt]
    labels = f"\nLabels (in id order): {', '.join(manifest.labels)}.\n" if manifest.labels else ""
    return (
        f"# {name}\n\nA {manifest.task} model fine-tuned by TailorML ({manifest.method}) from "
        f"`{manifest.base}`, exported as `{fmt}`. Trained at max_length {manifest.max_length}."
        f"{labels}\n```python\n{load}\n```\n"
    )


def export_model(model_dir: Path, fmt: str, dest: Path, *, name: str = "model") -> Path:
    """Write the ``fmt`` export of the model in ``model_dir`` to the folder ``dest``
    (atomically: a reader finds all of it or nothing)."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    check_format(manifest, fmt)
    with atomic_directory(Path(dest)) as tmp:
        if fmt == "adapter":
            for item in ("adapter_config.json", "adapter_model.safetensors", *TOKENIZER_FILES):
                if (model_dir / item).is_file():
                    shutil.copy2(model_dir / item, tmp / item)
        else:
            model, tokenizer, _ = load_merged(model_dir)
            tokenizer.save_pretrained(tmp)
            if fmt == "merged":
                model.save_pretrained(tmp, safe_serialization=True)
            else:
                model.config.save_pretrained(tmp)
                _export_onnx(model, tokenizer, tmp / "model.onnx")
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=1))
        (tmp / "README.md").write_text(_model_card(manifest, fmt, name))
    return Path(dest)


def _export_onnx(model: Any, tokenizer: Any, path: Path) -> None:
    """Trace ``model`` to ONNX and check it reproduces PyTorch's outputs on the probes."""
    import numpy as np
    import onnxruntime
    import torch

    sample = tokenizer(list(PROBE_TEXTS[:2]), padding=True, return_tensors="pt")
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    torch.onnx.export(
        model,
        (sample["input_ids"], sample["attention_mask"]),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["output"],
        dynamic_shapes=({0: batch, 1: length}, {0: batch, 1: length}),
        dynamo=True,
        opset_version=ONNX_OPSET,
        external_data=False,
    )
    probes = tokenizer(list(PROBE_TEXTS), padding=True, return_tensors="np")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(
        None, {"input_ids": probes["input_ids"], "attention_mask": probes["attention_mask"]}
    )[0]
    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(probes["input_ids"]),
            attention_mask=torch.from_numpy(probes["attention_mask"]),
        )
    want = (out.logits if hasattr(out, "logits") else out.last_hidden_state).numpy()
    gap = float(np.abs(got - want).max())
    if got.shape != want.shape or gap > ONNX_TOLERANCE:
        raise InvalidRequestError(
            f"The ONNX export does not reproduce the model (largest difference {gap:.2e}, "
            f"tolerance {ONNX_TOLERANCE}); export it as format=merged instead.",
            param="format",
        )


def archive(folder: Path, dest: Path) -> Path:
    """``folder`` as one uncompressed tar file (weights do not compress), written atomically."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}-{uuid.uuid4().hex[:12]}.part")
    with tarfile.open(tmp, "w") as tar:
        for item in sorted(Path(folder).iterdir()):
            tar.add(item, arcname=f"{Path(folder).name}/{item.name}")
    tmp.replace(dest)
    return dest
