"""The jobs table as a queue: one winner per claim, fair turns between tenants, leases, reclaim
after a dead worker, cancel, and the per-tenant cap on active jobs."""

from __future__ import annotations

import threading
import time

import pytest

from tailorml.errors import ConflictError, RateLimitError
from tailorml.platform.db.engine import make_engine, make_sessionmaker, migrate, session_scope
from tailorml.platform.db.models import Job, Tenant
from tailorml.platform.jobs import queue

TENANTS = {"tn_a": "acme", "tn_b": "globex", "tn_c": "initech"}


@pytest.fixture
def sessions(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        s.add_all([Tenant(id=tid, name=name) for tid, name in TENANTS.items()])
    yield factory
    engine.dispose()


def add_jobs(  # type: ignore[no-untyped-def]
    sessions,
    n: int,
    *,
    tenant: str = "tn_a",
    start: int = 0,
    kind: str = "fine_tune",
    status: str = "queued",
    priority: int = 0,
) -> list[str]:
    ids = [f"job-{tenant}-{start + i:04d}" for i in range(n)]
    with session_scope(sessions) as s:
        for i, job_id in enumerate(ids):
            s.add(
                Job(
                    id=job_id,
                    kind=kind,
                    tenant_id=tenant,
                    status=status,
                    spec={},
                    created_at=1000 + start + i,
                    priority=priority,
                )
            )
    return ids


def claim_tenant(sessions, worker: str = "w") -> str:  # type: ignore[no-untyped-def]
    claimed = queue.claim(sessions, worker_id=worker, lease_seconds=60)
    assert claimed is not None
    return claimed.tenant_id


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


def test_another_tenants_job_does_not_wait_behind_200(sessions) -> None:  # type: ignore[no-untyped-def]
    add_jobs(sessions, 200, tenant="tn_a")
    (late,) = add_jobs(sessions, 1, tenant="tn_b", start=200)
    first_two = [queue.claim(sessions, worker_id=f"w{i}", lease_seconds=60) for i in range(2)]
    assert late in [c.job_id for c in first_two if c is not None]


def test_three_tenants_take_turns(sessions) -> None:  # type: ignore[no-untyped-def]
    # A tenant with jobs running waits for tenants with fewer; equals go round-robin.
    for n, tenant in enumerate(TENANTS):
        add_jobs(sessions, 4, tenant=tenant, start=10 * n)
    assert [claim_tenant(sessions) for _ in range(9)] == ["tn_a", "tn_b", "tn_c"] * 3


def test_turns_follow_the_oldest_last_claim_when_jobs_finish(sessions) -> None:  # type: ignore[no-untyped-def]
    # One worker finishing each job before the next claim: nobody is running, so the
    # tenant served longest ago goes next.
    add_jobs(sessions, 5, tenant="tn_a")
    add_jobs(sessions, 2, tenant="tn_b", start=10)
    add_jobs(sessions, 1, tenant="tn_c", start=20)
    order = []
    while (c := queue.claim(sessions, worker_id="w", lease_seconds=60)) is not None:
        order.append(c.tenant_id)
        assert queue.finish(sessions, job_id=c.job_id, worker_id="w", status="succeeded")
    assert order == ["tn_a", "tn_b", "tn_c", "tn_a", "tn_b", "tn_a", "tn_a", "tn_a"]


def test_priority_then_age_within_a_tenant(sessions) -> None:  # type: ignore[no-untyped-def]
    old = add_jobs(sessions, 2, tenant="tn_a")
    (urgent,) = add_jobs(sessions, 1, tenant="tn_a", start=5, priority=10)
    claimed = [queue.claim(sessions, worker_id="w", lease_seconds=60) for _ in range(3)]
    assert [c.job_id for c in claimed if c is not None] == [urgent, *old]


def test_two_workers_over_many_tenants_claim_each_job_once(sessions) -> None:  # type: ignore[no-untyped-def]
    ids = [
        *add_jobs(sessions, 15, tenant="tn_a"),
        *add_jobs(sessions, 10, tenant="tn_b", start=100),
        *add_jobs(sessions, 5, tenant="tn_c", start=200),
    ]
    claims: list[str] = []
    lock = threading.Lock()

    def work(worker: str) -> None:
        while (c := queue.claim(sessions, worker_id=worker, lease_seconds=60)) is not None:
            with lock:
                claims.append(c.job_id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claims) == sorted(ids)


def test_an_expired_lease_is_still_reclaimed_first_for_its_tenant(sessions) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = add_jobs(sessions, 1, tenant="tn_a")
    assert queue.claim(sessions, worker_id="dead", lease_seconds=0.05) is not None
    time.sleep(0.1)
    add_jobs(sessions, 1, tenant="tn_b", start=5)
    # tn_a's job is runnable again and tn_a has no live running job, nor does tn_b; tn_b
    # has never been served, so it goes first, then the reclaim.
    assert claim_tenant(sessions) == "tn_b"
    again = queue.claim(sessions, worker_id="alive", lease_seconds=60)
    assert again is not None and again.job_id == job_id and again.attempt == 2


def test_cancel_of_a_queued_job_ends_it_unrun(sessions) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = add_jobs(sessions, 1)
    with session_scope(sessions) as s:
        job = queue.request_cancel(s, s.get(Job, job_id))
        assert job.status == "cancelled"
    assert queue.claim(sessions, worker_id="w", lease_seconds=60) is None
    with session_scope(sessions) as s:
        job = s.get(Job, job_id)
        assert job.status == "cancelled" and job.attempts == 0 and job.started_at is None
        with pytest.raises(ConflictError, match="already cancelled"):
            queue.request_cancel(s, job)


def test_cancel_of_a_running_job_reaches_its_worker(sessions) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = add_jobs(sessions, 1, kind="dataset")
    queue.claim(sessions, worker_id="w", lease_seconds=60)
    with session_scope(sessions) as s:
        job = queue.request_cancel(s, s.get(Job, job_id))
        assert job.status == "running" and job.cancel_requested
    assert queue.renew(sessions, job_id=job_id, worker_id="w", lease_seconds=60) == (True, True)
    assert queue.finish(sessions, job_id=job_id, worker_id="w", status="cancelled")


def test_capacity_counts_active_jobs_of_every_kind(sessions) -> None:  # type: ignore[no-untyped-def]
    add_jobs(sessions, 2, kind="fine_tune")
    add_jobs(sessions, 1, kind="dataset", start=10, status="running")
    add_jobs(sessions, 5, kind="dataset", start=20, status="succeeded")  # finished: not counted
    with session_scope(sessions) as s:
        queue.check_capacity(s, tenant_id="tn_a", limit=4)
        with pytest.raises(RateLimitError) as info:
            queue.check_capacity(s, tenant_id="tn_a", limit=3)
        queue.check_capacity(s, tenant_id="tn_b", limit=1)  # another tenant's room is its own
    err = info.value
    assert (err.status_code, err.code) == (429, "too_many_active_jobs")
    assert "3 active jobs" in err.message and "limit is 3" in err.message
    assert "cancel" in err.message and err.retry_after


def test_concurrent_creations_cannot_both_take_the_last_place(sessions) -> None:  # type: ignore[no-untyped-def]
    # Both requests check, then insert; the tenant lock makes the second check wait for the
    # first insert, so it sees the job and is refused.
    results: list[str] = []
    start = threading.Barrier(2)

    def create(n: int) -> None:
        start.wait()
        try:
            with session_scope(sessions) as s:
                queue.check_capacity(s, tenant_id="tn_a", limit=1)
                time.sleep(0.3)
                s.add(
                    Job(
                        id=f"job-race-{n}",
                        kind="fine_tune",
                        tenant_id="tn_a",
                        status="queued",
                        spec={},
                    )
                )
            results.append("created")
        except RateLimitError:
            results.append("refused")

    threads = [threading.Thread(target=create, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["created", "refused"]
