"""LocalExecutor: results in task order, every task runs, failures named together."""

from __future__ import annotations

import pytest

from tailorml import registry
from tailorml.executors import ShardFailedError, get_executor
from tailorml.executors.local import LocalExecutor


def square_or_fail(n: int) -> int:
    if n == 3:
        raise ValueError("three is not allowed")
    return n * n


@pytest.mark.parametrize("workers", [1, 2])
def test_map_returns_results_in_order(workers: int) -> None:
    done: list[int] = []
    out = LocalExecutor(workers).map(
        square_or_fail, [0, 1, 2, 4], on_done=lambda i, r: done.append(i)
    )
    assert out == [0, 1, 4, 16] and sorted(done) == [0, 1, 2, 3]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_task_runs_and_failures_are_named(workers: int) -> None:
    done: list[int] = []
    with pytest.raises(ShardFailedError) as err:
        LocalExecutor(workers).map(square_or_fail, [1, 3, 5], on_done=lambda i, r: done.append(r),
                                   names=["a", "b", "c"])  # fmt: skip
    assert err.value.failures == {"b": "ValueError: three is not allowed"}
    assert sorted(done) == [1, 25]
    assert "run the same command again" in err.value.message


def test_executors_are_registered_by_name() -> None:
    assert isinstance(get_executor("local", workers=3), LocalExecutor)
    assert {"local", "ray"} <= set(registry.names("executor"))
