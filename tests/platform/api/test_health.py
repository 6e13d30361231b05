"""Liveness and readiness without a key: /healthz always, /readyz with the database and the
workers (from the in-process supervisor, else from live leases in the database), 503 when the
database does not answer."""

from __future__ import annotations

import os
import sys
import time

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Job, Tenant
from tailorml.platform.supervisor import WorkerSupervisor


def test_healthz_needs_no_key(client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/healthz", "/health"):
        res = client.get(path)
        assert res.status_code == 200 and res.json()["status"] == "ok"


def test_readyz_counts_workers_with_live_leases(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/readyz")
    assert res.status_code == 200, res.text
    assert res.json()["database"] == "ok"
    assert res.json()["workers"] == {"source": "database", "busy": 0}
    state = client.app.state.tailor
    t = time.time()
    with session_scope(state.sessions) as s:
        s.add(Tenant(id="tn_x", name="x"))
        s.flush()
        for i, (owner, expires) in enumerate(
            [("w1", t + 60), ("w1", t + 60), ("w2", t + 60), ("w3", t - 5)]
        ):
            s.add(
                Job(
                    id=f"job-{i}",
                    kind="fine_tune",
                    tenant_id="tn_x",
                    status="running",
                    spec={},
                    lease_owner=owner,
                    lease_expires_at=expires,
                )
            )
    # w3's lease expired: it is dead or stuck, not counted.
    assert client.get("/readyz").json()["workers"] == {"source": "database", "busy": 2}


def test_readyz_reports_the_supervisors_workers(client) -> None:  # type: ignore[no-untyped-def]
    sup = WorkerSupervisor(
        2,
        command=[sys.executable, "-c", "import time; time.sleep(60)"],
        env=os.environ,
        worker_id_prefix="h",
    )
    sup.start()
    client.app.state.tailor.supervisor = sup
    try:
        workers = client.get("/readyz").json()["workers"]
        assert workers["source"] == "supervisor"
        assert workers["expected"] == 2 and workers["alive"] == 2
    finally:
        sup.stop()
    assert client.get("/readyz").json()["workers"]["alive"] == 0


def test_readyz_is_503_when_the_database_does_not_answer(client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = client.app.state.tailor
    broken = create_engine(f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
    state.read_sessions = sessionmaker(broken)
    res = client.get("/readyz")
    assert res.status_code == 503
    assert res.json()["database"] == "unreachable"
    assert client.get("/healthz").status_code == 200  # alive, only not ready
