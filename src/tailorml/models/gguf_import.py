"""Convert a GGUF file into a Hugging Face folder, once, safely under concurrency.

transformers reads GGUF and dequantizes it to fp32 (about 20 s for
SmolLM2-135M); the saved folder then loads in a fraction of a second, so
every later job and the serving engine use the folder. Two workers may ask
for the same model at once: a file lock makes the second wait for the
first, and the folder is written atomically, so a reader never sees half a
model even if the lock is not honoured (for example on a network file
system).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tailorml.errors import ModelUnavailableError
from tailorml.models.atomic import atomic_directory

MARKER = "tailor_source.json"
# A conversion takes well under a minute; a lock held far longer than that
# belongs to a hung process, and failing with a message beats waiting forever.
LOCK_TIMEOUT_S = 30 * 60


def _is_converted(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "config.json").is_file()


def convert_gguf(
    gguf_path: Path, dest: Path, *, progress: Callable[[str], None] | None = None
) -> Path:
    """Return ``dest``, converting ``gguf_path`` into it first unless a converted copy is there."""
    from filelock import FileLock, Timeout

    dest = Path(dest)
    if _is_converted(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(dest.parent / f".{dest.name}.lock"), timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            if _is_converted(dest):  # another process finished while we waited
                return dest
            if progress is not None:
                progress(f"Converting {gguf_path.name} to safetensors (once; about 20-60 s)")
            with atomic_directory(dest) as tmp:
                _write_converted(Path(gguf_path), tmp)
    except Timeout as exc:
        raise ModelUnavailableError(
            f"Another process has been converting {gguf_path.name} for over "
            f"{LOCK_TIMEOUT_S // 60} minutes; if none is running, delete {lock.lock_file} and retry."
        ) from exc
    return dest


def _write_converted(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise ModelUnavailableError(
            f"transformers could not read {gguf_path.name} ({exc}); it reads GGUF files of "
            "Llama-family decoders. Convert the model to a Hugging Face folder instead."
        ) from exc
    # The weights are dequantized fp32 now; saving with the quantizer still
    # attached would make the copy claim to be GGUF-quantized.
    if getattr(model, "hf_quantizer", None) is not None:
        del model.hf_quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    stat = gguf_path.stat()
    marker = {"gguf_file": gguf_path.name, "size": stat.st_size}
    (out / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
