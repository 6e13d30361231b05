"""The PyTorch serving backend: plain transformers models, one request at a time per model.

Generation is a hand-driven decode loop over the model's KV cache instead
of ``model.generate``: the loop takes the model's lock for one forward pass
at a time, so a slow reader of a stream never holds the model, concurrent
requests on one base interleave token by token (each re-selecting its own
adapter), and a client that goes away simply stops pulling tokens. Sampling
uses transformers' own logits warpers so temperature and top-p mean
exactly what they mean in ``generate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tailorml.registry import register
from tailorml.serve.backend import SamplingParams
from tailorml.serve.loading import BaseSpec, LoadedModel, load_base

BATCH_SIZE = 16


@register("serving_backend", "torch")
class TorchBackend:
    """Runs transformers/peft models with PyTorch on one device (fp32)."""

    def load(self, spec: BaseSpec, device: str, max_adapters: int) -> LoadedModel:
        return load_base(spec, device, max_adapters)

    def generate(
        self,
        model: LoadedModel,
        adapter: str | None,
        prompt_ids: list[int],
        params: SamplingParams,
    ) -> Iterator[int]:
        import torch
        from transformers.generation.logits_process import (
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        warpers: list[Any] = []
        if params.temperature > 0 and params.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(params.temperature))
        if params.temperature > 0 and params.top_p < 1.0:
            warpers.append(TopPLogitsWarper(params.top_p))
        # A private generator: the global RNG is shared by every thread, so
        # a seeded request would not be reproducible under concurrency.
        rng = torch.Generator(device=model.device)
        if params.seed is None:
            rng.seed()
        else:
            rng.manual_seed(params.seed)
        extra = {"logits_to_keep": 1} if model.accepts_logits_to_keep else {}
        ids = torch.tensor([prompt_ids], device=model.device)
        cache = None
        for _ in range(params.max_tokens):
            with model.lock:
                model.activate(adapter)
                with torch.inference_mode():
                    out = model.model(input_ids=ids, cache=cache, use_cache=True, **extra)
            cache = out.cache
            scores = out.logits[:, -1, :].float()
            if params.temperature == 0:
                token = int(scores.argmax(dim=-1).item())
            else:
                for warp in warpers:
                    scores = warp(ids, scores)
                probs = torch.softmax(scores, dim=-1)
                token = int(torch.multinomial(probs, 1, generator=rng).item())
            yield token
            if token in params.stop_token_ids:
                return
            ids = torch.tensor([[token]], device=model.device)

    def _forward_batches(
        self, model: LoadedModel, adapter: str | None, batch: list[list[int]], *, hidden: bool
    ) -> list[list[float]]:
        import torch

        pad = getattr(model.model.config, "pad_token_id", None) or 0
        # Only hidden states are wanted; for a causal LM skip all but one
        # position of the vocabulary projection.
        extra = {"logits_to_keep": 1} if hidden and model.accepts_logits_to_keep else {}
        # Sorting by length keeps padding (wasted compute) small in each chunk.
        order = sorted(range(len(batch)), key=lambda i: len(batch[i]))
        results: list[list[float]] = [[] for _ in batch]
        for start in range(0, len(order), BATCH_SIZE):
            chunk = order[start : start + BATCH_SIZE]
            width = max(len(batch[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, : len(batch[i])] = torch.tensor(batch[i])
                mask[row, : len(batch[i])] = 1
            ids, mask = ids.to(model.device), mask.to(model.device)
            with model.lock:
                model.activate(adapter)
                with torch.inference_mode():
                    out = model.model(
                        input_ids=ids, attention_mask=mask, output_hidden_states=hidden, **extra
                    )
            with torch.inference_mode():
                if hidden:
                    states = out.hidden_states[-1].float()
                    weights = mask.unsqueeze(-1).to(states.dtype)
                    pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
                    rows = torch.nn.functional.normalize(pooled, p=2, dim=-1)
                else:
                    rows = torch.softmax(out.logits.float(), dim=-1)
            for row, i in enumerate(chunk):
                results[i] = rows[row].cpu().tolist()
        return results

    def embed(
        self, model: LoadedModel, adapter: str | None, batch: list[list[int]]
    ) -> list[list[float]]:
        return self._forward_batches(model, adapter, batch, hidden=True)

    def classify(
        self, model: LoadedModel, adapter: str | None, batch: list[list[int]]
    ) -> list[list[float]]:
        return self._forward_batches(model, adapter, batch, hidden=False)
