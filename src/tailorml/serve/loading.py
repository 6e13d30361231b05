"""Loaded weights: one base model in memory, with the LoRA adapters that ride on it.

A base is loaded once per (folder, head) and shared by every fine-tune made
from it: each LoRA adapter is loaded onto the same peft model under its own
name and switched on per request with ``set_adapter``. We do not merge
adapters into copies of the base because a merged copy costs the whole
base's memory per fine-tune, while an unmerged adapter costs a few MB and a
little compute per step; many tenant fine-tunes of one base is the normal
case here.

Everything that touches the model (forward passes, switching or loading
adapters) happens under ``LoadedModel.lock``. Tokenizers have their own lock
because a fast tokenizer's Rust state is mutably borrowed while encoding and
raises "Already borrowed" when two threads encode at once.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError, ModelUnavailableError
from tailorml.serve.models import ModelRef

HEADS = ("causal_lm", "encoder", "classifier")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class BaseSpec:
    """Which weights to hold in memory: a folder and the head on it (the LRU key)."""

    path: str
    head: str
    num_labels: int = 0


def _config_architectures(path: Path) -> list[str]:
    import json

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(a) for a in config.get("architectures") or []]


def base_spec(ref: ModelRef) -> BaseSpec:
    """The base weights ``ref`` runs on: its own folder, or its LoRA base."""
    if ref.is_lora:
        assert ref.base_path is not None  # ModelRef refuses LoRA without base_path
        if ref.task == "classification":
            if not ref.labels:
                raise ModelUnavailableError(
                    f"Model {ref.key!r} is a LoRA classifier without labels; write the label "
                    "list into its tailor_model.json.",
                    param="model",
                )
            return BaseSpec(str(ref.base_path.resolve()), "classifier", len(ref.labels))
        head = "causal_lm" if ref.architecture == "decoder" else "encoder"
        return BaseSpec(str(ref.base_path.resolve()), head)
    if any(a.endswith("ForSequenceClassification") for a in _config_architectures(ref.path)):
        return BaseSpec(str(ref.path.resolve()), "classifier")
    return BaseSpec(
        str(ref.path.resolve()), "causal_lm" if ref.architecture == "decoder" else "encoder"
    )


def adapter_name(ref: ModelRef) -> str | None:
    """The name ``ref``'s adapter gets on its base, or None for a model that has none.

    Derived from the folder, not the public id: peft uses it as a module key,
    which must not contain dots, and two ids for one folder share one adapter.
    """
    if not ref.is_lora:
        return None
    return "adapter_" + hashlib.sha1(str(ref.path.resolve()).encode()).hexdigest()[:16]


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"The tokenizer in {path} cannot be loaded ({exc}); save the tokenizer with the model.",
            param="model",
        ) from exc


class LoadedModel:
    """One base model in memory, its tokenizers and the adapters loaded onto it."""

    def __init__(self, spec: BaseSpec, model: Any, device: str, max_adapters: int) -> None:
        self.spec = spec
        self.model = model
        self.device = device
        self.lock = threading.Lock()
        self.max_adapters = max_adapters
        config = getattr(model, "config", None)
        self.max_positions: int | None = getattr(config, "max_position_embeddings", None)
        id2label = getattr(config, "id2label", None) or {}
        self.labels: tuple[str, ...] = tuple(id2label[i] for i in sorted(id2label))
        params = inspect.signature(type(model).forward).parameters
        # logits_to_keep=1 keeps the prefill from materialising prompt x vocab
        # logits (hundreds of MB for a long prompt); not every model takes it.
        self.accepts_logits_to_keep = "logits_to_keep" in params
        self._tok_lock = threading.Lock()
        self._tokenizers: dict[str | None, Any] = {}
        self._adapter_paths: dict[str, Path] = {}
        self.resident: OrderedDict[str, None] = OrderedDict()
        self._active: str | None = None  # the adapter set_adapter last chose
        self._disabled = False  # adapter layers switched off to serve the bare base

    # -- tokenizers ---------------------------------------------------------

    def add_adapter(self, name: str, path: Path) -> None:
        """Remember where adapter ``name`` lives; its weights load on first activation."""
        with self._tok_lock:
            self._adapter_paths[name] = path

    def tokenizer(self, adapter: str | None) -> Any:
        """The adapter's own tokenizer (it carries the chat template it was trained with)."""
        with self._tok_lock:
            if adapter not in self._tokenizers:
                path = Path(self.spec.path)
                if adapter is not None:
                    own = self._adapter_paths[adapter]
                    if any((own / f).is_file() for f in _TOKENIZER_FILES):
                        path = own
                self._tokenizers[adapter] = _load_tokenizer(path)
            return self._tokenizers[adapter]

    def encode(self, adapter: str | None, text: str, *, special: bool) -> list[int]:
        tok = self.tokenizer(adapter)
        with self._tok_lock:
            return list(tok(text, add_special_tokens=special)["input_ids"])

    def render_chat(self, adapter: str | None, messages: list[dict[str, str]]) -> str:
        """The prompt text for ``messages`` under the model's own chat template."""
        from jinja2 import TemplateError

        tok = self.tokenizer(adapter)
        if not getattr(tok, "chat_template", None):
            raise InvalidRequestError(
                "This model has no chat template, so it cannot take messages; call "
                "completions with a prompt instead, or fine-tune it for chat.",
                param="messages",
            )
        try:
            with self._tok_lock:
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError as exc:
            # Templates raise to enforce their rules (e.g. alternating roles).
            raise InvalidRequestError(
                f"The model's chat template refused these messages: {exc}", param="messages"
            ) from exc
        return str(text)

    # -- adapters (call with self.lock held) --------------------------------

    def activate(self, adapter: str | None) -> None:
        """Make the next forward pass run ``adapter`` (None: the bare base)."""
        from peft import PeftModel

        if adapter is None:
            if isinstance(self.model, PeftModel) and not self._disabled:
                self._tuner().disable_adapter_layers()
            self._disabled = True
            return
        if adapter not in self.resident:
            self._load_adapter(adapter)
        else:
            self.resident.move_to_end(adapter)
        if self._disabled:
            self._tuner().enable_adapter_layers()
            self._disabled = False
        if self._active != adapter:
            self.model.set_adapter(adapter, inference_mode=True)
            self._active = adapter

    def _tuner(self) -> Any:
        """peft's LoraModel inside the PeftModel (switches all adapter layers at once)."""
        return self.model.base_model

    def _load_adapter(self, adapter: str) -> None:
        from peft import PeftModel

        path = self._adapter_paths[adapter]
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=adapter, torch_device=self.device)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=adapter)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            if isinstance(self.model, PeftModel) and adapter in self.model.peft_config:
                # Leave no half-loaded adapter behind on a base others use.
                self.model.delete_adapter(adapter)
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
        self.model.set_adapter(adapter, inference_mode=True)
        self._active, self._disabled = adapter, False
        self.resident[adapter] = None
        while len(self.resident) > self.max_adapters:
            self.drop_adapter(next(iter(self.resident)))

    def drop_adapter(self, adapter: str) -> bool:
        """Free an adapter's weights; a later request for it loads them again."""
        if adapter not in self.resident:
            return False
        if adapter == self._active and len(self.resident) > 1:
            # Deleting the active adapter makes peft choose another; choose it here.
            other = next(name for name in self.resident if name != adapter)
            self.model.set_adapter(other, inference_mode=True)
            self._active = other
        self.model.delete_adapter(adapter)
        del self.resident[adapter]
        if adapter == self._active:
            self._active = None
        return True


def load_base(spec: BaseSpec, device: str, max_adapters: int) -> LoadedModel:
    """Load the weights ``spec`` names, in fp32, onto ``device``."""
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
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if spec.num_labels:
        # A LoRA classifier's head comes from its adapter (modules_to_save);
        # the base only needs the right shape for the adapter to load into.
        kwargs["num_labels"] = spec.num_labels
    try:
        model = classes[spec.head].from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"The model in {path} cannot be loaded as {spec.head} ({exc}); check the folder "
            "and the model's architecture.",
            param="model",
        ) from exc
    model.to(device)
    model.eval()
    return LoadedModel(spec, model, device, max_adapters)
