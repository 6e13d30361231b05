"""The PyTorch backend's scheduler: which request's forward pass runs next on one base.

Every forward pass on a base goes through its ``StepScheduler``, with the
request's adapter switched on first, one at a time. A generation is a
hand-driven decode loop over the model's KV cache instead of
``model.generate``, one step per scheduler turn, so concurrent requests on
one base interleave token by token (each re-selecting its own adapter), a
slow reader of a stream never holds the model, and a client that goes away
simply stops pulling steps. Stop token ids are checked here and only here.

Decoders whose attention fits the slot KV cache generate through
``batching.BatchScheduler`` instead (many requests in one forward pass),
which takes this scheduler's lock for each step; this loop serves the
other decoders, and is the reference the batched path is tested against.
Both pick tokens with ``sampling.TokenPicker``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from tailorml.serve.backend import GenerationRequest, GenerationStep
from tailorml.serve.bases import AdapterRequest
from tailorml.serve.grammar import Matcher
from tailorml.serve.loading import Weights
from tailorml.serve.sampling import TokenPicker


class StepScheduler:
    """Runs the forward passes of every request on one base, one at a time (thread-safe)."""

    def __init__(self, weights: Weights) -> None:
        self.weights = weights
        self.lock = threading.Lock()

    def run(self, adapter: AdapterRequest | None, **inputs: Any) -> Any:
        """One forward pass on ``inputs`` with ``adapter`` switched on, alone on the model."""
        import torch

        with self.lock:
            self.weights.activate(adapter)
            with torch.inference_mode():
                return self.weights.model(**inputs)

    def prepare(self, adapter: AdapterRequest) -> None:
        """Load ``adapter`` now, so that a broken one fails the request before a stream starts."""
        with self.lock:
            self.weights.activate(adapter)

    def remove(self, name: str) -> bool:
        with self.lock:
            return self.weights.drop_adapter(name)

    def generate(
        self, request: GenerationRequest, matcher: Matcher | None = None
    ) -> Iterator[GenerationStep]:
        """The steps of ``request``: one token each, the last with its finish reason."""
        import torch

        params, weights = request.params, self.weights
        picker = TokenPicker(params, weights.device, matcher)
        extra = {"logits_to_keep": 1} if weights.accepts_logits_to_keep else {}
        ids = torch.tensor([list(request.prompt_ids)], device=weights.device)
        cache = None
        for n in range(1, params.max_tokens + 1):
            out = self.run(request.adapter, input_ids=ids, cache=cache, use_cache=True, **extra)
            cache = out.cache
            token = picker.pick(out.logits[:, -1, :].float())
            step = picker.step(token, n)
            yield step
            if step.finish_reason is not None:
                return
            ids = torch.tensor([[token]], device=weights.device)
