"""How one request picks each next token from the model's scores.

Both schedulers (the continuous batch and the one-request-at-a-time loop)
hand each row's last-position logits to that request's ``TokenPicker``, so
sampling means the same on both paths. In order:

1. presence and frequency penalties (OpenAI's definition: subtract
   ``frequency_penalty * count + presence_penalty * (count > 0)`` from the
   score of every token already generated in this answer);
2. the grammar's mask (``response_format``), which leaves only tokens that
   continue a valid document;
3. log-probabilities, when asked for, of these scores (before temperature,
   as vLLM and OpenAI report them);
4. greedy argmax at temperature 0, else temperature and top-p (transformers'
   own logits warpers, so they mean what they mean in ``generate``) and a
   draw from the request's private RNG, so a seeded answer does not depend
   on who else is in the batch.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tailorml.serve.backend import GenerationStep, SamplingParams, TokenLogprob
from tailorml.serve.grammar import Matcher


class TokenPicker:
    """Picks one request's tokens, one step at a time (used by one thread at a time)."""

    def __init__(self, params: SamplingParams, device: str, matcher: Matcher | None = None) -> None:
        import torch
        from transformers.generation.logits_process import (
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        self.params = params
        self.matcher = matcher
        self.last_logprob: TokenLogprob | None = None
        self._counts: Counter[int] = Counter()
        self._penalised = bool(params.presence_penalty or params.frequency_penalty)
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
        """Whether the next token is the plain argmax of the scores (a batch takes it at once)."""
        return (
            self.rng is None
            and not self._penalised
            and self.matcher is None
            and self.params.logprobs is None
        )

    @property
    def done(self) -> bool:
        """The grammar is complete: nothing may follow the last token."""
        return self.matcher is not None and self.matcher.done

    def step(self, token: int, generated: int) -> GenerationStep:
        """What the request gained with ``token``, its ``generated``-th, and whether it ended
        (a stop token, a complete grammar, or ``max_tokens``)."""
        params = self.params
        logprobs = (self.last_logprob,) if self.last_logprob is not None else ()
        if token in params.stop_token_ids:
            return GenerationStep((token,), "stop", stop_token_id=token, logprobs=logprobs)
        if self.done:  # the grammar's document is complete: nothing may follow
            return GenerationStep((token,), "stop", logprobs=logprobs)
        if generated >= params.max_tokens:
            return GenerationStep((token,), "length", logprobs=logprobs)
        return GenerationStep((token,), None, logprobs=logprobs)

    def pick(self, scores: Any) -> int:
        """The next token from ``scores`` (logits of shape ``[1, vocab]``, float32)."""
        import torch

        params = self.params
        if self._penalised or self.matcher is not None:
            scores = scores.clone()
        if self._penalised and self._counts:
            ids = torch.tensor(list(self._counts), device=scores.device)
            counts = torch.tensor(list(self._counts.values()), device=scores.device)
            scores[0, ids] -= params.frequency_penalty * counts + params.presence_penalty
        if self.matcher is not None:
            self.matcher.mask(scores)
        if self.rng is None:
            token = int(scores.argmax(dim=-1).item())
        else:
            warped = scores
            for warp in self.warpers:
                warped = warp(None, warped)
            probs = torch.softmax(warped, dim=-1)
            token = int(torch.multinomial(probs, 1, generator=self.rng).item())
        if params.logprobs is not None:
            self.last_logprob = _logprob(scores, token, params.logprobs)
        if self.matcher is not None:
            self.matcher.consume(token)
        if self._penalised:
            self._counts[token] += 1
        return token


def _logprob(scores: Any, token: int, k: int) -> TokenLogprob:
    import torch

    logprobs = torch.log_softmax(scores[0], dim=-1)
    top: tuple[tuple[int, float], ...] = ()
    if k:
        values, ids = torch.topk(logprobs, k)
        # Tokens a grammar forbids have -inf: they are no alternative (and not JSON).
        top = tuple((i, v) for i, v in zip(ids.tolist(), values.tolist(), strict=True)
                    if v != float("-inf"))  # fmt: skip
    return TokenLogprob(token, float(logprobs[token]), top)
