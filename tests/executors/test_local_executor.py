"""LocalExecutor: results in task order, every task runs, failures named together, cancel."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tailorml import registry
from tailorml.errors import JobCancelledError
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


def sleep_after_writing_pid(folder: str) -> int:
    """A shard that never ends on its own: it says which process it is, then sleeps."""
    path = Path(folder) / f"{os.getpid()}.pid"
    path.write_text("")
    time.sleep(60)
    return 0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_should_stop_ends_running_processes_quickly(tmp_path: Path) -> None:
    asked: list[float] = []

    def should_stop() -> bool:
        # Stop once both workers are inside their task, so the test sees real running shards.
        if len(list(tmp_path.glob("*.pid"))) == 2 and not asked:
            asked.append(time.monotonic())
        return bool(asked)

    with pytest.raises(JobCancelledError, match="cancelled"):
        LocalExecutor(2).map(sleep_after_writing_pid, [str(tmp_path)] * 3, should_stop=should_stop)
    assert time.monotonic() - asked[0] < 2
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert len(pids) == 2 and all(_gone(pid) for pid in pids)


def test_inline_tasks_stop_between_tasks() -> None:
    ran: list[int] = []

    def record(n: int) -> int:
        ran.append(n)
        return n

    with pytest.raises(JobCancelledError):
        LocalExecutor(1).map(record, [1, 2, 3], should_stop=lambda: len(ran) >= 2)
    assert ran == [1, 2]


def test_a_task_that_raises_cancelled_stops_the_map_instead_of_failing_a_shard() -> None:
    def cancel(n: int) -> int:
        raise JobCancelledError("stopped inside the task")

    with pytest.raises(JobCancelledError, match="inside the task"):
        LocalExecutor(1).map(cancel, [1, 2])
