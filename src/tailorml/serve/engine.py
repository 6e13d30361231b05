"""The inference engine: generation, embeddings, classification and rerank over local models.

``Engine`` is what the platform's HTTP layer calls, from a thread pool, for
every ``/v1`` request. It checks the request the way OpenAI does (same
limits, same error wording), renders chat prompts with the chat template
saved beside the model (the one it was trained with) using the tokenizer
the backend gives it, counts tokens, submits a ``GenerationRequest`` to the
loaded base and turns the token stream it gets back into text, cut at stop
strings (see ``backend.py`` for the contract). The backend's scheduler
decides how requests on one base share it; requests on different bases run
in parallel. A non-streamed answer is the join of the streamed pieces, so
both modes always agree. Embeddings, classification, rerank and neighbors
are in ``encoders.py``, which ``Engine`` inherits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import tailorml.serve.torch_backend  # noqa: F401  (registers the default "torch" backend)
from tailorml.errors import ContextLengthExceededError, InvalidRequestError
from tailorml.registry import lookup
from tailorml.serve.admission import Admission, Ticket
from tailorml.serve.backend import (
    GenerationRequest,
    GenerationStep,
    LoadConfig,
    LoadedBase,
    SamplingParams,
    ServingBackend,
    TokenLogprob,
)
from tailorml.serve.bases import AdapterRequest, BaseSpec
from tailorml.serve.cache import ModelCache
from tailorml.serve.encoders import EncoderRequests, context_limit
from tailorml.serve.metrics import ServeMetrics
from tailorml.serve.models import ModelRef
from tailorml.serve.neighbors import NeighborIndexes
from tailorml.serve.requests import (
    check_choices,
    check_messages,
    check_sampling,
    grammar_for,
)
from tailorml.serve.textstream import IncrementalDecoder, StopStringCutter

T = TypeVar("T")

# What max_tokens=None generates at most: "up to the context" would let one
# casual request occupy a model for thousands of steps.
DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class GenerateOptions:
    """What a generation request may ask for, with OpenAI's names and defaults."""

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] | str | None = None
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: int | None = None  # None: none; k: each token's logprob and its k likeliest
    response_format: dict[str, Any] | None = None  # text, json_object or json_schema
    n: int = 1  # choices, generated side by side in the batch


@dataclass
class Choice:
    """One finished choice of an answer."""

    index: int
    text: str
    finish_reason: str
    completion_tokens: int
    logprobs: list[dict[str, Any]] | None = None  # OpenAI's logprobs.content entries


@dataclass
class Completion:
    """A finished answer; ``finish_reason`` is "stop" (eos, stop string or a complete
    grammar) or "length". ``text`` and ``finish_reason`` are the first choice's;
    ``completion_tokens`` counts every choice's tokens, the prompt counts once."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    choices: list[Choice] = field(default_factory=list)


@dataclass
class StreamDelta:
    """One piece of a streamed answer; each choice's last one has ``finish_reason`` set.

    ``completion_tokens`` counts the tokens of every choice so far (so the last piece
    carries the answer's total) and ``choice_tokens`` those of choice ``index``;
    ``logprobs`` (when asked for) are those of the tokens whose text this piece carries."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    index: int = 0
    logprobs: list[dict[str, Any]] | None = None
    choice_tokens: int = 0


class Engine(EncoderRequests):
    """Serves ``ModelRef``s, keeping up to ``max_loaded`` base models in memory (thread-safe).

    ``backend`` is a registered ``serving_backend`` name or a backend object;
    ``device`` and ``dtype`` say where and in what precision bases load
    ("auto" dtype is float32 on a CPU; see ``bases.resolve_dtype``);
    ``max_batch``, ``kv_cache_mb`` and ``prefill_chunk`` bound each decoder's
    continuous batch (see ``batching.py``); ``encode_batch`` and
    ``batch_wait_ms`` bound the dynamic batches of embeddings and
    classification requests (see ``encoder_batching.py``); ``max_queue``
    bounds the requests in flight per base and ``tenant_concurrency`` those
    of one tenant, or ``tenant_limits(tenant)`` where that gives a number (see
    ``admission.py``): over either, a fast 429.
    """

    def __init__(
        self,
        max_loaded: int = 4,
        device: str = "cpu",
        *,
        backend: str | ServingBackend = "torch",
        max_adapters_per_base: int = 16,
        dtype: str = "auto",
        max_batch: int = 32,
        kv_cache_mb: int = 2048,
        prefill_chunk: int = 512,
        encode_batch: int = 64,
        batch_wait_ms: float = 2.0,
        max_queue: int = 256,
        tenant_concurrency: int = 64,
        tenant_limits: Callable[[str], int | None] | None = None,
    ) -> None:
        self.device = device
        self.config = LoadConfig(
            device=device,
            dtype=dtype,
            max_adapters=max_adapters_per_base,
            max_batch=max_batch,
            kv_cache_mb=kv_cache_mb,
            prefill_chunk=prefill_chunk,
            encode_batch=encode_batch,
            batch_wait_ms=batch_wait_ms,
        )
        self._backend: ServingBackend = (
            lookup("serving_backend", backend)() if isinstance(backend, str) else backend
        )
        self._cache = ModelCache(self._backend, self.config, max_loaded)
        self.admission = Admission(
            max_queue=max_queue, tenant_concurrency=tenant_concurrency, limit_for=tenant_limits
        )
        self.metrics = ServeMetrics(lambda: [(n, m.stats()) for n, m in self._cache.bases()])
        self._indexes = NeighborIndexes()

    # -- generation ----------------------------------------------------------

    def chat(
        self,
        ref: ModelRef,
        messages: list[dict[str, Any]],
        *,
        tenant: str | None = None,
        **options: Any,
    ) -> Completion:
        """Answer a conversation (OpenAI chat completions) for ``tenant`` (None: no
        per-tenant bound). ``options`` are ``GenerateOptions``' fields: max_tokens,
        temperature, top_p, stop, seed, presence_penalty, frequency_penalty, logprobs
        (None, or how many alternatives per token), response_format and n."""
        return _join(self.stream_chat(ref, messages, tenant=tenant, **options))

    def complete(
        self, ref: ModelRef, prompt: str, *, tenant: str | None = None, **options: Any
    ) -> Completion:
        """Continue a raw prompt (OpenAI legacy completions); ``options`` as for ``chat``."""
        return _join(self.stream_complete(ref, prompt, tenant=tenant, **options))

    def stream_chat(
        self,
        ref: ModelRef,
        messages: list[dict[str, Any]],
        *,
        tenant: str | None = None,
        **options: Any,
    ) -> Iterator[StreamDelta]:
        """Like ``chat``, in pieces (``StreamDelta.index`` says whose, when n > 1). Every
        check runs before this returns, so a bad request raises here rather than after the
        caller has started a stream."""
        opts = GenerateOptions(**options)
        spec = self._generation_spec(ref)
        ticket = self._admit(spec, tenant)
        try:
            model, adapter = self._cache.get(ref, spec)
            tokenizer = model.tokenizer(adapter)
            rendered = tokenizer.render_chat(check_messages(messages))
            # The template already wrote the special tokens the model was trained with.
            ids = tokenizer.encode(rendered, special=False)
            return self._start(ref, model, adapter, ids, "messages", opts, ticket)
        except BaseException:
            ticket.release()
            raise

    def stream_complete(
        self, ref: ModelRef, prompt: str, *, tenant: str | None = None, **options: Any
    ) -> Iterator[StreamDelta]:
        """Like ``complete``, in pieces (checks run before this returns)."""
        if not isinstance(prompt, str):
            raise InvalidRequestError("'prompt' must be a string.", param="prompt")
        opts = GenerateOptions(**options)
        spec = self._generation_spec(ref)
        ticket = self._admit(spec, tenant)
        try:
            model, adapter = self._cache.get(ref, spec)
            ids = model.tokenizer(adapter).encode(prompt, special=True)
            return self._start(ref, model, adapter, ids, "prompt", opts, ticket)
        except BaseException:
            ticket.release()
            raise

    def _generation_spec(self, ref: ModelRef) -> BaseSpec:
        spec = self._cache.spec(ref)
        if spec.head != "causal_lm":
            raise InvalidRequestError(
                f"Model {ref.key!r} is an {ref.architecture} model ({spec.head}) and cannot "
                "generate text; use a chat or completion model, or call embeddings or "
                "classifications with this one.",
                param="model",
            )
        return spec

    def _start(
        self,
        ref: ModelRef,
        model: LoadedBase,
        adapter: AdapterRequest | None,
        ids: list[int],
        param: str,
        opts: GenerateOptions,
        ticket: Ticket,
    ) -> Iterator[StreamDelta]:
        max_tokens = opts.max_tokens
        stops = check_sampling(max_tokens, opts.temperature, opts.top_p, opts.stop, opts.seed)
        check_choices(opts.presence_penalty, opts.frequency_penalty, opts.logprobs, opts.n)
        grammar = grammar_for(opts.response_format)
        limit = context_limit(ref, model)
        wanted = max_tokens if max_tokens is not None else 1
        if not ids or len(ids) + wanted > limit:
            if not ids:
                raise InvalidRequestError(f"The {param} is empty; send some text.", param=param)
            raise ContextLengthExceededError(
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {len(ids) + wanted} tokens ({len(ids)} in the {param}, {wanted} "
                f"in the completion). Please reduce the length of the {param} or completion.",
                param=param,
            )
        if max_tokens is None:
            max_tokens = min(DEFAULT_MAX_TOKENS, limit - len(ids))
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=opts.temperature,
            top_p=opts.top_p,
            seed=opts.seed,
            stop=tuple(stops),
            stop_token_ids=model.stop_token_ids(adapter),
            presence_penalty=opts.presence_penalty,
            frequency_penalty=opts.frequency_penalty,
            logprobs=opts.logprobs,
            grammar=grammar,
        )
        arrived = time.monotonic()
        streams = []
        for i in range(opts.n):
            # Choices of a seeded request differ from each other and repeat across calls.
            seeded = replace(params, seed=None if opts.seed is None else opts.seed + i)
            request = GenerationRequest(
                uuid.uuid4().hex, tuple(ids), seeded, adapter, ticket.tenant
            )
            streams.append(self._deltas(ref, model, request, arrived, i))
        return _held(_merged(streams), ticket)

    def _deltas(
        self,
        ref: ModelRef,
        model: LoadedBase,
        request: GenerationRequest,
        arrived: float,
        index: int,
    ) -> Iterator[StreamDelta]:
        """One choice's pieces, each with the log-probabilities of the tokens it carries."""
        tokenizer = model.tokenizer(request.adapter)
        decoder = IncrementalDecoder(tokenizer)
        cutter = StopStringCutter(list(request.params.stop))
        n_prompt, n_out, finish, tail = len(request.prompt_ids), 0, "length", ""
        want_logprobs = request.params.logprobs is not None
        pending: list[dict[str, Any]] = []
        labels = (Path(model.spec.path).name, ref.key)
        metrics, first, outcome = self.metrics, 0.0, "cancelled"
        steps = model.generate(request)
        try:
            for token, is_stop, reason, logprob in _tokens(steps):
                n_out += 1
                if n_out == 1:
                    first = time.monotonic()
                    metrics.ttft.labels(*labels).observe(first - arrived)
                if is_stop:  # the backend's scheduler checked the stop ids; it is no text
                    finish = "stop"
                    break
                if logprob is not None:
                    pending.append(_openai_logprob(tokenizer, logprob))
                piece = cutter.push(decoder.push(token))
                if cutter.stopped:
                    finish, tail = "stop", piece
                    break
                if piece:
                    yield StreamDelta(piece, None, n_prompt, n_out, index,
                                      pending if want_logprobs else None, n_out)  # fmt: skip
                    pending = []
                if reason is not None:
                    finish = reason
            outcome = "ok"
        except Exception:
            outcome = "error"
            raise
        finally:
            # Also runs when the client stops reading: the backend aborts the request.
            close = getattr(steps, "close", None)
            if close is not None:
                close()
            done = time.monotonic()
            metrics.requests.labels(*labels, "generation", outcome).inc()
            metrics.latency.labels(*labels, "generation").observe(done - arrived)
            metrics.prompt_tokens.labels(*labels, "generation").inc(n_prompt)
            metrics.generated_tokens.labels(*labels).inc(n_out)
            if n_out > 1:
                metrics.tpot.labels(*labels).observe((done - first) / (n_out - 1))
        if not cutter.stopped:
            tail = cutter.push(decoder.flush())
            finish = "stop" if cutter.stopped else finish
            tail += cutter.flush()
        yield StreamDelta(
            tail, finish, n_prompt, n_out, index, pending if want_logprobs else None, n_out
        )

    # -- bookkeeping ---------------------------------------------------------

    def count_tokens(self, ref: ModelRef, text_or_messages: str | list[dict[str, Any]]) -> int:
        """Tokens a prompt (string) or a conversation (messages) costs on ``ref``."""
        if isinstance(text_or_messages, str):
            model, adapter = self._cache.get(ref)
            return len(model.tokenizer(adapter).encode(text_or_messages, special=True))
        model, adapter = self._cache.get(ref, self._generation_spec(ref))
        tokenizer = model.tokenizer(adapter)
        rendered = tokenizer.render_chat(check_messages(text_or_messages))
        return len(tokenizer.encode(rendered, special=False))

    def unload(self, key: str) -> bool:
        """Free the model served as ``key`` (a base also frees its adapters)."""
        return self._cache.unload(key)

    def loaded(self) -> list[str]:
        """Public ids of the models in memory now."""
        return self._cache.loaded()


def _tokens(
    steps: Iterator[GenerationStep],
) -> Iterator[tuple[int, bool, str | None, TokenLogprob | None]]:
    """Each generated token, whether it is the stop token that ended the answer, the
    finish reason its step reported (on the last token of a step only), and its
    log-probability when the request asked for them."""
    for step in steps:
        last = len(step.token_ids) - 1
        for i, token in enumerate(step.token_ids):
            ends = i == last
            yield (
                token,
                ends and step.stop_token_id is not None,
                step.finish_reason if ends else None,
                step.logprobs[i] if step.logprobs else None,
            )


def _openai_logprob(tokenizer: Any, logprob: TokenLogprob) -> dict[str, Any]:
    """One entry of OpenAI's ``logprobs.content``: the token, its logprob and bytes, and
    the likeliest alternatives."""

    def entry(token_id: int, value: float) -> dict[str, Any]:
        text = tokenizer.decode([token_id])
        return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8"))}

    return entry(logprob.token_id, logprob.logprob) | {
        "top_logprobs": [entry(t, v) for t, v in logprob.top]
    }


def _merged(streams: list[Iterator[StreamDelta]]) -> Iterator[StreamDelta]:
    """The pieces of several choices, taking one from each in turn (they decode in the
    same batch, so they arrive together)."""
    live = list(streams)
    counts = [0] * len(streams)
    try:
        while live:
            for stream in list(live):
                delta = next(stream, None)
                if delta is None:
                    live.remove(stream)
                    continue
                counts[delta.index] = delta.choice_tokens
                yield replace(delta, completion_tokens=sum(counts))
    finally:
        for stream in streams:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def _held(deltas: Iterator[StreamDelta], ticket: Ticket) -> Iterator[StreamDelta]:
    """``deltas``, giving the admission ticket back when they end, fail or are dropped (a
    generator never started frees it when collected: ``Ticket.__del__``)."""
    try:
        yield from deltas
    finally:
        ticket.release()


def _join(deltas: Iterator[StreamDelta]) -> Completion:
    texts: dict[int, list[str]] = {}
    logprobs: dict[int, list[dict[str, Any]]] = {}
    ends: dict[int, StreamDelta] = {}
    prompt = 0
    for delta in deltas:
        texts.setdefault(delta.index, []).append(delta.text)
        if delta.logprobs is not None:
            logprobs.setdefault(delta.index, []).extend(delta.logprobs)
        if delta.finish_reason is not None:
            ends[delta.index] = delta
        prompt = delta.prompt_tokens
    assert ends and len(ends) == len(texts)  # _deltas always ends each choice so
    choices = [
        Choice(i, "".join(texts[i]), end.finish_reason or "stop", end.choice_tokens,
               logprobs.get(i) if end.logprobs is not None else None)
        for i, end in sorted(ends.items())
    ]  # fmt: skip
    first = choices[0]
    total = sum(c.completion_tokens for c in choices)
    return Completion(first.text, first.finish_reason, prompt, total, choices)
