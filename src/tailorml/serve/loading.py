"""PyTorch weights in memory: one base model, with the LoRA adapters that ride on it.

A base is loaded once per ``BaseSpec`` and shared by every fine-tune made
from it: each LoRA adapter is loaded onto the same peft model under its own
name and switched on per request with ``set_adapter``. We do not merge
adapters into copies of the base because a merged copy costs the whole
base's memory per fine-tune, while an unmerged adapter costs a few MB and a
little compute per step; many tenant fine-tunes of one base is the normal
case here.

``Weights`` is not thread-safe: peft's active adapter is state of the whole
model, so its owner (the backend's scheduler) calls ``activate`` and runs
the forward pass under one lock.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from pathlib import Path
from typing import Any

from tailorml.errors import ModelUnavailableError
from tailorml.models.safety import CHECKPOINT_STATE_FILES, check_model_folder
from tailorml.serve.backend import LoadConfig
from tailorml.serve.bases import AdapterRequest, BaseSpec, resolve_dtype


class Weights:
    """One base model on one device, and the adapters resident on it (least recent first)."""

    def __init__(self, spec: BaseSpec, model: Any, device: str, max_adapters: int) -> None:
        self.spec = spec
        self.model = model
        self.device = device
        self.max_adapters = max_adapters
        config = getattr(model, "config", None)
        self.max_positions: int | None = getattr(config, "max_position_embeddings", None)
        id2label = getattr(config, "id2label", None) or {}
        self.labels: tuple[str, ...] = tuple(id2label[i] for i in sorted(id2label))
        params = inspect.signature(type(model).forward).parameters
        # logits_to_keep=1 keeps the prefill from materialising prompt x vocab
        # logits (hundreds of MB for a long prompt); not every model takes it.
        self.accepts_logits_to_keep = "logits_to_keep" in params
        self.resident: OrderedDict[str, None] = OrderedDict()
        self._pins: dict[str, int] = {}  # adapters running sequences use: never evicted
        self._active: str | None = None  # the adapter set_adapter last chose
        self._disabled = False  # adapter layers switched off to serve the bare base
        self._by_folder: dict[Path, str] = {}  # the newest adapter loaded from each folder
        self.loads = 0  # adapters loaded, and evicted (LRU) since the base was loaded
        self.evictions = 0

    def eos_token_ids(self) -> set[int]:
        """The eos ids of the model's generation config."""
        config = getattr(self.model, "generation_config", None)
        eos = getattr(config, "eos_token_id", None)
        return set([eos] if isinstance(eos, int) else eos or [])

    @property
    def is_peft(self) -> bool:
        """Whether any adapter has been loaded onto this base (it is a peft model then)."""
        from peft import PeftModel

        return isinstance(self.model, PeftModel)

    def use_mixed(self) -> None:
        """Ready the model for a mixed-adapter batch (peft's ``adapter_names``), where each
        row names its adapter and the active adapter does not matter: every adapter layer on."""
        if self.is_peft and self._disabled:
            self._tuner().enable_adapter_layers()
            self._disabled = False

    def ensure(self, adapter: AdapterRequest) -> None:
        """Load ``adapter`` if it is not resident (the active adapter may change)."""
        if adapter.name in self.resident:
            self.resident.move_to_end(adapter.name)
        else:
            self._load_adapter(adapter)

    def pin(self, name: str) -> None:
        """Keep adapter ``name`` resident until as many ``unpin`` calls."""
        self._pins[name] = self._pins.get(name, 0) + 1

    def unpin(self, name: str) -> None:
        left = self._pins.get(name, 0) - 1
        if left > 0:
            self._pins[name] = left
        else:
            self._pins.pop(name, None)
        self._evict()

    def _evict(self, keep: str | None = None) -> None:
        """Drop the least recent unpinned adapters while more than ``max_adapters`` are
        resident (pinned ones may hold it above the limit until their answers end)."""
        for name in list(self.resident):
            if len(self.resident) <= self.max_adapters:
                return
            if name not in self._pins and name != keep:
                self.drop_adapter(name)
                self.evictions += 1

    def activate(self, adapter: AdapterRequest | None) -> None:
        """Make the next forward pass run ``adapter`` (None: the bare base), loading it if needed."""
        from peft import PeftModel

        if adapter is None:
            if isinstance(self.model, PeftModel) and not self._disabled:
                self._tuner().disable_adapter_layers()
            self._disabled = True
            return
        if adapter.name not in self.resident:
            self._load_adapter(adapter)
        else:
            self.resident.move_to_end(adapter.name)
        if self._disabled:
            self._tuner().enable_adapter_layers()
            self._disabled = False
        if self._active != adapter.name:
            self.model.set_adapter(adapter.name, inference_mode=True)
            self._active = adapter.name

    def _tuner(self) -> Any:
        """peft's LoraModel inside the PeftModel (switches all adapter layers at once)."""
        return self.model.base_model

    def _load_adapter(self, adapter: AdapterRequest) -> None:
        from peft import PeftModel

        name, path = adapter.name, adapter.path
        # Before peft opens a (pickle) adapter_model.bin; a checkpoint's state files pass.
        check_model_folder(Path(path), allowed=CHECKPOINT_STATE_FILES)
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name, torch_device=self.device)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            if isinstance(self.model, PeftModel) and name in self.model.peft_config:
                # Leave no half-loaded adapter behind on a base others use.
                self.model.delete_adapter(name)
            raise ModelUnavailableError(
                f"The LoRA adapter in {path} cannot be loaded onto {self.spec.path} ({exc}); "
                "check that it was trained on this base model.",
                param="model",
            ) from exc
        self.model.eval()
        # Loading may add enabled layers next to disabled ones: make the state
        # explicit. The new adapter goes active first so that evicting the
        # oldest never deletes the active one (peft then picks one at random).
        self._tuner().enable_adapter_layers()
        self.model.set_adapter(name, inference_mode=True)
        self._active, self._disabled = name, False
        self.resident[name] = None
        self.loads += 1
        # An older version of this folder's adapter (replaced in place by a new job) goes now,
        # unless an answer still uses it; then LRU eviction takes it later.
        old = self._by_folder.get(Path(path))
        self._by_folder[Path(path)] = name
        if old is not None and old != name and old not in self._pins:
            self.drop_adapter(old)
        self._evict(keep=name)

    def drop_adapter(self, name: str) -> bool:
        """Free an adapter's weights; a later request for it loads them again."""
        if name not in self.resident:
            return False
        if name == self._active and len(self.resident) > 1:
            # Deleting the active adapter makes peft choose another; choose it here.
            other = next(n for n in self.resident if n != name)
            self.model.set_adapter(other, inference_mode=True)
            self._active = other
        self.model.delete_adapter(name)
        del self.resident[name]
        if name == self._active:
            self._active = None
        return True


def resolve_device(device: str) -> str:
    """``device`` itself, or for "auto" the first GPU when torch sees one, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_weights(spec: BaseSpec, config: LoadConfig) -> Weights:
    """Load the weights ``spec`` names onto ``config.device``, in the dtype it resolves to."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    classes = {
        "causal_lm": AutoModelForCausalLM,
        "encoder": AutoModel,
        "classifier": AutoModelForSequenceClassification,
    }
    path = Path(spec.path)
    if not (path / "config.json").is_file():
        raise ModelUnavailableError(
            f"{path} holds no model (config.json is missing); restore the model folder.",
            param="model",
        )
    # No pickle weights, no remote code: before from_pretrained (a checkpoint's state passes).
    check_model_folder(path, allowed=CHECKPOINT_STATE_FILES)
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device, spec.dtype)
    # A checkpoint's own quantization_config (spec.quantization) is applied by
    # from_pretrained itself; a method whose kernels are missing fails below.
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "trust_remote_code": False}
    if spec.num_labels:
        # A LoRA classifier's head comes from its adapter (modules_to_save);
        # the base only needs the right shape for the adapter to load into.
        kwargs["num_labels"] = spec.num_labels
    try:
        model = classes[spec.head].from_pretrained(path, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        what = f" ({spec.quantization}-quantized)" if spec.quantization else ""
        raise ModelUnavailableError(
            f"The model in {path}{what} cannot be loaded as {spec.head} ({exc}); check the "
            "folder, the model's architecture and, for a quantized model, its kernels.",
            param="model",
        ) from exc
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as exc:
        # torch raises these for a device it was not built for or cannot see.
        raise ModelUnavailableError(
            f"Device {device!r} is not usable here ({exc}); fix TAILOR_SERVE_DEVICE.",
            param="model",
        ) from exc
    model.eval()
    return Weights(spec, model, device, config.max_adapters)
