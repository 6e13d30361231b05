"""Hyperparameters of a fine-tuning job: validate explicit values, pick "auto" ones.

The "auto" rules, chosen for small tenant data sets on modest hardware:

- ``n_epochs``: 3, like OpenAI's default; more for small sets so the model
  sees at least ``MIN_EXAMPLES_SEEN`` examples in total (capped at
  ``MAX_AUTO_EPOCHS``), fewer for large ones so a run does not go past
  ``MAX_EXAMPLES_SEEN`` (at least one epoch).
- ``batch_size``: the task's default (``TrainTask.default_batch_size``: 16 for
  classification, which has short inputs; 8 for chat and completion; 4 pairs, 8
  sequences, for preference), halved
  until an epoch has at least ``MIN_STEPS_PER_EPOCH`` steps, and doubled for
  sets over ``LARGE_SET`` records to keep the step count sensible.
- ``learning_rate_multiplier``: 1.0, applied to the task's base rate for the
  method (``TrainTask.base_learning_rates``): LoRA 2e-4, full fine-tune of an
  encoder 5e-5, full fine-tune of a decoder 2e-5 (a decoder forgets faster); DPO 5e-5 with
  LoRA and 1e-6 full, as it only nudges a model that already writes well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from tailorml.errors import InvalidRequestError
from tailorml.train.tasks import load_task

Auto = Literal["auto"]

MIN_EXAMPLES_SEEN = 100
MAX_EXAMPLES_SEEN = 25_000
MAX_AUTO_EPOCHS = 10
MIN_STEPS_PER_EPOCH = 10
LARGE_SET = 20_000


LIMITS = {"n_epochs": (1, 50), "batch_size": (1, 256)}


@dataclass(frozen=True)
class Hyperparameters:
    """Concrete values for one run."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float


def base_learning_rate(task: str, method: str) -> float:
    """The learning rate a multiplier of 1.0 stands for."""
    return load_task(task).base_learning_rates[method]


def auto_epochs(n_train: int) -> int:
    """The "auto" epoch count for ``n_train`` records (see the module docstring)."""
    if n_train * 3 < MIN_EXAMPLES_SEEN:
        return min(MAX_AUTO_EPOCHS, math.ceil(MIN_EXAMPLES_SEEN / max(n_train, 1)))
    if n_train * 3 > MAX_EXAMPLES_SEEN:
        return max(1, MAX_EXAMPLES_SEEN // n_train)
    return 3


def auto_batch_size(task: str, n_train: int) -> int:
    """The "auto" batch size for ``task`` and ``n_train`` records (see the module docstring)."""
    size = load_task(task).default_batch_size
    if n_train > LARGE_SET:
        return size * 2
    while size > 1 and n_train / size < MIN_STEPS_PER_EPOCH:
        size //= 2
    return size


def _integer(name: str, value: object, problems: list[str]) -> int | None:
    low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(
            f'hyperparameters.{name} must be "auto" or an integer from {low} to {high}, got {value!r}'
        )
        return None
    return value


def resolve_hyperparameters(
    *,
    task: str,
    method: str,
    n_train: int,
    n_epochs: int | Auto = "auto",
    batch_size: int | Auto = "auto",
    learning_rate_multiplier: float | Auto = "auto",
) -> Hyperparameters:
    """Validate explicit values and fill in "auto" ones; report every bad value at once."""
    problems: list[str] = []
    params: list[str] = []
    if method not in ("full", "lora"):
        problems.append(f'method must be "full" or "lora", got {method!r}')
        params.append("method")
    if n_train < 1:
        problems.append("the training file holds no records; upload at least one")
        params.append("training_file")
    epochs = (
        auto_epochs(max(n_train, 1))
        if n_epochs == "auto"
        else _integer("n_epochs", n_epochs, problems)
    )
    if epochs is None:
        params.append("hyperparameters.n_epochs")
    batch = (
        auto_batch_size(task, max(n_train, 1))
        if batch_size == "auto"
        else _integer("batch_size", batch_size, problems)
    )
    if batch is None:
        params.append("hyperparameters.batch_size")
    multiplier: float | None = 1.0
    if learning_rate_multiplier != "auto":
        value = learning_rate_multiplier
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0 or value > 100:
            problems.append(
                'hyperparameters.learning_rate_multiplier must be "auto" or a number above 0 '
                f"(at most 100), got {value!r}"
            )
            params.append("hyperparameters.learning_rate_multiplier")
            multiplier = None
        else:
            multiplier = float(value)
    if problems:
        raise InvalidRequestError("; ".join(problems) + ".", param=params[0])
    assert epochs is not None and batch is not None and multiplier is not None
    return Hyperparameters(
        n_epochs=epochs,
        batch_size=batch,
        learning_rate_multiplier=multiplier,
        learning_rate=base_learning_rate(task, method) * multiplier,
    )
