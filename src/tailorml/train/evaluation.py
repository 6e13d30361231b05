"""Validation during training: the mean loss (and accuracy) over held-out examples.

Batch losses are means over their own items (examples for a classifier,
trained tokens for a decoder), so they are weighted back by those counts:
the result is the mean over all items, whatever the batching. A task's further metrics
(``BatchScore.sums``, DPO's reward margin) are averaged over the same items.

Under several processes (``tailorml.train.distributed``) each rank scores every
``world``-th batch of the same batches one process would score, and the sums are gathered:
the figures are those of one process, up to the order of a float64 sum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tailorml.errors import JobCancelledError
from tailorml.train.batching import eval_batches
from tailorml.train.tasks import TrainExample, TrainTask

if TYPE_CHECKING:
    from tailorml.train.distributed import Ranks

EVAL_BATCH_FACTOR = 2  # no gradients are kept, so a batch can be larger


def evaluate(
    task: TrainTask,
    model: Any,
    examples: list[TrainExample],
    pad_id: int,
    batch_size: int,
    should_stop: Callable[[], bool] = lambda: False,
    collate: Callable[[list[Any], int], dict[str, Any]] | None = None,
    metrics: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    ranks: Ranks | None = None,
) -> dict[str, float | None]:
    """``{"valid_loss", "valid_accuracy"}``, both None without examples, accuracy None for SFT;
    and ``valid_<name>`` for each of the task's ``BatchScore.sums``.

    ``collate`` makes a batch (the task's padded one unless given: the loop passes its own,
    packed or not, placed on the run's device). ``metrics`` names more figures
    (``tailorml.eval.metrics``, over a classifier's predictions), each ``valid_<name>``.
    With ``ranks`` every rank calls this (and ``should_stop``, once per round of batches).
    """
    import torch

    if not examples:
        return {"valid_loss": None, "valid_accuracy": None, **{f"valid_{m}": None for m in metrics}}
    model.eval()
    total_loss, total_weight, correct, counted = 0.0, 0, 0, False
    predicted: list[int] = []
    targets: list[int] = []
    sums: dict[str, float] = {}
    batches = eval_batches([e.length for e in examples], batch_size * EVAL_BATCH_FACTOR)
    world, at = (ranks.world, ranks.rank) if ranks is not None else (1, 0)
    mine = batches[at::world]
    with torch.no_grad():
        for round_ in range(-(-len(batches) // world)):  # as many stop checks on every rank
            if should_stop():
                raise JobCancelledError("Training was cancelled during validation.")
            if round_ >= len(mine):
                continue
            batch = mine[round_]
            score = task.score(
                model, (collate or task.collate)([examples[i] for i in batch], pad_id)
            )
            if score.weight == 0:
                continue
            total_loss += float(score.loss) * score.weight
            total_weight += score.weight
            if score.correct is not None:
                correct += score.correct
                counted = True
            predicted += score.predicted or []
            targets += score.targets or []
            for name, value in score.sums.items():
                sums[name] = sums.get(name, 0.0) + value
    if ranks is not None and world > 1:
        parts = ranks.gather((total_loss, total_weight, correct, counted, sums, predicted, targets))
        total_loss, total_weight = sum(p[0] for p in parts), sum(p[1] for p in parts)
        correct, counted = sum(p[2] for p in parts), any(p[3] for p in parts)
        sums = {}
        for part in parts:
            for name, value in part[4].items():
                sums[name] = sums.get(name, 0.0) + value
        predicted = [p for part in parts for p in part[5]]
        targets = [t for part in parts for t in part[6]]
    if total_weight == 0:
        return {"valid_loss": None, "valid_accuracy": None, **{f"valid_{m}": None for m in metrics}}
    found: dict[str, float | None] = {
        "valid_loss": total_loss / total_weight,
        "valid_accuracy": correct / total_weight if counted else None,
        **{f"valid_{name}": value / total_weight for name, value in sums.items()},
    }
    if metrics:
        from tailorml.eval.metrics import step_metrics

        found.update(step_metrics(metrics, targets, predicted, list(labels or [])))
    return found
