"""The engine's LRU of loaded base models, and which base and adapter each ref runs on.

At most ``max_loaded`` bases stay in memory; using one marks it recent and
loading one more drops the least recently used. A LoRA fine-tune does not
count as a model of its own: its adapter rides on its base (see
``bases.py``) and each base keeps at most ``LoadConfig.max_adapters``
adapters.

A base is loaded once even when several threads ask for it at the same
time (a lock per base), while requests for other, already loaded models go
on meanwhile. A request holding a model that gets evicted keeps its
reference and finishes; the memory is freed when it is done. What base a
ref runs on is read from its folder once per ref, not per request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from tailorml.errors import InvalidRequestError
from tailorml.serve.backend import LoadConfig, LoadedBase, ServingBackend
from tailorml.serve.bases import AdapterRequest, BaseSpec, adapter_request, base_spec
from tailorml.serve.models import ModelRef

MAX_SPECS = 4096  # refs whose base spec is remembered (a few hundred bytes each)


class ModelCache:
    """Loaded bases by ``BaseSpec``, least recently used first."""

    def __init__(self, backend: ServingBackend, config: LoadConfig, max_loaded: int) -> None:
        if max_loaded < 1:
            raise InvalidRequestError(
                "max_loaded must be at least 1; raise it in the serving settings.",
                param="max_loaded",
            )
        self._backend = backend
        self._config = config
        self._max_loaded = max_loaded
        self._lock = threading.Lock()
        self._bases: OrderedDict[BaseSpec, LoadedBase] = OrderedDict()
        self._loading: dict[BaseSpec, threading.Lock] = {}
        self._specs: OrderedDict[ModelRef, BaseSpec] = OrderedDict()
        # public model id -> where it lives, for loaded() and unload()
        self._keys: dict[str, tuple[BaseSpec, str | None]] = {}

    def spec(self, ref: ModelRef) -> BaseSpec:
        """The base ``ref`` runs on (read from its folder the first time only)."""
        with self._lock:
            spec = self._specs.get(ref)
            if spec is not None:
                self._specs.move_to_end(ref)
                return spec
        spec = base_spec(ref)
        with self._lock:
            self._specs[ref] = spec
            while len(self._specs) > MAX_SPECS:
                self._specs.popitem(last=False)
        return spec

    def get(
        self, ref: ModelRef, spec: BaseSpec | None = None
    ) -> tuple[LoadedBase, AdapterRequest | None]:
        """The loaded base for ``ref`` and the adapter its requests carry (None: no adapter)."""
        spec = spec or self.spec(ref)
        model = self._base(spec)
        adapter = adapter_request(ref)
        if adapter is not None:
            model.add_adapter(adapter)
        with self._lock:
            self._keys[ref.key] = (spec, adapter.name if adapter else None)
        return model, adapter

    def _base(self, spec: BaseSpec) -> LoadedBase:
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
            model = self._backend.load(spec, self._config)
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
        return model.remove_adapter(name)

    def bases(self) -> list[tuple[str, LoadedBase]]:
        """Each loaded base, named by its folder, most recently used last."""
        with self._lock:
            return [(Path(spec.path).name, model) for spec, model in self._bases.items()]

    def loaded(self) -> list[str]:
        """Public ids whose weights are in memory now, sorted."""
        with self._lock:
            out = []
            for key, (spec, name) in self._keys.items():
                model = self._bases.get(spec)
                if model is not None and (name is None or model.has_adapter(name)):
                    out.append(key)
        return sorted(out)
