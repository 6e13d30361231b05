"""The worker supervisor of ``tailor serve``, over real child processes: a dead worker is
restarted (after its backoff) and reported, a crash loop is stopped and logged, stopping the
server restarts nothing."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

import pytest

from tailorml.platform.supervisor import WorkerSupervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASHER = [sys.executable, "-c", "import sys; sys.exit(3)"]


def _until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_worker_is_restarted_with_a_new_id_and_handed_back() -> None:
    exited: list[str] = []
    sup = WorkerSupervisor(
        2,
        command=SLEEPER,
        env=os.environ,
        worker_id_prefix="host-1",
        backoff_seconds=0.1,
        on_exit=exited.append,
    )
    sup.start()
    try:
        assert sup.alive() == 2
        first = sup.slots[0].worker_id
        victim = sup.pids()[0]
        os.kill(victim, signal.SIGKILL)
        _until(lambda: sup.alive() == 2 and victim not in sup.pids())
        assert exited == [first]  # the dead worker's jobs were handed back, once
        assert sup.slots[0].worker_id != first
        assert sup.snapshot() == {
            "source": "supervisor",
            "expected": 2,
            "alive": 2,
            "restarting": 0,
            "crash_looping": 0,
            "restarts": 1,
        }
    finally:
        sup.stop()
    assert sup.alive() == 0


def test_backoff_doubles_with_each_recent_death() -> None:
    sup = WorkerSupervisor(
        1, command=CRASHER, env=os.environ, worker_id_prefix="h", backoff_seconds=2.0
    )
    with sup._lock:
        sup._spawn(sup.slots[0])
    slot = sup.slots[0]
    assert slot.proc is not None
    slot.proc.wait()
    sup.check(now=100.0)
    assert slot.restart_at == pytest.approx(102.0)
    sup.check(now=101.0)  # not yet
    assert slot.restart_at == pytest.approx(102.0)
    sup.check(now=102.0)  # restarted; it crashes again
    slot.proc.wait()
    sup.check(now=103.0)
    assert slot.restart_at == pytest.approx(107.0)
    sup.stop()


def test_a_crash_loop_is_stopped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    sup = WorkerSupervisor(
        1,
        command=CRASHER,
        env=os.environ,
        worker_id_prefix="h",
        backoff_seconds=0.0,
        crash_loop_limit=3,
    )
    with caplog.at_level(logging.WARNING, logger="tailorml.supervisor"):
        sup.start()
        try:
            _until(lambda: sup.snapshot()["crash_looping"] == 1)
            spawned = sup._spawned
            time.sleep(0.5)
            assert sup._spawned == spawned == 3  # given up: no more restarts
            assert sup.snapshot()["alive"] == 0
        finally:
            sup.stop()
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.name == "tailorml.supervisor"
    ]
    assert len(errors) == 1
    assert "crash loop" in errors[0] and "exit code 3" in errors[0]
    assert "tailor worker" in errors[0]


def test_stopping_restarts_nothing() -> None:
    sup = WorkerSupervisor(
        2, command=SLEEPER, env=os.environ, worker_id_prefix="h", backoff_seconds=0.0
    )
    sup.start()
    pids = sup.pids()
    started = time.time()
    sup.stop()
    assert time.time() - started < 5  # SIGTERM ends the sleepers at once
    time.sleep(0.5)
    assert sup.alive() == 0 and sup._spawned == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
