"""Run shards in local processes (the default executor).

Workers are *spawned*, not forked: a fork of a process that already holds
torch's or tokenizers' threads can deadlock, and spawn gives every shard a
clean interpreter. As with any spawn-based pool, a script that calls it
with ``workers > 1`` needs the ``if __name__ == "__main__":`` guard (the
``tailor`` command has it). With ``workers=1`` the tasks run in this
process, which is what a debugger or a small job wants.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import TypeVar

from tailorml.executors.base import ShardResults
from tailorml.registry import register

T = TypeVar("T")
R = TypeVar("R")


@register("executor", "local")
class LocalExecutor:
    """Runs tasks over ``workers`` local processes; every task runs even if another fails."""

    def __init__(self, workers: int = 2):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def map(
        self,
        fn: Callable[[T], R],
        tasks: list[T],
        on_done: Callable[[int, R], None] | None = None,
        names: list[str] | None = None,
    ) -> list[R]:
        shards = ShardResults(names or [str(i) for i in range(len(tasks))], on_done)
        if self.workers == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                shards.collect(i, lambda task=task: fn(task))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(self.workers, len(tasks)), mp_context=context) as pool:
                futures: dict[Future[R], int] = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
                for fut in as_completed(futures):
                    shards.collect(futures[fut], fut.result)
        return shards.ordered()
