"""The order in which a run sees its examples: seeded, bucketed by length.

Each epoch shuffles the examples with a generator seeded by ``(seed,
epoch)``, sorts them by length within windows of ``BUCKET_BATCHES``
batches (so a batch pads to similar lengths, which saves most of the
padding compute on CPU) and shuffles the batches. Because an epoch's order
depends only on the seed and the epoch number, a resumed run recomputes it
and needs only its position (epoch, batch) from the checkpoint.
"""

from __future__ import annotations

import numpy as np

BUCKET_BATCHES = 50


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Example indices of every batch of ``epoch``, in the order they are trained."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = batch_size * BUCKET_BATCHES
    sorted_order: list[int] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        # A stable sort keeps the shuffled order among equal lengths.
        sorted_order.extend(sorted(chunk.tolist(), key=lambda i: lengths[i]))
    batches = [
        sorted_order[start : start + batch_size]
        for start in range(0, len(sorted_order), batch_size)
    ]
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """Batches in one epoch (the last one may be short)."""
    return -(-n_examples // batch_size)


def eval_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Validation batches: sorted by length, no shuffling (the order does not change a mean)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
