"""The engine's LRU of loaded base models and the adapters registered on them.

At most ``max_loaded`` bases stay in memory; using one marks it recent and
loading one more drops the least recently used. A LoRA fine-tune does not
count as a model of its own: its adapter rides on its base (see
``loading.py``) and each base keeps at most ``max_adapters`` adapters.

A base is loaded once even when several threads ask for it at the same
time (a lock per base folder), while requests for other, already loaded
models go on meanwhile. A request holding a model that gets evicted keeps
its reference and finishes; the memory is freed when it is done.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from tailorml.errors import InvalidRequestError
from tailorml.serve.backend import ServingBackend
from tailorml.serve.loading import BaseSpec, LoadedModel, adapter_name, base_spec
from tailorml.serve.models import ModelRef


class ModelCache:
    """Loaded bases by ``BaseSpec``, least recently used first."""

    def __init__(
        self, backend: ServingBackend, device: str, max_loaded: int, max_adapters: int
    ) -> None:
        if max_loaded < 1 or max_adapters < 1:
            raise InvalidRequestError(
                "max_loaded and max_adapters_per_base must be at least 1; raise them in the "
                "serving settings.",
                param="max_loaded",
            )
        self._backend = backend
        self._device = device
        self._max_loaded = max_loaded
        self._max_adapters = max_adapters
        self._lock = threading.Lock()
        self._bases: OrderedDict[BaseSpec, LoadedModel] = OrderedDict()
        self._loading: dict[BaseSpec, threading.Lock] = {}
        # public model id -> where it lives, for loaded() and unload()
        self._keys: dict[str, tuple[BaseSpec, str | None]] = {}

    def get(self, ref: ModelRef, spec: BaseSpec | None = None) -> tuple[LoadedModel, str | None]:
        """The loaded base for ``ref`` and its adapter name (None: no adapter)."""
        spec = spec or base_spec(ref)
        model = self._base(spec)
        name = adapter_name(ref)
        if name is not None:
            model.add_adapter(name, ref.path)
            # Load the adapter now rather than at the first token, so a broken
            # adapter fails the request before a stream has started.
            with model.lock:
                model.activate(name)
        with self._lock:
            self._keys[ref.key] = (spec, name)
        return model, name

    def _base(self, spec: BaseSpec) -> LoadedModel:
        with self._lock:
            if spec in self._bases:
                self._bases.move_to_end(spec)
                return self._bases[spec]
            loading = self._loading.setdefault(spec, threading.Lock())
        with loading:
            with self._lock:
                if spec in self._bases:
                    self._bases.move_to_end(spec)
                    return self._bases[spec]
            # Loading takes seconds; other models keep serving meanwhile.
            model = self._backend.load(spec, self._device, self._max_adapters)
            with self._lock:
                self._bases[spec] = model
                while len(self._bases) > self._max_loaded:
                    self._bases.popitem(last=False)
            return model

    def unload(self, key: str) -> bool:
        """Free ``key``'s adapter, or its whole base (with every adapter on it)."""
        with self._lock:
            where = self._keys.pop(key, None)
            if where is None:
                return False
            spec, name = where
            if name is None:
                return self._bases.pop(spec, None) is not None
            model = self._bases.get(spec)
        if model is None:
            return False
        with model.lock:
            return model.drop_adapter(name)

    def loaded(self) -> list[str]:
        """Public ids whose weights are in memory now, sorted."""
        with self._lock:
            out = []
            for key, (spec, name) in self._keys.items():
                model = self._bases.get(spec)
                if model is not None and (name is None or name in model.resident):
                    out.append(key)
        return sorted(out)
