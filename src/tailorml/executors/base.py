"""What every executor offers, the error for failed shards, cancellation, and lookup by name."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from tailorml import registry
from tailorml.errors import JobCancelledError, TailorError

T = TypeVar("T")
R = TypeVar("R")
StopCheck = Callable[[], bool]
log = logging.getLogger(__name__)
POLL_SECONDS = 0.2  # how often an executor waiting on tasks asks ``should_stop``

# Modules that register executors; imported on lookup so `import tailorml` stays light.
_MODULES = ("tailorml.executors.local", "tailorml.executors.ray")


class ShardFailedError(TailorError):
    """Some shards failed; the others finished and a rerun runs only the failed ones."""

    default_code = "shard_failed"

    def __init__(self, failures: dict[str, str]):
        self.failures = failures
        listed = "; ".join(f"{name}: {why}" for name, why in failures.items())
        super().__init__(
            f"{len(failures)} shard(s) failed ({listed}). Finished shards are kept: "
            "fix the cause and run the same command again to resume."
        )


class Executor(Protocol):
    """Runs ``fn`` on every task, in parallel where it can; results in task order.

    ``on_done(index, result)`` is called as each task finishes (progress).
    Every task runs even when another fails; then ``ShardFailedError`` names
    the failed ones. ``should_stop`` is polled while tasks run: when it turns
    true the executor ends the running tasks (their processes, where it has
    them) and raises ``JobCancelledError``; finished tasks keep their outputs.
    """

    workers: int

    def map(
        self,
        fn: Callable[[T], R],
        tasks: list[T],
        on_done: Callable[[int, R], None] | None = None,
        names: list[str] | None = None,
        should_stop: StopCheck | None = None,
    ) -> list[R]: ...


def raise_if_stopped(should_stop: StopCheck | None) -> None:
    """Raise ``JobCancelledError`` if ``should_stop`` says so (an executor's check)."""
    if should_stop is not None and should_stop():
        raise JobCancelledError(
            "The job was cancelled; shards that finished are kept, so running it again resumes."
        )


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a failed shard (the type says more than an empty message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class ShardResults(Generic[R]):
    """What every executor does with a finished task: keep its result in task order, or
    record its failure by shard name and go on (so every shard runs), then report."""

    def __init__(self, names: list[str], on_done: Callable[[int, R], None] | None):
        self.names = names
        self.on_done = on_done
        self.results: dict[int, R] = {}
        self.failures: dict[str, str] = {}

    def collect(self, i: int, get: Callable[[], R]) -> None:
        """Call ``get()`` for task ``i``'s result (it raises if the task failed)."""
        try:
            value = get()
        except JobCancelledError:
            raise  # a stop, not a failed shard: the whole map ends here
        except Exception as exc:  # noqa: BLE001 - shard boundary: log, then re-raise all
            cause = getattr(exc, "cause", None) or exc  # Ray wraps the task's own error
            log.error("shard %s failed: %s", self.names[i], describe_failure(cause), exc_info=cause)
            self.failures[self.names[i]] = describe_failure(cause)
            return
        self.results[i] = value
        if self.on_done:
            self.on_done(i, value)

    def ordered(self) -> list[R]:
        """The results in task order, or ``ShardFailedError`` naming every failed shard."""
        if self.failures:
            raise ShardFailedError(self.failures)
        return [self.results[i] for i in range(len(self.names))]


def get_executor(name: str, workers: int = 2, **options: Any) -> Executor:
    """The executor registered as ``name`` (``local`` or ``ray``) with ``workers`` workers."""
    for module in _MODULES:
        importlib.import_module(module)
    cls = registry.lookup("executor", name)
    return cls(workers=workers, **options)
