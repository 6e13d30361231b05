"""Run shards as Ray tasks, on a local Ray instance or a cluster.

The same shard function as the local executor runs as ``ray.remote`` tasks,
so results, markers and resuming behave identically. If Ray is already
initialised (a notebook, a test, a cluster job) it is used as is; otherwise
``ray.init(address)`` connects to ``address`` or starts a local instance.
Shards write their outputs straight to the output folder, which therefore
must be a path every Ray node sees (a shared filesystem) on a cluster, and
``tailorml`` must be importable on every node (installed, or on the
``PYTHONPATH`` of the Ray runtime environment).

Cancelling (``should_stop``) force-cancels the running tasks, which ends
their worker processes, and drops the ones not yet submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tailorml.errors import ModelUnavailableError
from tailorml.executors.base import POLL_SECONDS, ShardResults, StopCheck, raise_if_stopped
from tailorml.registry import register

T = TypeVar("T")
R = TypeVar("R")


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
        should_stop: StopCheck | None = None,
    ) -> list[R]:
        ray = self._ray()
        shards = ShardResults(names or [str(i) for i in range(len(tasks))], on_done)
        remote = ray.remote(num_cpus=self.num_cpus, max_retries=0)(fn)
        queue = list(enumerate(tasks))
        running: dict[Any, int] = {}
        timeout = None if should_stop is None else POLL_SECONDS
        try:
            while queue or running:
                raise_if_stopped(should_stop)
                while queue and len(running) < self.workers:
                    i, task = queue.pop(0)
                    running[remote.remote(task)] = i
                ready, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
                for ref in ready:
                    shards.collect(running.pop(ref), lambda ref=ref: ray.get(ref))
        except BaseException:
            for ref in running:  # cancelled or interrupted: no task outlives the call
                ray.cancel(ref, force=True)
            raise
        return shards.ordered()
