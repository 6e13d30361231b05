"""Keeps the worker processes of ``tailor serve`` alive: restart the dead, stop a crash loop.

A thread in the serve process polls its worker children. One that exited
while the server is not stopping (SIGKILL, an out-of-memory kill, a crash)
is started again after a backoff that doubles with each recent death
(``worker_restart_backoff_seconds``, at most ``MAX_BACKOFF_SECONDS``). A slot
whose worker died ``worker_crash_loop_limit`` times within
``CRASH_LOOP_WINDOW_SECONDS`` is a crash loop (a worker that cannot start:
a bad database URL, a broken install): it is not restarted again, and an
error in the server log says so and what to do.

Each worker gets its id from the supervisor (``TAILOR_WORKER_ID``), so when
one is known dead ``on_exit`` can hand its running job back to the queue at
once (``queue.release_owner``) instead of waiting for its lease to expire.
The supervisor knows nothing of jobs itself; ``alive()`` and ``snapshot()``
feed ``GET /readyz``.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tailorml.platform.settings import Settings

log = logging.getLogger("tailorml.supervisor")

MAX_BACKOFF_SECONDS = 30.0
CRASH_LOOP_WINDOW_SECONDS = 300.0
POLL_SECONDS = 0.2


@dataclass
class _Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    worker_id: str = ""
    deaths: list[float] = field(default_factory=list)  # when its workers died, recent ones
    restart_at: float | None = None
    gave_up: bool = False
    restarts: int = 0


class WorkerSupervisor:
    """Start ``count`` worker processes and keep them running until ``stop()``."""

    def __init__(
        self,
        count: int,
        *,
        command: Sequence[str],
        env: Mapping[str, str],
        worker_id_prefix: str,
        backoff_seconds: float = 1.0,
        crash_loop_limit: int = 5,
        crash_loop_window_seconds: float = CRASH_LOOP_WINDOW_SECONDS,
        stop_timeout_seconds: float = 30.0,
        on_exit: Callable[[str], None] | None = None,
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.worker_id_prefix = worker_id_prefix
        self.backoff_seconds = backoff_seconds
        self.crash_loop_limit = crash_loop_limit
        self.crash_loop_window_seconds = crash_loop_window_seconds
        self.stop_timeout_seconds = stop_timeout_seconds
        self.on_exit = on_exit
        self.slots = [_Slot(i) for i in range(count)]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._spawned = 0

    @property
    def expected(self) -> int:
        return len(self.slots)

    def start(self) -> None:
        """Start every worker and the thread that watches them."""
        with self._lock:
            for slot in self.slots:
                self._spawn(slot)
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, slot: _Slot) -> None:
        self._spawned += 1
        slot.worker_id = f"{self.worker_id_prefix}-w{slot.index}-{self._spawned}"[:64]
        env = {**self.env, "TAILOR_WORKER_ID": slot.worker_id}
        slot.proc = subprocess.Popen(self.command, env=env)
        slot.restart_at = None
        log.info("worker %s started (pid %d)", slot.worker_id, slot.proc.pid)

    def _watch(self) -> None:
        while not self._stopping.wait(POLL_SECONDS):
            self.check()

    def check(self, now: float | None = None) -> None:
        """One pass: note the workers that exited, restart those whose backoff has passed."""
        now = time.monotonic() if now is None else now
        exited: list[tuple[str, int]] = []
        with self._lock:
            if self._stopping.is_set():
                return
            for slot in self.slots:
                if slot.gave_up:
                    continue
                if slot.proc is not None and slot.restart_at is None:
                    code = slot.proc.poll()
                    if code is None:
                        continue
                    exited.append((slot.worker_id, code))
                    self._died(slot, code, now)
                if slot.restart_at is not None and now >= slot.restart_at:
                    slot.restarts += 1
                    self._spawn(slot)
        for worker_id, _code in exited:
            if self.on_exit is not None:
                try:
                    self.on_exit(worker_id)
                except Exception:  # process boundary: a hook failure must not stop supervision
                    log.exception("handing back the jobs of worker %s failed", worker_id)

    def _died(self, slot: _Slot, code: int, now: float) -> None:
        slot.deaths = [t for t in slot.deaths if now - t < self.crash_loop_window_seconds]
        slot.deaths.append(now)
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        if len(slot.deaths) >= self.crash_loop_limit:
            slot.gave_up = True
            log.error(
                "worker slot %d is in a crash loop: its worker died %d times in %.0f s (last: "
                "%s, worker %s); not restarting it. Run `tailor worker` by hand to see why it "
                "stops, fix that, then restart `tailor serve`.",
                slot.index,
                len(slot.deaths),
                self.crash_loop_window_seconds,
                how,
                slot.worker_id,
            )
            return
        delay = min(MAX_BACKOFF_SECONDS, self.backoff_seconds * 2 ** (len(slot.deaths) - 1))
        slot.restart_at = now + delay
        log.warning(
            "worker %s (pid %d) stopped with %s; restarting it in %.1f s",
            slot.worker_id,
            slot.proc.pid if slot.proc else -1,
            how,
            delay,
        )

    def alive(self) -> int:
        """Workers running now."""
        with self._lock:
            return sum(
                1
                for s in self.slots
                if s.proc is not None and s.restart_at is None and s.proc.poll() is None
            )

    def pids(self) -> list[int]:
        with self._lock:
            return [s.proc.pid for s in self.slots if s.proc is not None and s.proc.poll() is None]

    def snapshot(self) -> dict[str, Any]:
        """What readiness reports: how many are expected, alive, restarting, given up."""
        with self._lock:
            restarting = sum(1 for s in self.slots if s.restart_at is not None and not s.gave_up)
            gave_up = sum(1 for s in self.slots if s.gave_up)
            restarts = sum(s.restarts for s in self.slots)
        return {
            "source": "supervisor",
            "expected": self.expected,
            "alive": self.alive(),
            "restarting": restarting,
            "crash_looping": gave_up,
            "restarts": restarts,
        }

    def stop(self) -> None:
        """SIGTERM every worker, wait for them (each hands its job back), kill the stragglers."""
        self._stopping.set()
        with self._lock:
            procs = [s.proc for s in self.slots if s.proc is not None]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_seconds
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", p.pid)
                p.kill()
                p.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)


def supervise_workers(
    settings: Settings, sessions: sessionmaker[Session], count: int
) -> WorkerSupervisor:
    """The supervisor ``tailor serve`` runs: ``count`` ``tailor worker`` processes, started.

    A dead worker's running job goes back to the queue at once (``queue.release_owner``).
    """
    import os
    import socket
    import sys

    from tailorml.platform.jobs import queue

    def hand_back(worker_id: str) -> None:
        for job_id in queue.release_owner(sessions, worker_id=worker_id):
            log.warning("job %s of the dead worker %s is back in the queue", job_id, worker_id)

    supervisor = WorkerSupervisor(
        count,
        command=[sys.executable, "-m", "tailorml", "worker"],
        # Workers stop by themselves if this process dies without stopping them (SIGKILL).
        env={**os.environ, "TAILOR_PARENT_PID": str(os.getpid())},
        worker_id_prefix=f"{socket.gethostname()[:32]}-{os.getpid()}",
        backoff_seconds=settings.worker_restart_backoff_seconds,
        crash_loop_limit=settings.worker_crash_loop_limit,
        # Each worker needs its grace period, then a little to exit.
        stop_timeout_seconds=settings.worker_stop_grace_seconds + 20.0,
        on_exit=hand_back,
    )
    supervisor.start()
    return supervisor
