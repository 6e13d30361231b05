"""The seeded, length-bucketed data order."""

from __future__ import annotations

import random

from tailorml.train.batching import epoch_batches, eval_batches, steps_per_epoch


def test_every_example_once_per_epoch_and_seeded():
    lengths = [random.Random(i).randint(5, 200) for i in range(103)]
    batches = epoch_batches(lengths, 8, seed=1, epoch=0)
    assert len(batches) == steps_per_epoch(103, 8) == 13
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert epoch_batches(lengths, 8, seed=1, epoch=0) == batches
    assert epoch_batches(lengths, 8, seed=1, epoch=1) != batches
    assert epoch_batches(lengths, 8, seed=2, epoch=0) != batches


def test_bucketing_cuts_padding():
    lengths = [random.Random(i).randint(5, 200) for i in range(400)]

    def padded(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    shuffled = list(range(400))
    random.Random(0).shuffle(shuffled)
    plain = [shuffled[i : i + 16] for i in range(0, 400, 16)]
    assert padded(epoch_batches(lengths, 16, seed=0, epoch=0)) < 0.7 * padded(plain)


def test_eval_batches_cover_everything():
    batches = eval_batches([3, 1, 2, 5, 4], 2)
    assert batches == [[1, 2], [0, 4], [3]]
