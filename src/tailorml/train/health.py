"""The training health guard: which steps are faults, and what a run does about them.

Every step's loss and gradient norm are checked before the optimizer applies the update:

- a loss or gradient norm that is NaN or infinite is a fault (``nan``);
- a gradient norm more than ``EXPLOSION_FACTOR`` times the median of the last
  ``WINDOW`` steps' together with a loss more than ``SPIKE_FACTOR`` times their median loss
  (once ``WARMUP`` steps have been seen) is a fault (``explosion``). Both, and by far:
  gradients are clipped anyway, and a model that fits its training data well sees norms
  vary a hundredfold from batch to batch (a hard batch after easy ones) with nothing wrong;
- norms that stay below ``VANISHING_NORM`` for ``WINDOW`` steps in a row are reported once
  as a warning (``vanishing``): nothing is skipped, but the user learns the run has stalled.

On a fault the update is not applied (so the weights are still those of the last good
step), the learning rate is lowered by ``LR_BACKOFF``, the batch is skipped and its records
are quarantined (listed in an event and in the result). If the weights are found non-finite
anyway, the run rolls back to its last checkpoint. A run with more than ``MAX_FAULTS``
faults stops with an error: its data or settings need a look, not more retries.

Why by hand: accelerate, transformers and torchtune skip non-finite steps only under fp16
loss scaling; none quarantines records or backs the learning rate off.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from tailorml.errors import InvalidRequestError

EXPLOSION_FACTOR = 1000.0
SPIKE_FACTOR = 10.0
WINDOW = 20
WARMUP = 10
VANISHING_NORM = 1e-8
LR_BACKOFF = 0.5
MAX_FAULTS = 5


@dataclass(frozen=True)
class Fault:
    kind: str  # "nan" or "explosion"
    detail: str


class GradientWatch:
    """Decides, step by step, whether a loss and gradient norm are a fault."""

    def __init__(self) -> None:
        self.norms: deque[float] = deque(maxlen=WINDOW)
        self.losses: deque[float] = deque(maxlen=WINDOW)
        self.small = 0
        self.warned_vanishing = False

    def check(self, loss: float, norm: float) -> Fault | None:
        if not math.isfinite(loss) or not math.isfinite(norm):
            return Fault("nan", f"loss {loss}, gradient norm {norm}")
        if len(self.norms) >= WARMUP:
            median = statistics.median(self.norms)
            usual_loss = statistics.median(self.losses)
            if (
                median > 0
                and norm > EXPLOSION_FACTOR * median
                and loss > SPIKE_FACTOR * max(usual_loss, 1e-6)
            ):
                return Fault(
                    "explosion",
                    f"gradient norm {norm:.3g} and loss {loss:.3g}, against recent medians of "
                    f"{median:.3g} and {usual_loss:.3g}",
                )
        self.norms.append(norm)
        self.losses.append(loss)
        self.small = self.small + 1 if norm < VANISHING_NORM else 0
        return None

    def vanishing(self) -> bool:
        """True once, when the norms have stayed near zero for a whole window."""
        if self.small >= WINDOW and not self.warned_vanishing:
            self.warned_vanishing = True
            return True
        return False


def recover(recipe: Any, state: Any, fault: Fault, examples: list[Any]) -> None:
    """What a run does on a fault (``Recipe.on_fault``): count it and quarantine the batch's
    records, stop after ``MAX_FAULTS``, lower the learning rate by ``LR_BACKOFF``, and roll
    back to the newest checkpoint when the weights are no longer finite."""
    records = sorted({e.record for e in examples})
    state.quarantined = sorted(set(state.quarantined) | set(records))
    state.faults.append({"step": state.step + 1, "kind": fault.kind, "records": records})
    if len(state.faults) > MAX_FAULTS:
        raise InvalidRequestError(
            f"Training diverged: {len(state.faults)} faulty steps ({fault.detail} at step "
            f"{state.step + 1}). Lower the learning rate or check the quarantined records "
            f"{state.quarantined[:20]}.",
            param="hyperparameters.learning_rate_multiplier",
        )
    scheduler = recipe.scheduler
    scheduler.base_lrs = [lr * LR_BACKOFF for lr in scheduler.base_lrs]
    for group, lr in zip(recipe.optimizer.param_groups, scheduler.get_last_lr(), strict=True):
        group["lr"] = lr * LR_BACKOFF
    rolled = ""
    if not all(bool(p.detach().isfinite().all()) for p in recipe.params):
        rolled = " " + roll_back(recipe, state)
    recipe.say(
        f"Step {state.step + 1} skipped ({fault.kind}: {fault.detail}); learning rate "
        f"lowered to {LR_BACKOFF:g}x; {len(records)} record(s) quarantined "
        f"(training file lines {', '.join(str(r + 1) for r in records[:10])})." + rolled,
        "warning",
    )


def roll_back(recipe: Any, state: Any) -> str:
    """Weights, optimizer and scheduler back to the newest checkpoint (keeping the lowered
    learning rate); without one, the run cannot recover and stops."""
    from safetensors.torch import load_file

    from tailorml.train.checkpoints import latest_checkpoint, load_checkpoint
    from tailorml.train.lora import ADAPTER_WEIGHTS, load_adapter_weights

    newest = latest_checkpoint(recipe.out_dir)
    if newest is None:
        raise InvalidRequestError(
            f"Training diverged at step {state.step + 1} (the weights are no longer finite) "
            "before any checkpoint was written; lower the learning rate.",
            param="hyperparameters.learning_rate_multiplier",
        )
    model = recipe.model
    if (newest / ADAPTER_WEIGHTS).is_file():
        load_adapter_weights(model, newest)
    else:
        model.load_state_dict(load_file(newest / "model.safetensors"), strict=False)
    _, optimizer_state, scheduler_state, _ = load_checkpoint(newest)
    recipe.optimizer.load_state_dict(optimizer_state)
    base_lrs = list(recipe.scheduler.base_lrs)
    recipe.scheduler.load_state_dict(scheduler_state)
    recipe.scheduler.base_lrs = base_lrs
    return f"The weights were not finite: rolled back to {newest.name}."
