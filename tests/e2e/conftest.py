"""A live TailorML server process (``tailor serve``) on a free port, as a user starts it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    data_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def tailor(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "tailorml", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def create_tenant(self, name: str) -> str:
        return self.tailor("admin", "tenant", "create", name).strip().splitlines()[-1]

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / f"worker-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tailorml", "worker"], env=self.env, stdout=log, stderr=log
        )
        self.procs.append(proc)
        return proc

    def client(self, key: str):  # type: ignore[no-untyped-def]
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture
def live_server(tmp_path: Path) -> Callable[..., LiveServer]:
    """Start ``tailor serve`` (with ``workers`` worker processes) and stop it afterwards."""
    started: list[LiveServer] = []

    def start(workers: int = 1, **extra_env: str) -> LiveServer:
        port = free_port()
        data_dir = tmp_path / "data"
        data_dir.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "TAILOR_DATA_DIR": str(data_dir),
            "TAILOR_MASTER_SECRET": "e2e-secret",
            "TAILOR_ALLOW_MODEL_PATHS": "1",
            "TAILOR_LEASE_SECONDS": "4",
            "TAILOR_HEARTBEAT_SECONDS": "0.5",
            "TAILOR_POLL_SECONDS": "0.2",
            "OMP_NUM_THREADS": "1",
            **extra_env,
        }
        server = LiveServer(url=f"http://127.0.0.1:{port}", env=env, data_dir=data_dir)
        log = open(data_dir / "server.log", "wb")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tailorml",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=log,
            stderr=log,
        )
        server.procs.append(proc)
        started.append(server)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert proc.poll() is None, (data_dir / "server.log").read_text()
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("the server did not start: " + (data_dir / "server.log").read_text())

    yield start
    for server in started:
        for proc in server.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in server.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for(client, job_id: str, timeout: float = 180):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout} s")


def all_events(client, job_id: str) -> list:  # type: ignore[no-untyped-def]
    """Every event of a job, oldest first, following the ``after`` cursor."""
    events, after = [], None
    while True:
        page = client.fine_tuning.jobs.list_events(
            job_id, limit=100, **({"after": after} if after else {})
        )
        events.extend(page.data)
        if not page.has_more:
            return list(reversed(events))
        after = page.data[-1].id
