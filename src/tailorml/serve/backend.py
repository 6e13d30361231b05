"""The contract between the engine and a serving backend.

The engine owns everything a client sees: request checks, prompt
rendering, token counting, context limits, stop strings, streaming and the
LRU of loaded models. A backend owns only the weights and the arithmetic:
load a base, run the token loop of one request, pool hidden states, score
classes. Backends register as ``register("serving_backend", name)``; the
PyTorch one ("torch") is the default, and a later vLLM backend implements
the same methods with continuous batching behind ``generate``, which is
why it takes one request and returns an iterator rather than a finished
answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from tailorml.serve.loading import BaseSpec, LoadedModel


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token of one request."""

    max_tokens: int
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    seed: int | None = None
    stop_token_ids: frozenset[int] = frozenset()


class ServingBackend(Protocol):
    """What a registered ``serving_backend`` provides to ``Engine``."""

    def load(self, spec: BaseSpec, device: str, max_adapters: int) -> LoadedModel:
        """Load the base weights ``spec`` names."""
        ...

    def generate(
        self,
        model: LoadedModel,
        adapter: str | None,
        prompt_ids: list[int],
        params: SamplingParams,
    ) -> Iterator[int]:
        """Yield new token ids, up to ``max_tokens``, ending after any stop token."""
        ...

    def embed(
        self, model: LoadedModel, adapter: str | None, batch: list[list[int]]
    ) -> list[list[float]]:
        """Mean-pooled, L2-normalised last hidden states, one vector per input."""
        ...

    def classify(
        self, model: LoadedModel, adapter: str | None, batch: list[list[int]]
    ) -> list[list[float]]:
        """Class probabilities (softmax), one row per input, in label-id order."""
        ...
