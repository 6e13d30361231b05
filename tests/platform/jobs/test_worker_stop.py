"""SIGTERM stops a worker within its grace period even when the job's step is blocked in I/O and
never looks at the stop flag; the job is handed back to the queue (not failed) and another worker
resumes it. A job that honours the stop flag leaves at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tailorml.platform.db.engine import make_engine, make_sessionmaker, migrate, session_scope
from tailorml.platform.db.models import Job, JobEvent, Tenant
from tailorml.platform.jobs.worker import EXIT_STOP_GRACE_EXPIRED

GRACE = 1.5

# A real `tailor worker` process with two test job kinds: one blocked reading a socket that never
# sends (it ignores the stop flag), one that polls the stop flag. Each writes a marker once running.
WORKER = textwrap.dedent(
    """
    import socket, sys, time
    from pathlib import Path
    from tailorml import registry
    from tailorml.errors import JobCancelledError
    from tailorml.platform.jobs.worker import run_worker
    from tailorml.platform.settings import Settings

    @registry.register("job_kind", "test_blocked_read")
    def blocked(ctx):
        a, b = socket.socketpair()
        Path(sys.argv[1]).write_text(ctx.job_id)
        a.recv(1)
        return {}

    @registry.register("job_kind", "test_polite")
    def polite(ctx):
        Path(sys.argv[1]).write_text(ctx.job_id)
        while not ctx.should_stop():
            time.sleep(0.05)
        raise JobCancelledError("stopped")

    run_worker(Settings())
    """
)


@pytest.fixture
def sessions(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        s.add(Tenant(id="tn_a", name="acme"))
    yield factory
    engine.dispose()


def _worker(db_url: str, tmp_path: Path, marker: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TAILOR_DATABASE_URL": db_url,
        "TAILOR_DATA_DIR": str(tmp_path / "data"),
        "TAILOR_MASTER_SECRET": "s",
        "TAILOR_LEASE_SECONDS": "30",
        "TAILOR_HEARTBEAT_SECONDS": "0.3",
        "TAILOR_POLL_SECONDS": "0.1",
        "TAILOR_WORKER_STOP_GRACE_SECONDS": str(GRACE),
    }
    log = open(tmp_path / "worker.log", "wb")
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(marker)], env=env, stdout=log, stderr=log
    )


def _run_until_running(sessions, db_url: str, tmp_path: Path, kind: str):  # type: ignore[no-untyped-def]
    with session_scope(sessions) as s:
        s.add(Job(id="job-1", kind=kind, tenant_id="tn_a", status="queued", spec={}))
    marker = tmp_path / "running"
    proc = _worker(db_url, tmp_path, marker)
    deadline = time.time() + 30
    while not marker.exists():
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()
        assert time.time() < deadline, (tmp_path / "worker.log").read_text()
        time.sleep(0.05)
    return proc


def _job(sessions) -> tuple[Job, list[str]]:  # type: ignore[no-untyped-def]
    with session_scope(sessions) as s:
        job = s.get(Job, "job-1")
        assert job is not None
        s.expunge(job)
        events = list(s.scalars(select(JobEvent.message).where(JobEvent.job_id == "job-1")))
        return job, events


def test_sigterm_stops_a_worker_blocked_in_io_within_the_grace(sessions, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = _run_until_running(sessions, db_url, tmp_path, "test_blocked_read")
    time.sleep(0.3)  # the step is now blocked in recv()
    started = time.time()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=GRACE + 10)
    took = time.time() - started
    log = (tmp_path / "worker.log").read_text()
    assert code == EXIT_STOP_GRACE_EXPIRED, log
    assert GRACE - 0.2 <= took < GRACE + 3, took
    assert "did not stop within" in log
    job, events = _job(sessions)
    # Left for another worker, never failed: running with an expired lease, so claimable now.
    assert job.status == "running" and job.error is None
    assert job.lease_expires_at is not None and job.lease_expires_at <= time.time()
    assert any("will resume elsewhere" in m for m in events)


def test_sigterm_with_a_job_that_honours_stop_leaves_at_once(sessions, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = _run_until_running(sessions, db_url, tmp_path, "test_polite")
    started = time.time()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=GRACE + 10)
    assert code == 0, (tmp_path / "worker.log").read_text()
    assert time.time() - started < GRACE
    job, events = _job(sessions)
    assert job.status == "running" and job.error is None
    assert job.lease_expires_at == 0.0
    assert any("will resume elsewhere" in m for m in events)
