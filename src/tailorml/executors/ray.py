"""Run shards as Ray tasks, on a local Ray instance or a cluster.

The same shard function as the local executor runs as ``ray.remote`` tasks,
so results, markers and resuming behave identically. If Ray is already
initialised (a notebook, a test, a cluster job) it is used as is; otherwise
``ray.init(address)`` connects to ``address`` or starts a local instance.
Shards write their outputs straight to the output folder, which therefore
must be a path every Ray node sees (a shared filesystem) on a cluster, and
``tailorml`` must be importable on every node (installed, or on the
``PYTHONPATH`` of the Ray runtime environment).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tailorml.errors import ModelUnavailableError
from tailorml.executors.base import ShardFailedError, describe_failure
from tailorml.registry import register

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


@register("executor", "ray")
class RayExecutor:
    """Runs each task as a Ray task with ``num_cpus`` CPUs; ``workers`` caps tasks in flight."""

    def __init__(self, workers: int = 2, address: str | None = None, num_cpus: float = 1.0):
        self.workers = workers
        self.address = address
        self.num_cpus = num_cpus

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise ModelUnavailableError(
                "The ray executor needs Ray: `pip install ray`, or use --executor local."
            ) from exc
        if not ray.is_initialized():
            ray.init(address=self.address, num_cpus=None if self.address else self.workers)
        return ray

    def map(
        self,
        fn: Callable[[T], R],
        tasks: list[T],
        on_done: Callable[[int, R], None] | None = None,
        names: list[str] | None = None,
    ) -> list[R]:
        ray = self._ray()
        names = names or [str(i) for i in range(len(tasks))]
        remote = ray.remote(num_cpus=self.num_cpus, max_retries=0)(fn)
        queue = list(enumerate(tasks))
        running: dict[Any, int] = {}
        results: dict[int, R] = {}
        failures: dict[str, str] = {}
        while queue or running:
            while queue and len(running) < self.workers:
                i, task = queue.pop(0)
                running[remote.remote(task)] = i
            ready, _ = ray.wait(list(running), num_returns=1)
            i = running.pop(ready[0])
            try:
                results[i] = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - shard boundary: log, then re-raise all
                cause = getattr(exc, "cause", None) or exc
                log.error("shard %s failed: %s", names[i], describe_failure(cause))
                failures[names[i]] = describe_failure(cause)
                continue
            if on_done:
                on_done(i, results[i])
        if failures:
            raise ShardFailedError(failures)
        return [results[i] for i in range(len(tasks))]
