"""Checkpoint folders: listing, pruning and refusing what is not a checkpoint."""

from __future__ import annotations

import pytest

from tailorml.errors import InvalidRequestError
from tailorml.train.checkpoints import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
)


def test_list_and_prune_by_step_number(tmp_path):
    for step in (5, 100, 20, 10):
        (tmp_path / f"step-{step}").mkdir()
    (tmp_path / ".tmp-step-200-1-ab").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step-5",
        "step-10",
        "step-20",
        "step-100",
    ]
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-20", "step-100"]


def test_loading_a_folder_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(InvalidRequestError, match="not a checkpoint"):
        load_checkpoint(tmp_path)


def test_latest_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for step in (9, 10):
        (tmp_path / "checkpoints" / f"step-{step}").mkdir(parents=True)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-10"
