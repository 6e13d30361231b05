"""``tailor serve`` supervises its workers: a worker killed with SIGKILL mid-training is replaced
by a new one, which resumes the job at once (the supervisor hands the dead worker's job back
instead of waiting for its lease) and finishes it; /readyz counts the workers throughout."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import all_events, wait_for
from tests.e2e.test_worker_crash import _chat_job


def worker_pids(serve_pid: int) -> set[int]:
    """The `tailor worker` children of a serve process (started from any of its threads)."""
    pids: set[int] = set()
    for children in Path(f"/proc/{serve_pid}/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if b"tailorml" in cmdline and b"worker" in cmdline:
                pids.add(int(pid))
    return pids


def test_serve_restarts_a_sigkilled_worker_and_the_job_succeeds(
    live_server, tiny_models, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # A long lease: the job must come back because the supervisor saw its worker die.
    server = live_server(
        workers=1, TAILOR_WORKER_RESTART_BACKOFF_SECONDS="0.2", TAILOR_LEASE_SECONDS="60"
    )
    serve = server.procs[0]
    ready = httpx.get(f"{server.url}/readyz", timeout=5).json()
    assert ready["workers"]["expected"] == 1 and ready["workers"]["alive"] == 1
    (first,) = worker_pids(serve.pid)

    client = server.client(server.create_tenant("acme"))
    job = _chat_job(client, tiny_models, tmp_path, epochs=3, checkpoint_every=10)
    deadline = time.time() + 60
    while not client.fine_tuning.jobs.checkpoints.list(job.id).data:
        assert time.time() < deadline, "no checkpoint"
        time.sleep(0.1)
    killed = time.time()
    os.kill(first, signal.SIGKILL)

    deadline = time.time() + 20
    while not (pids := worker_pids(serve.pid) - {first}):
        assert time.time() < deadline, (server.data_dir / "server.log").read_text()
        time.sleep(0.1)
    assert len(pids) == 1
    job = wait_for(client, job.id, timeout=60)
    assert job.status == "succeeded", job.error
    messages = [e.message for e in all_events(client, job.id)]
    assert sum(m.startswith("Job restarted by worker") for m in messages) == 1
    assert any("died; the job will resume" in m for m in messages)
    restart = next(e.created_at for e in all_events(client, job.id) if "Job restarted" in e.message)
    assert restart - killed < 30  # well before the 60 s lease would have expired

    ready = httpx.get(f"{server.url}/readyz", timeout=5).json()["workers"]
    assert ready["alive"] == 1 and ready["restarts"] == 1
    assert "restarting it in" in (server.data_dir / "server.log").read_text()
