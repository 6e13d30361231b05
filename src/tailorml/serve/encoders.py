"""The engine's encoder requests: embeddings, classification (and why), rerank, neighbors.

``Engine`` (``engine.py``) inherits these beside generation. Each request
is admitted per base and tenant (a fast 429 before any work), encoded
with the tokenizer of its adapter, checked against the context, and run
by the backend's encoder batcher, which shares forward passes between
requests; its latency, tokens and outcome are counted per kind.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tailorml.errors import ContextLengthExceededError, InvalidRequestError
from tailorml.models.neighbors import NeighborIndex
from tailorml.serve.admission import Admission, Rejected, Ticket
from tailorml.serve.backend import LoadedBase
from tailorml.serve.bases import AdapterRequest, BaseSpec
from tailorml.serve.cache import ModelCache
from tailorml.serve.explain import IG_STEPS, MAX_EXPLAINED_INPUTS
from tailorml.serve.metrics import ServeMetrics
from tailorml.serve.models import ModelRef
from tailorml.serve.neighbors import MAX_NEIGHBORS, NeighborIndexes
from tailorml.serve.requests import check_inputs
from tailorml.serve.rerank import check_rerank, cosines, pair_inputs, relevant_class, single_inputs

T = TypeVar("T")


class EncoderRequests:
    """Embeddings, classification, rerank and neighbors; admission and metering for all."""

    _cache: ModelCache
    _indexes: NeighborIndexes
    admission: Admission
    metrics: ServeMetrics

    def _admit(self, spec: BaseSpec, tenant: str | None) -> Ticket:
        """A place for one request on ``spec``'s base, or a fast 429 (before any work)."""
        try:
            return self.admission.enter(Path(spec.path).name, tenant)
        except Rejected as exc:
            self.metrics.rejected.labels(Path(spec.path).name, exc.reason).inc()
            raise

    def embed(
        self,
        ref: ModelRef,
        inputs: list[str],
        *,
        truncate: bool = False,
        tenant: str | None = None,
    ) -> tuple[list[list[float]], int]:
        """L2-normalised mean-pooled vectors for ``inputs``, and their token count.

        ``truncate`` cuts inputs longer than the context instead of refusing them.
        """
        spec = self._cache.spec(ref)
        ticket = self._admit(spec, tenant)
        try:
            model, adapter = self._cache.get(ref, spec)
            batch = self._encode_inputs(ref, model, adapter, inputs, truncate)
            vectors = self._observed(
                ref, model, "embeddings", batch, lambda: model.embed(batch, adapter, tenant)
            )
        finally:
            ticket.release()
        return vectors, sum(map(len, batch))

    def neighbors(
        self,
        ref: ModelRef,
        inputs: list[str],
        k: int,
        *,
        truncate: bool = False,
        tenant: str | None = None,
    ) -> tuple[list[list[dict[str, Any]]], int]:
        """The ``k`` training records nearest each input in the model's own representation
        (the index training stored with it, ``models.neighbors``), and the token count."""
        self._index(ref, k)  # refuse before any work
        vectors, tokens = self.embed(ref, inputs, truncate=truncate, tenant=tenant)
        return self.nearest_records(ref, vectors, k), tokens

    def nearest_records(
        self, ref: ModelRef, vectors: list[list[float]], k: int
    ) -> list[list[dict[str, Any]]]:
        """The ``k`` training records nearest each of ``vectors`` (this model's embeddings)."""
        index = self._index(ref, k)
        return [index.nearest(v, k) for v in vectors]

    def _index(self, ref: ModelRef, k: int) -> NeighborIndex:
        if not 1 <= k <= MAX_NEIGHBORS:
            raise InvalidRequestError(
                f"explain.neighbors must be between 1 and {MAX_NEIGHBORS}; got {k}.",
                param="explain",
            )
        index = self._indexes.get(ref.path)
        if index is None:
            raise InvalidRequestError(
                f"Model {ref.key!r} has no index of its training records: only models "
                "fine-tuned here have one (those trained before it existed do not); leave out "
                "explain.neighbors.",
                param="explain",
            )
        return index

    def classify(
        self,
        ref: ModelRef,
        inputs: list[str],
        *,
        truncate: bool = False,
        tenant: str | None = None,
        explain: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """``{"label", "score", "scores"}`` per input (softmax), and the token count.

        ``explain`` adds ``explanation``: each token's integrated-gradients attribution to
        the predicted label's probability, with the convergence delta (``serve.explain``).
        """
        spec = self._cache.spec(ref)
        if spec.head != "classifier":
            raise InvalidRequestError(
                f"Model {ref.key!r} is not a classifier; use a model fine-tuned on text/label "
                "data (a classification fine-tuning job).",
                param="model",
            )
        if explain and len(inputs) > MAX_EXPLAINED_INPUTS:
            raise InvalidRequestError(
                f"explain takes at most {MAX_EXPLAINED_INPUTS} inputs per request (each costs "
                f"{IG_STEPS} forward and backward passes); got {len(inputs)}. Split the request.",
                param="explain",
            )
        ticket = self._admit(spec, tenant)
        try:
            model, adapter = self._cache.get(ref, spec)
            labels = _labels(ref, model, adapter)
            batch = self._encode_inputs(ref, model, adapter, inputs, truncate)
            rows = self._observed(
                ref, model, "classifications", batch,
                lambda: model.classify(batch, adapter, tenant),
            )  # fmt: skip
            best = [max(range(len(probs)), key=probs.__getitem__) for probs in rows]
            found = None
            if explain:
                found = self._observed(
                    ref, model, "explanations", batch,
                    lambda: model.explain(batch, adapter, best),
                )  # fmt: skip
        finally:
            ticket.release()
        results = []
        for i, probs in enumerate(rows):
            names = labels if len(labels) == len(probs) else tuple(map(str, range(len(probs))))
            scores = dict(zip(names, probs, strict=True))
            result = {"label": names[best[i]], "score": probs[best[i]], "scores": scores}
            if found is not None:
                result["explanation"] = {
                    "method": "integrated_gradients",
                    "target": names[best[i]],
                    "tokens": found[i].tokens,
                    "attributions": found[i].scores,
                    "convergence_delta": found[i].convergence_delta,
                    "baseline_score": found[i].baseline_probability,
                }
            results.append(result)
        return results, sum(map(len, batch))

    def rerank(
        self,
        ref: ModelRef,
        query: str,
        documents: list[str],
        *,
        truncate: bool = False,
        tenant: str | None = None,
    ) -> tuple[list[float], int]:
        """Each document's relevance to ``query``, in the documents' order, and the tokens
        read: an embedder's cosine, or a cross-encoder classifier's probability of
        "relevant" (see ``rerank.py``)."""
        documents = check_rerank(query, documents)
        spec = self._cache.spec(ref)
        if spec.head == "causal_lm":
            raise InvalidRequestError(
                f"Model {ref.key!r} is a decoder (chat/completion) model and cannot rerank; use "
                "an embedding model or a classifier trained on (query, document) pairs.",
                param="model",
                code="invalid_model_for_endpoint",
            )
        ticket = self._admit(spec, tenant)
        try:
            model, adapter = self._cache.get(ref, spec)
            limit, tokenizer = context_limit(ref, model), model.tokenizer(adapter)
            if spec.head == "classifier":
                labels = _labels(ref, model, adapter)
                batch, types = pair_inputs(tokenizer, query, documents, limit, truncate)
                rows = self._observed(
                    ref, model, "rerank", batch,
                    lambda: model.classify(batch, adapter, tenant, token_types=types),
                )  # fmt: skip
                scores = [row[relevant_class(labels, len(row))] for row in rows]
            else:
                batch = single_inputs(tokenizer, query, documents, limit, truncate)
                vectors = self._observed(
                    ref, model, "rerank", batch, lambda: model.embed(batch, adapter, tenant)
                )
                scores = cosines(vectors)
        finally:
            ticket.release()
        return scores, sum(map(len, batch))

    def _observed(
        self, ref: ModelRef, model: LoadedBase, kind: str, batch: list[list[int]],
        run: Callable[[], T],
    ) -> T:  # fmt: skip
        """``run()``, with its latency, tokens and outcome counted under ``kind``."""
        labels = (Path(model.spec.path).name, ref.key)
        start, outcome = time.monotonic(), "error"
        try:
            result = run()
            outcome = "ok"
            return result
        finally:
            self.metrics.requests.labels(*labels, kind, outcome).inc()
            self.metrics.latency.labels(*labels, kind).observe(time.monotonic() - start)
            self.metrics.prompt_tokens.labels(*labels, kind).inc(sum(map(len, batch)))

    def _encode_inputs(
        self,
        ref: ModelRef,
        model: LoadedBase,
        adapter: AdapterRequest | None,
        inputs: list[str],
        truncate: bool = False,
    ) -> list[list[int]]:
        limit = context_limit(ref, model)
        tokenizer = model.tokenizer(adapter)
        batch = []
        for i, text in enumerate(check_inputs(inputs)):
            ids = tokenizer.encode(text, special=True)
            if len(ids) > limit and truncate:
                ids = ids[: limit - 1] + ids[-1:]  # keep the closing special token ([SEP])
            elif len(ids) > limit:
                raise ContextLengthExceededError(
                    f"This model's maximum context length is {limit} tokens, however input "
                    f"{i} has {len(ids)} tokens. Please shorten or split that input, or send "
                    '"truncate": true to cut it.',
                    param="input",
                )
            batch.append(ids)
        return batch


def context_limit(ref: ModelRef, model: LoadedBase) -> int:
    positions = model.max_positions or math.inf
    return int(min(ref.context_length, positions))


def _labels(ref: ModelRef, model: LoadedBase, adapter: AdapterRequest | None) -> tuple[str, ...]:
    """A classifier's class names. A LoRA base carries placeholder names (LABEL_0...), as
    does a full model saved without id2label: the manifest's labels are the real ones."""
    labels = model.labels
    if ref.labels and (adapter is not None or _placeholder_labels(labels)):
        return ref.labels
    return labels


def _placeholder_labels(labels: tuple[str, ...]) -> bool:
    return all(label == f"LABEL_{i}" for i, label in enumerate(labels))
