"""Run shards in local processes (the default executor).

Workers are *spawned*, not forked: a fork of a process that already holds
torch's or tokenizers' threads can deadlock, and spawn gives every shard a
clean interpreter. As with any spawn-based pool, a script that calls it
with ``workers > 1`` needs the ``if __name__ == "__main__":`` guard (the
``tailor`` command has it). With ``workers=1`` the tasks run in this
process, which is what a debugger or a small job wants.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import TypeVar

from tailorml.executors.base import ShardFailedError, describe_failure
from tailorml.registry import register

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


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
        names = names or [str(i) for i in range(len(tasks))]
        results: dict[int, R] = {}
        failures: dict[str, str] = {}
        if self.workers == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                try:
                    results[i] = fn(task)
                except Exception as exc:  # noqa: BLE001 - shard boundary: log, then re-raise all
                    log.exception("shard %s failed", names[i])
                    failures[names[i]] = describe_failure(exc)
                    continue
                if on_done:
                    on_done(i, results[i])
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(self.workers, len(tasks)), mp_context=context) as pool:
                futures: dict[Future[R], int] = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except Exception as exc:  # noqa: BLE001 - shard boundary: log, then re-raise all
                        log.error("shard %s failed: %s", names[i], describe_failure(exc))
                        failures[names[i]] = describe_failure(exc)
                        continue
                    if on_done:
                        on_done(i, results[i])
        if failures:
            raise ShardFailedError(failures)
        return [results[i] for i in range(len(tasks))]
