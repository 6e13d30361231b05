"""The contract between the engine and a serving backend, shaped like vLLM's engine API.

The engine owns what a client sees: request checks, prompt rendering,
context limits, stop strings, text streaming, and the LRU of loaded bases.
A backend loads a base into a ``LoadedBase``, which owns the weights, the
tokenizers and a scheduler. The engine asks it for a ``Tokenizer`` (per
adapter: an adapter carries the chat template it was trained with),
renders and encodes with it, submits a ``GenerationRequest`` (prompt ids,
``SamplingParams`` with stops, the adapter as a per-request
``AdapterRequest``) and reads a stream of ``GenerationStep``; closing the
stream aborts the request.

This is how vLLM's OpenAI layer calls its engine
(``get_tokenizer(lora_request)``, then ``generate(prompt, sampling_params,
request_id, lora_request=...)``), so a vLLM backend maps each type one to
one: ``AdapterRequest`` to ``LoRARequest``, ``SamplingParams`` to its own,
the delta of each ``RequestOutput`` to a ``GenerationStep``, closing the
stream to ``abort(request_id)``, its tokenizer to ``HFTokenizer``.

Stop token ids are checked in one place, the backend's scheduler, which
ends the sequence there (freeing its slot) and says so; stop strings need
the decoded text, so the engine cuts them. Backends register as
``register("serving_backend", name)``; the PyTorch one ("torch") is the
default.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from tailorml.errors import InvalidRequestError
from tailorml.serve.bases import AdapterRequest, BaseSpec
from tailorml.serve.explain import Attribution
from tailorml.serve.grammar import Grammar

DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token of one request, and where it ends."""

    max_tokens: int
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()  # strings: the engine cuts the text at the first one
    stop_token_ids: frozenset[int] = frozenset()  # tokens: the backend ends the sequence
    presence_penalty: float = 0.0  # subtracted from the score of every token generated so far
    frequency_penalty: float = 0.0  # subtracted once per time a token was generated so far
    logprobs: int | None = None  # None: none; k: each token's log-probability and the top k
    grammar: Grammar | None = None  # the answer must match it (response_format)


@dataclass(frozen=True)
class GenerationRequest:
    """One generation, as the engine submits it to a loaded base."""

    request_id: str
    prompt_ids: tuple[int, ...]
    params: SamplingParams
    adapter: AdapterRequest | None = None  # None: the bare base
    tenant: str | None = None  # whose request: schedulers take turns between tenants


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log-probability, and the most likely tokens at its place."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class GenerationStep:
    """What one request gained since the last step: new token ids and, at the end, why.

    ``token_ids`` holds every generated token, the stop token included (it
    counts as a completion token, as in OpenAI's usage and vLLM's outputs);
    ``stop_token_id`` is set when the last of them is a stop token, which is
    never shown as text. A stream ends after the step with ``finish_reason``.
    """

    token_ids: tuple[int, ...]
    finish_reason: str | None = None  # "stop" or "length"
    stop_token_id: int | None = None
    logprobs: tuple[TokenLogprob, ...] = ()  # one per token when the request asked for them


@dataclass(frozen=True)
class BaseStats:
    """What one loaded base's schedulers are doing now, and have done (for metrics)."""

    running: int = 0  # requests in the running generation batch
    waiting: int = 0  # requests queued for a slot or an encoder batch
    kv_cache_bytes: int = 0
    kv_cache_budget_bytes: int = 0
    adapters_resident: int = 0
    decode_forwards: int = 0  # batched decoding passes
    decode_rows: int = 0  # sequences they carried
    encode_forwards: int = 0  # embeddings and classification passes
    encode_rows: int = 0  # inputs they carried
    adapter_loads: int = 0
    adapter_evictions: int = 0


@dataclass(frozen=True)
class LoadConfig:
    """Where and how a backend places the bases it loads (from the serving settings)."""

    device: str = "cpu"  # "cpu", "cuda", "cuda:1", or "auto" (a GPU when there is one)
    dtype: str = "auto"  # "auto" (see bases.resolve_dtype), "float32", "float16", "bfloat16"
    max_adapters: int = 16  # adapters resident on one base; the least recent is evicted
    max_batch: int = 32  # sequences decoding together on one base (continuous batching)
    kv_cache_mb: int = 2048  # KV cache one base's running batch may take
    prefill_chunk: int = 512  # prompt tokens prefilled per scheduler turn
    encode_batch: int = 64  # inputs per embeddings/classification forward pass
    batch_wait_ms: float = 2.0  # how long an encoder batch waits for more requests

    def __post_init__(self) -> None:
        problems = []
        for name in ("max_batch", "kv_cache_mb", "prefill_chunk", "encode_batch"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.batch_wait_ms <= 1000:
            problems.append(f"batch_wait_ms must be within 0..1000, got {self.batch_wait_ms}")
        if self.dtype not in ("auto", *DTYPES):
            problems.append(f"dtype must be 'auto' or one of {DTYPES}, got {self.dtype!r}")
        if not self.device:
            problems.append("device must name a device ('cpu', 'cuda', 'cuda:1' or 'auto')")
        if self.max_adapters < 1:
            problems.append(f"max_adapters_per_base must be at least 1, got {self.max_adapters}")
        if problems:
            raise InvalidRequestError(
                "The serving settings are invalid: " + "; ".join(problems) + "."
            )


class Tokenizer(Protocol):
    """Text to token ids and back, for one model and adapter (safe to call from any thread)."""

    def encode(self, text: str, *, special: bool) -> list[int]:
        """Token ids of ``text``; ``special`` adds the model's bos/cls/sep tokens."""
        ...

    def encode_pair(self, first: str, second: str) -> tuple[list[int], list[int] | None]:
        """Token ids of a text pair as a cross-encoder reads it (``[CLS] a [SEP] b [SEP]``),
        and its token type ids (segment 0, then 1), None for models that have none."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``, special tokens skipped and spaces left as they are."""
        ...

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The prompt for ``messages`` under the model's own chat template."""
        ...


class LoadedBase(Protocol):
    """One base model a backend holds: weights, tokenizers, adapters and a scheduler."""

    spec: BaseSpec
    max_positions: int | None  # the model's own position limit, if it has one
    labels: tuple[str, ...]  # a classifier's class names in id order (may be LABEL_i)

    def tokenizer(self, adapter: AdapterRequest | None) -> Tokenizer:
        """The tokenizer requests with ``adapter`` use (its own, when it ships one)."""
        ...

    def stop_token_ids(self, adapter: AdapterRequest | None) -> frozenset[int]:
        """Token ids that end an answer: the model's and tokenizer's eos, and turn ends."""
        ...

    def add_adapter(self, adapter: AdapterRequest) -> None:
        """Load ``adapter`` now (if it is not resident), so a broken one fails before a stream."""
        ...

    def remove_adapter(self, name: str) -> bool:
        """Free an adapter's weights; False when it was not resident."""
        ...

    def has_adapter(self, name: str) -> bool:
        """Whether adapter ``name`` is resident now."""
        ...

    def generate(self, request: GenerationRequest) -> Iterator[GenerationStep]:
        """Schedule ``request`` and stream its steps; closing the stream aborts it."""
        ...

    def stats(self) -> BaseStats:
        """The schedulers' state and counters now (cheap: read when metrics are scraped)."""
        ...

    def embed(
        self, batch: list[list[int]], adapter: AdapterRequest | None, tenant: str | None = None
    ) -> list[list[float]]:
        """Mean-pooled, L2-normalised last hidden states, one vector per input.

        ``tenant`` says whose request it is, so batches take turns between tenants."""
        ...

    def classify(
        self,
        batch: list[list[int]],
        adapter: AdapterRequest | None,
        tenant: str | None = None,
        token_types: list[list[int]] | None = None,
    ) -> list[list[float]]:
        """Class probabilities (softmax; a single-logit head's sigmoid), one row per input, in
        label-id order; ``token_types`` (a text pair's segments) per input where given."""
        ...

    def explain(
        self, batch: list[list[int]], adapter: AdapterRequest | None, targets: list[int]
    ) -> list[Attribution]:
        """Per-token attributions of each input to the probability of its target class."""
        ...


class ServingBackend(Protocol):
    """What a registered ``serving_backend`` provides to ``Engine``."""

    def load(self, spec: BaseSpec, config: LoadConfig) -> LoadedBase:
        """Load the base weights ``spec`` names, placed as ``config`` says."""
        ...
