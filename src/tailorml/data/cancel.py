"""Cooperative cancellation for work that runs in the caller's process.

A pipeline's shards in worker processes are stopped by their executor,
which ends the processes. Work that runs inline (``workers=1``, or a global
step such as ``paraphrase``, which is one task in the caller's process) can
only stop itself: ``run_pipeline`` installs its ``should_stop`` with
``stop_check`` and a long operator polls ``stop_requested()`` or hands
``current_stop_check()`` to what it waits on (the outbound client, threads:
a thread does not inherit the check, so pass the callable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from tailorml.errors import JobCancelledError

StopCheck = Callable[[], bool]
_CHECK: ContextVar[StopCheck | None] = ContextVar("tailorml_stop_check", default=None)


@contextmanager
def stop_check(fn: StopCheck | None) -> Iterator[None]:
    """Make ``fn`` the answer of ``stop_requested()`` inside the block (nested: either stops)."""
    outer = _CHECK.get()
    if fn is None or outer is None:
        check = fn or outer
    else:

        def check() -> bool:
            return outer() or fn()

    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)


def current_stop_check() -> StopCheck | None:
    """The installed check, to hand to threads or clients that cannot see this context."""
    return _CHECK.get()


def stop_requested() -> bool:
    """Whether the running pipeline was asked to stop (always False outside one)."""
    check = _CHECK.get()
    return check is not None and bool(check())


def raise_if_stopped() -> None:
    """Raise ``JobCancelledError`` if the running pipeline was asked to stop."""
    if stop_requested():
        raise JobCancelledError("The pipeline was cancelled; run it again to resume.")
