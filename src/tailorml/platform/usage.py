"""Metering: every request's and every job's use, written to per-minute ``usage_buckets``.

Every inference request is counted, none sampled, but no request writes to the database:
``UsageRecorder`` adds it to an in-process table keyed by (tenant, kind, model, minute), and
a background thread writes that table every ``TAILOR_USAGE_FLUSH_SECONDS`` (1 s) in one
transaction of upserts that *add* to the stored buckets, and once more when the app shuts
down. A write per request would take SQLite's one write lock on the hot path and serialize
all traffic behind it (and behind any worker's write); one transaction a second costs the
same whatever the traffic, and upserts that add let every API process flush into the same
rows. A flush that fails keeps its rows for the next one, so nothing is lost while the
database is away; a process killed with SIGKILL loses at most its last second.

Jobs are metered by their worker (``JobMeter``): compute seconds of every attempt, written
every ``JOB_FLUSH_SECONDS`` while it runs and when it ends, and the training tokens once,
when the job reaches its final state. Storage is a gauge, not a sum: a tenant's files plus
what its jobs keep on disk (datasets, checkpoints, models), measured after an upload or a
deletion and when a job ends, and stored as the bucket's ``bytes``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from tailorml.platform.db.engine import read_scope, session_scope
from tailorml.platform.db.models import File, Job, JobEvent, UsageBucket

log = logging.getLogger("tailorml.usage")

KINDS = ("request", "training", "data", "storage")
# The usage kind of each job kind; another job kind is metered under its own name.
JOB_KINDS = {"fine_tune": "training", "dataset": "data"}
JOB_FLUSH_SECONDS = 10.0  # a killed worker loses at most this much of its job's compute time
FINAL = ("succeeded", "failed", "cancelled")

# (tenant_id, kind, model, minute)
BucketKey = tuple[str, str, str, int]


@dataclass
class Counts:
    """What one bucket adds up (or, for storage, the bytes stored)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    training_tokens: int = 0
    compute_seconds: float = 0.0
    bytes: int = 0

    def add(self, other: Counts) -> None:
        for f in ADDED:
            setattr(self, f, getattr(self, f) + getattr(other, f))

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_sums(cls, values: Iterable[Any]) -> Counts:
        """From SQL sums in ``ADDED`` order (PostgreSQL sums integers as Decimal, NULL if none)."""
        counts = cls()
        for name, value in zip(ADDED, values, strict=True):
            setattr(
                counts, name, float(value or 0) if name == "compute_seconds" else int(value or 0)
            )
        return counts


ADDED = tuple(f.name for f in fields(Counts) if f.name != "bytes")


def minute_of(at: float) -> int:
    return int(at // 60) * 60


def write_buckets(session: Session, rows: dict[BucketKey, Counts]) -> None:
    """Add ``rows`` to the stored buckets (storage rows set their ``bytes`` instead)."""
    insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    keys = ("tenant_id", "kind", "model", "minute")
    for storage in (False, True):
        values = [
            {**dict(zip(keys, key, strict=True)), **vars(counts)}
            for key, counts in sorted(rows.items())  # one lock order for every writer
            if (key[1] == "storage") == storage
        ]
        if not values:
            continue
        stmt = insert(UsageBucket)
        if storage:
            update = {"bytes": stmt.excluded.bytes}
        else:
            update = {f: getattr(UsageBucket, f) + getattr(stmt.excluded, f) for f in ADDED}
        session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update), values)


def _tree_bytes(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass  # removed while we walked
    return total


def measure_storage(session: Session, *, tenant_id: str, jobs_dir: Path) -> int:
    """The bytes a tenant stores now: its files, and its jobs' folders (datasets, checkpoints,
    models) on disk."""
    files = session.scalar(select(func.sum(File.bytes)).where(File.tenant_id == tenant_id)) or 0
    job_ids = session.scalars(select(Job.id).where(Job.tenant_id == tenant_id))
    return int(files) + sum(_tree_bytes(jobs_dir / job_id) for job_id in job_ids)


def snapshot_storage(
    sessions: sessionmaker[Session], *, tenant_id: str, jobs_dir: Path, at: float | None = None
) -> int:
    """Measure a tenant's storage and record it for this minute; the bytes measured."""
    key = (tenant_id, "storage", "", minute_of(time.time() if at is None else at))
    with session_scope(sessions) as session:
        stored = measure_storage(session, tenant_id=tenant_id, jobs_dir=jobs_dir)
        write_buckets(session, {key: Counts(bytes=stored)})
    return stored


class UsageRecorder:
    """Counts requests in memory and writes them every ``flush_seconds`` (module docstring).

    ``after_flush`` is called with what each tenant's written rows add up to (storage rows add
    nothing) once they are written: the quota gate charges the tokens to token rate limits and
    reads those tenants' totals afresh. ``pending`` is what is counted but not yet written,
    which the quota gate adds to the database's totals.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        *,
        jobs_dir: Path,
        flush_seconds: float = 1.0,
        after_flush: Callable[[dict[str, Counts]], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.read_sessions = read_sessions
        self.jobs_dir = jobs_dir
        self.flush_seconds = flush_seconds
        self.after_flush = after_flush
        self._pending: dict[BucketKey, Counts] = {}
        self._flushing: dict[BucketKey, Counts] = {}
        self._dirty_storage: set[str] = set()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def record_request(
        self,
        tenant_id: str,
        model: str,
        *,
        prompt_tokens: int,
        completion_tokens: int = 0,
        at: float | None = None,
    ) -> None:
        """Count one answered inference request (never blocks on the database)."""
        key = (tenant_id, "request", model[:255], minute_of(time.time() if at is None else at))
        with self._lock:
            counts = self._pending.setdefault(key, Counts())
            counts.requests += 1
            counts.prompt_tokens += prompt_tokens
            counts.completion_tokens += completion_tokens
        self._start()

    def drop_tenant(self, tenant_id: str) -> None:
        """Forget what is counted for a deleted tenant and not written yet."""
        with self._lock:
            for key in [k for k in self._pending if k[0] == tenant_id]:
                del self._pending[key]
            self._dirty_storage.discard(tenant_id)

    def touch_storage(self, tenant_id: str) -> None:
        """Measure this tenant's storage at the next flush (after an upload or a deletion)."""
        with self._lock:
            self._dirty_storage.add(tenant_id)
        self._start()

    def pending(self, tenant_id: str, *, since: float) -> Counts:
        """What this process counted for the tenant from ``since`` on and has not written yet."""
        total = Counts()
        with self._lock:
            for table in (self._pending, self._flushing):
                for (tenant, kind, _model, minute), counts in table.items():
                    if tenant == tenant_id and kind != "storage" and minute + 60 > since:
                        total.add(counts)
        return total

    def flush(self) -> int:
        """Write what is pending in one transaction; the buckets written (0 when none)."""
        with self._flush_lock:
            with self._lock:
                self._flushing, self._pending = self._pending, {}
                dirty, self._dirty_storage = self._dirty_storage, set()
                rows = dict(self._flushing)
            try:
                if dirty:
                    with read_scope(self.read_sessions) as session:
                        at = minute_of(time.time())
                        for tenant_id in sorted(dirty):
                            stored = measure_storage(
                                session, tenant_id=tenant_id, jobs_dir=self.jobs_dir
                            )
                            rows[(tenant_id, "storage", "", at)] = Counts(bytes=stored)
                if rows:
                    with session_scope(self.sessions) as session:
                        write_buckets(session, rows)
            except Exception:  # database away: keep the counts for the next flush
                log.exception(
                    "usage not written yet (%d buckets kept for the next flush)", len(rows)
                )
                with self._lock:
                    for key, counts in self._flushing.items():
                        self._pending.setdefault(key, Counts()).add(counts)
                    self._flushing = {}
                    self._dirty_storage |= dirty
                return 0
            with self._lock:
                self._flushing = {}
        if self.after_flush is not None:
            by_tenant: dict[str, Counts] = {}
            for (tenant_id, kind, _model, _minute), counts in rows.items():
                total = by_tenant.setdefault(tenant_id, Counts())
                if kind != "storage":
                    total.add(counts)
            self.after_flush(by_tenant)
        return len(rows)

    def _start(self) -> None:
        if self._thread is not None or self._stopped.is_set():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="usage-flush", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the flush thread and write what is left (the app's shutdown)."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
        # An app started again (a second lifespan) starts a new thread on its next request.
        with self._lock:
            self._thread = None
            self._stopped.clear()


def _trained_tokens(session: Session, job: Job) -> int:
    """A finished job's training tokens: its result's, or the last metrics event's when it
    failed or was cancelled part-way (the training loop reports the running total)."""
    if job.status == "succeeded" and job.result and "trained_tokens" in job.result:
        return int(job.result["trained_tokens"] or 0)
    data = session.scalar(
        select(JobEvent.data)
        .where(JobEvent.job_id == job.id, JobEvent.type == "metrics")
        .order_by(JobEvent.seq.desc())
        .limit(1)
    )
    return int((data or {}).get("trained_tokens") or 0)


class JobMeter:
    """The compute seconds of one job attempt, and the job's training tokens when it ends."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        job_id: str,
        tenant_id: str,
        job_kind: str,
        spec: dict[str, Any],
        jobs_dir: Path,
        every: float = JOB_FLUSH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.tenant_id = tenant_id
        self.kind = JOB_KINDS.get(job_kind, job_kind[:16])
        self.model = str(spec.get("model") or "")[:255] if self.kind == "training" else ""
        self.jobs_dir = jobs_dir
        self.every = every
        self.clock = clock
        self._since = clock()
        self._lock = threading.Lock()

    def _write(self, seconds: float, training_tokens: int = 0) -> None:
        key = (self.tenant_id, self.kind, self.model, minute_of(time.time()))
        with session_scope(self.sessions) as session:
            write_buckets(
                session, {key: Counts(compute_seconds=seconds, training_tokens=training_tokens)}
            )

    def tick(self) -> None:
        """Write the compute time so far when ``every`` seconds went by (the heartbeat's call)."""
        with self._lock:
            t = self.clock()
            if t - self._since < self.every:
                return
            seconds, self._since = t - self._since, t
        self._write(seconds)

    def close(self) -> None:
        """The attempt is over: write the rest of its time, and the training tokens if the job
        reached its final state (a job ends once, so they are counted once), then its storage."""
        with self._lock:
            t = self.clock()
            seconds, self._since = t - self._since, t
        with session_scope(self.sessions) as session:
            job = session.get(Job, self.job_id)
            tokens = _trained_tokens(session, job) if job is not None and job.status in FINAL else 0
        self._write(seconds, tokens)
        snapshot_storage(self.sessions, tenant_id=self.tenant_id, jobs_dir=self.jobs_dir)


def totals_since(session: Session, *, tenant_id: str, since: float) -> Counts:
    """A tenant's written use (every kind but storage) from the minute holding ``since`` on."""
    row = session.execute(
        select(*(func.coalesce(func.sum(getattr(UsageBucket, f)), 0) for f in ADDED)).where(
            UsageBucket.tenant_id == tenant_id,
            UsageBucket.kind != "storage",
            UsageBucket.minute >= minute_of(since),
        )
    ).one()
    return Counts.from_sums(row)


def latest_storage(session: Session, *, tenant_id: str, until: float | None = None) -> int:
    """The tenant's storage as last measured (at or before ``until``); 0 if never measured."""
    query = select(UsageBucket.bytes).where(
        UsageBucket.tenant_id == tenant_id, UsageBucket.kind == "storage"
    )
    if until is not None:
        query = query.where(UsageBucket.minute < until)
    return int(session.scalar(query.order_by(UsageBucket.minute.desc()).limit(1)) or 0)
