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
