"""The PyTorch serving backend: transformers and peft models on one device.

``TorchBackend.load`` gives a ``TorchBase``: the weights (``loading.py``),
a tokenizer per adapter, and a ``StepScheduler`` whose lock every forward
pass on that base takes. Generation on a decoder whose attention fits the
slot KV cache runs continuously batched (``batching.py``): requests join
and leave one shared batch between steps, each with its own adapter;
other decoders run the sequential decode loop. Embeddings and
classification requests are batched dynamically across requests, tenants
and adapters (``encoder_batching.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tailorml.registry import register
from tailorml.serve.backend import (
    BaseStats,
    GenerationRequest,
    GenerationStep,
    LoadConfig,
    ServingBackend,
)
from tailorml.serve.bases import AdapterRequest, BaseSpec
from tailorml.serve.batching import BatchScheduler
from tailorml.serve.encoder_batching import EncoderBatcher
from tailorml.serve.explain import Attribution, integrated_gradients
from tailorml.serve.grammar import GrammarCompiler
from tailorml.serve.loading import Weights, load_weights
from tailorml.serve.scheduler import StepScheduler
from tailorml.serve.tokenizer import HFTokenizer, has_tokenizer, load_tokenizer


@register("serving_backend", "torch")
class TorchBackend:
    """Runs transformers/peft models with PyTorch (fp32 on a CPU unless told otherwise)."""

    def load(self, spec: BaseSpec, config: LoadConfig) -> TorchBase:
        return TorchBase(load_weights(spec, config), config)


class TorchBase:
    """One base model in memory on PyTorch: its weights, tokenizers, adapters and scheduler."""

    def __init__(self, weights: Weights, config: LoadConfig | None = None) -> None:
        config = config or LoadConfig()
        self.spec = weights.spec
        self.max_positions = weights.max_positions
        self.labels = weights.labels
        self.weights = weights
        self.scheduler = StepScheduler(weights)
        self.batcher: BatchScheduler | None = None
        if weights.spec.head == "causal_lm" and BatchScheduler.supports(weights):
            self.batcher = BatchScheduler(
                weights,
                self.scheduler.lock,
                max_batch=config.max_batch,
                kv_cache_bytes=config.kv_cache_mb << 20,
                prefill_chunk=config.prefill_chunk,
            )
        self.encoder = EncoderBatcher(
            weights,
            self.scheduler.lock,
            max_rows=config.encode_batch,
            max_wait_ms=config.batch_wait_ms,
        )
        self._lock = threading.Lock()
        self._tokenizers: dict[str | None, HFTokenizer] = {}
        self._grammar_compiler: GrammarCompiler | None = None

    def tokenizer(self, adapter: AdapterRequest | None) -> HFTokenizer:
        """The adapter's own tokenizer when it ships one (it carries the chat template it was
        trained with), else the base's."""
        key = adapter.name if adapter is not None else None
        with self._lock:
            if key not in self._tokenizers:
                path = Path(self.spec.path)
                if adapter is not None and has_tokenizer(adapter.path):
                    path = adapter.path
                self._tokenizers[key] = load_tokenizer(path)
            return self._tokenizers[key]

    def stop_token_ids(self, adapter: AdapterRequest | None) -> frozenset[int]:
        return frozenset(self.weights.eos_token_ids() | self.tokenizer(adapter).stop_token_ids())

    def add_adapter(self, adapter: AdapterRequest) -> None:
        self.scheduler.prepare(adapter)

    def remove_adapter(self, name: str) -> bool:
        return self.scheduler.remove(name)

    def has_adapter(self, name: str) -> bool:
        return name in self.weights.resident

    def generate(self, request: GenerationRequest) -> Iterator[GenerationStep]:
        matcher = None
        grammar = request.params.grammar
        if grammar is not None:  # compiled now, so a bad grammar fails before a stream
            matcher = self._grammars().matcher(grammar, request.params.stop_token_ids)
        if self.batcher is not None:
            return self.batcher.generate(request, matcher)
        return self.scheduler.generate(request, matcher)

    def _grammars(self) -> GrammarCompiler:
        hf = self.tokenizer(None).hf  # takes self._lock itself
        with self._lock:
            if self._grammar_compiler is None:
                self._grammar_compiler = GrammarCompiler(hf)
            return self._grammar_compiler

    def stats(self) -> BaseStats:
        encoder = self.encoder.stats()
        weights = self.weights
        common = {
            "adapters_resident": len(weights.resident),
            "encode_forwards": encoder.forwards,
            "encode_rows": encoder.rows,
            "adapter_loads": weights.loads,
            "adapter_evictions": weights.evictions,
        }
        if self.batcher is None:
            return BaseStats(waiting=encoder.waiting, **common)
        batch = self.batcher.stats()
        return BaseStats(
            running=batch.running,
            waiting=batch.waiting + encoder.waiting,
            kv_cache_bytes=batch.kv_bytes,
            kv_cache_budget_bytes=batch.kv_budget_bytes,
            decode_forwards=batch.forwards,
            decode_rows=batch.rows,
            **common,
        )

    def embed(
        self, batch: list[list[int]], adapter: AdapterRequest | None, tenant: str | None = None
    ) -> list[list[float]]:
        return self.encoder.run(batch, adapter, hidden=True, tenant=tenant)

    def classify(
        self,
        batch: list[list[int]],
        adapter: AdapterRequest | None,
        tenant: str | None = None,
        token_types: list[list[int]] | None = None,
    ) -> list[list[float]]:
        return self.encoder.run(batch, adapter, hidden=False, tenant=tenant, types=token_types)

    def explain(
        self, batch: list[list[int]], adapter: AdapterRequest | None, targets: list[int]
    ) -> list[Attribution]:
        """Integrated-gradients attributions of each input to its target class
        (``tailorml.serve.explain``), under the model lock with ``adapter`` active."""
        weights = self.weights
        hf = self.tokenizer(adapter).hf
        pad = hf.pad_token_id if hf.pad_token_id is not None else 0
        special = frozenset(hf.all_special_ids)
        with self.scheduler.lock:
            if adapter is not None:
                weights.ensure(adapter)
                weights.pin(adapter.name)
            try:
                weights.activate(adapter)
                return [
                    integrated_gradients(
                        weights.model,
                        ids,
                        target,
                        pad_id=pad,
                        special_ids=special,
                        tokens=hf.convert_ids_to_tokens(ids),
                    )
                    for ids, target in zip(batch, targets, strict=True)
                ]
            finally:
                if adapter is not None:
                    weights.unpin(adapter.name)


if TYPE_CHECKING:
    # mypy checks here that the torch classes fit the contract the engine is typed on.
    _contract: ServingBackend = TorchBackend()
