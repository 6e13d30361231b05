"""Why a classifier answered as it did: per-token integrated gradients (captum).

Integrated gradients (Sundararajan et al., 2017) sum the gradient of the
predicted class's probability along a straight path from a baseline input
to the real one, in the embedding space; a token's attribution is its
share of the change. The baseline keeps the special tokens ([CLS],
[SEP]) and replaces every other token by padding, so the attributions say
what the words contributed. Their sum equals ``p(input) - p(baseline)``
up to the integration error, which is returned as the convergence delta
(captum's ``return_convergence_delta``): a large delta means more steps
are needed, and the caller can see it.

Gradients need the weights with the adapter of the request active, so the
backend runs this under its model lock (``TorchBase.explain``); the
integration steps go through the model as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IG_STEPS = 32  # integration steps; the convergence delta says whether they were enough
MAX_EXPLAINED_INPUTS = 16  # per request: each costs IG_STEPS forward and backward passes


@dataclass(frozen=True)
class Attribution:
    """Each token's share of the predicted probability, and the integration error."""

    tokens: list[str]  # the tokenizer's pieces, special tokens included
    scores: list[float]
    convergence_delta: float
    target: int
    baseline_probability: float


def integrated_gradients(
    model: Any,
    ids: list[int],
    target: int,
    *,
    pad_id: int,
    special_ids: frozenset[int],
    tokens: list[str],
    steps: int = IG_STEPS,
) -> Attribution:
    """Attributions of ``ids`` (one input) to the probability of class ``target``."""
    import torch
    from captum.attr import LayerIntegratedGradients

    device = next(model.parameters()).device
    inputs = torch.tensor([ids], device=device)
    baseline = torch.tensor([[i if i in special_ids else pad_id for i in ids]], device=device)
    mask = torch.ones_like(inputs)

    def probabilities(input_ids: Any, attention_mask: Any) -> Any:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits.float(), dim=-1)

    explainer = LayerIntegratedGradients(probabilities, model.get_input_embeddings())
    with torch.enable_grad():
        attributions, delta = explainer.attribute(
            inputs,
            baselines=baseline,
            target=target,
            additional_forward_args=(mask,),
            n_steps=steps,
            internal_batch_size=steps,
            return_convergence_delta=True,
        )
        with torch.no_grad():
            at_baseline = probabilities(baseline, mask)[0, target]
    return Attribution(
        tokens=tokens,
        scores=attributions.sum(dim=-1)[0].detach().float().cpu().tolist(),
        convergence_delta=float(delta[0]),
        target=target,
        baseline_probability=float(at_baseline),
    )
