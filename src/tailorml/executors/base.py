"""What every executor offers, the error for failed shards, and lookup by name."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from tailorml import registry
from tailorml.errors import TailorError

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

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
    the failed ones.
    """

    workers: int

    def map(
        self,
        fn: Callable[[T], R],
        tasks: list[T],
        on_done: Callable[[int, R], None] | None = None,
        names: list[str] | None = None,
    ) -> list[R]: ...


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a failed shard (the type says more than an empty message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def get_executor(name: str, workers: int = 2, **options: Any) -> Executor:
    """The executor registered as ``name`` (``local`` or ``ray``) with ``workers`` workers."""
    for module in _MODULES:
        importlib.import_module(module)
    cls = registry.lookup("executor", name)
    return cls(workers=workers, **options)
