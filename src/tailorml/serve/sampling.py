"""How one request picks each next token from the model's scores.

Both schedulers (the continuous batch and the one-request-at-a-time loop)
hand each row's last-position logits to that request's ``TokenPicker``, so
sampling means the same on both paths. Temperature and top-p are
transformers' own logits warpers, so they mean exactly what they mean in
``generate``; each request has a private RNG, so a seeded answer does not
depend on who else is in the batch.
"""

from __future__ import annotations

from typing import Any

from tailorml.serve.backend import SamplingParams


class TokenPicker:
    """Picks one request's tokens, one step at a time (used by one thread at a time)."""

    def __init__(self, params: SamplingParams, device: str) -> None:
        import torch
        from transformers.generation.logits_process import (
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        self.params = params
        self.warpers: list[Any] = []
        self.rng: Any = None
        if params.temperature == 0:
            return  # greedy: argmax, no RNG
        if params.temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(params.temperature))
        if params.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(params.top_p))
        self.rng = torch.Generator(device=device)
        if params.seed is None:
            self.rng.seed()
        else:
            self.rng.manual_seed(params.seed)

    @property
    def greedy(self) -> bool:
        """Whether the next token is the argmax of the raw scores (a batch takes it at once)."""
        return self.rng is None

    def pick(self, scores: Any) -> int:
        """The next token from ``scores`` (logits of shape ``[1, vocab]``, float32)."""
        import torch

        if self.rng is None:
            return int(scores.argmax(dim=-1).item())
        for warp in self.warpers:
            scores = warp(None, scores)
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.rng).item())
