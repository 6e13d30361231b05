"""The jobs table as a queue: one winner per claim, leases, reclaim after a dead worker, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from tailorml.platform.db.engine import make_engine, make_sessionmaker, migrate, session_scope
from tailorml.platform.db.models import Job, Tenant
from tailorml.platform.jobs import queue


@pytest.fixture
def sessions(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        s.add(Tenant(id="tn_a", name="acme"))
    yield factory
    engine.dispose()


def add_jobs(sessions, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    ids = [f"ftjob-{i:04d}" for i in range(n)]
    with session_scope(sessions) as s:
        for i, job_id in enumerate(ids):
            s.add(
                Job(
                    id=job_id,
                    kind="fine_tune",
                    tenant_id="tn_a",
                    status="queued",
                    spec={},
                    created_at=1000 + i,
                )
            )
    return ids


def test_concurrent_workers_claim_each_job_exactly_once(sessions) -> None:  # type: ignore[no-untyped-def]
    ids = add_jobs(sessions, 24)
    claims: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(worker: str) -> None:
        while (c := queue.claim(sessions, worker_id=worker, lease_seconds=60)) is not None:
            with lock:
                claims.append((c.job_id, worker))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(job for job, _ in claims) == ids
    with session_scope(sessions) as s:
        rows = s.query(Job).all()
        assert all(r.status == "running" and r.attempts == 1 for r in rows)
        assert {r.lease_owner for r in rows} == {w for _, w in claims}


def test_oldest_job_first(sessions) -> None:  # type: ignore[no-untyped-def]
    ids = add_jobs(sessions, 3)
    assert [queue.claim(sessions, worker_id="w", lease_seconds=60).job_id for _ in ids] == ids  # type: ignore[union-attr]


def test_expired_lease_is_reclaimed_and_old_owner_loses_it(sessions) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = add_jobs(sessions, 1)
    first = queue.claim(sessions, worker_id="dead", lease_seconds=0.2)
    assert first is not None and first.attempt == 1
    assert queue.claim(sessions, worker_id="other", lease_seconds=60) is None  # lease still held
    time.sleep(0.3)
    second = queue.claim(sessions, worker_id="alive", lease_seconds=60)
    assert second is not None and second.job_id == job_id and second.attempt == 2
    assert queue.renew(sessions, job_id=job_id, worker_id="dead", lease_seconds=60) == (
        False,
        False,
    )
    assert not queue.finish(sessions, job_id=job_id, worker_id="dead", status="succeeded")
    assert queue.finish(
        sessions, job_id=job_id, worker_id="alive", status="succeeded", result={"ok": 1}
    )
    with session_scope(sessions) as s:
        job = s.get(Job, job_id)
        assert job.status == "succeeded" and job.result == {"ok": 1} and job.lease_owner is None


def test_cancel_is_seen_by_the_heartbeat(sessions) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = add_jobs(sessions, 1)
    queue.claim(sessions, worker_id="w", lease_seconds=60)
    with session_scope(sessions) as s:
        s.get(Job, job_id).cancel_requested = True
    assert queue.renew(sessions, job_id=job_id, worker_id="w", lease_seconds=60) == (True, True)


def test_a_job_whose_workers_keep_dying_fails(sessions) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = add_jobs(sessions, 1)
    for attempt in range(queue.MAX_ATTEMPTS):
        claimed = queue.claim(sessions, worker_id=f"w{attempt}", lease_seconds=0.05)
        assert claimed is not None
        time.sleep(0.1)
    assert queue.claim(sessions, worker_id="last", lease_seconds=60) is None
    with session_scope(sessions) as s:
        job = s.get(Job, job_id)
        assert job.status == "failed" and job.error["code"] == "worker_lost"
