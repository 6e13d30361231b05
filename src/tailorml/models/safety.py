"""What a model folder may hold before anything loads it: safetensors (or GGUF), never pickle.

A pickle-based weights file (``pytorch_model.bin``, ``*.pt``, ``*.pth``,
``*.pkl``, ``*.ckpt``) runs whatever code it carries the moment it is
unpickled (the MLflow and Hugging Face advisories of this kind), and a
``config.json`` with ``auto_map`` asks transformers to import Python files
from the folder. ``check_model_folder`` refuses both by looking at file
names and the JSON configs only, so it runs before ``from_pretrained``,
peft or the tokenizer open any file. Every loader of a model folder calls
it (``models.sources``, ``serve.loading``, ``train``), and every
``from_pretrained`` passes ``trust_remote_code=False`` besides.

Only the top level is checked: ``from_pretrained`` reads weights, configs
and tokenizers from there (a sentence-transformers ``1_Pooling/`` folder
holds JSON). A training checkpoint's own optimizer, scheduler and RNG
state (``optimizer.pt`` ...) are TailorML's, loaded with
``torch.load(weights_only=True)``; ``train`` passes them as ``allowed``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from tailorml.errors import UnsafeModelError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
# Configs that transformers reads ``auto_map`` from (custom model and tokenizer classes).
CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json")

CONVERT_HINT = (
    "convert it to safetensors on a machine where running its code is acceptable, for example "
    "`python -c \"import transformers as t; t.AutoModel.from_pretrained('IN').save_pretrained("
    "'OUT', safe_serialization=True)\"` (or the Hugging Face convert space), then use the "
    "folder without the pickle file"
)


# A training checkpoint's own state beside its weights: written by the training loop with
# torch.save and read back only by it, with torch.load(weights_only=True), never as weights.
# privacy.pt: a DP run's accountant history, noise generator and sampling seed.
CHECKPOINT_STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pt", "privacy.pt")


def check_model_folder(path: Path, *, allowed: Collection[str] = ()) -> Path:
    """Refuse (``UnsafeModelError``) a folder with pickle files or remote code; return ``path``.

    ``allowed`` names files to let pass (a checkpoint's own training state).
    """
    path = Path(path)
    if not path.is_dir():
        return path  # the loader says what is missing
    for item in sorted(path.iterdir(), key=lambda p: p.name):
        if item.name in allowed or not item.is_file():
            continue
        if item.name.lower().endswith(PICKLE_SUFFIXES):
            raise UnsafeModelError(
                f"The model folder {path.name!r} holds {item.name!r}, a pickle-based file that "
                "could run code when loaded; TailorML loads model weights only as safetensors "
                f"or GGUF. To use this model, {CONVERT_HINT}.",
                param="model",
            )
    for name in CODE_CONFIGS:
        config = path / name
        if not config.is_file():
            continue
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not ours to judge: the loader reports a broken config
        if isinstance(data, dict) and data.get("auto_map"):
            raise UnsafeModelError(
                f"The model folder {path.name!r} has 'auto_map' in {name}: it asks to run Python "
                "code shipped with the model, which TailorML never does (trust_remote_code is "
                "off). Use a model whose architecture transformers ships, or remove 'auto_map' "
                "if the architecture is a built-in one.",
                param="model",
            )
    return path
