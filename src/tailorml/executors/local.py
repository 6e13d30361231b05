"""Run shards in local processes (the default executor).

Workers are *spawned*, not forked: a fork of a process that already holds
torch's or tokenizers' threads can deadlock, and spawn gives every shard a
clean interpreter. As with any spawn-based pool, a script that calls it
with ``workers > 1`` needs the ``if __name__ == "__main__":`` guard (the
``tailor`` command has it). With ``workers=1`` the tasks run in this
process, which is what a debugger or a small job wants.

Cancelling (``should_stop``) ends the worker processes outright: a shard
writes its files atomically and its marker last, so a killed shard leaves
only temporary files that the next run removes, and it reruns. A task that
runs in this process is asked between tasks; inside one, stopping is the
task's own business (the data runner's operators poll ``stop_requested``).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from tailorml.executors.base import POLL_SECONDS, ShardResults, StopCheck, raise_if_stopped
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
        should_stop: StopCheck | None = None,
    ) -> list[R]:
        shards = ShardResults(names or [str(i) for i in range(len(tasks))], on_done)
        if self.workers == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                raise_if_stopped(should_stop)
                shards.collect(i, lambda task=task: fn(task))
            return shards.ordered()
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(min(self.workers, len(tasks)), mp_context=context)
        try:
            futures: dict[Future[R], int] = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
            pending = set(futures)
            while pending:
                raise_if_stopped(should_stop)
                timeout = None if should_stop is None else POLL_SECONDS
                done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
                for fut in done:
                    shards.collect(futures[fut], fut.result)
        except BaseException:
            _terminate(pool)  # cancelled, or interrupted: no worker outlives the call
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return shards.ordered()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """End the pool's worker processes now and reap them, so none outlives the call."""
    terminate_workers = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate_workers is not None:
        terminate_workers()
        return
    # Before 3.14 the pool has no public way to end a running task: its process table it is.
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in workers:
        proc.terminate()
    for proc in workers:
        proc.join(timeout=5)
        if proc.is_alive():
            log.warning("worker %s ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.join()
