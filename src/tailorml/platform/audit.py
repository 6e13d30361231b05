"""The audit log: who did what, when, from where; append-only, hash-chained, exportable.

Every change and every read of tenant data through the API is one ``AuditEvent`` (the
middleware in ``platform/api/audit.py`` decides which requests and hands each event to the
``AuditWriter`` below, which writes it within milliseconds; operator commands write theirs in
the change's own transaction).
Events form one chain per
tenant, plus an ``operator`` chain for admin requests and refused callers: each event holds
the hash of the one before it and its own hash over its fields, and the chain's head
(``AuditHead``) holds the last sequence number and hash. ``verify`` recomputes the chain, so
an edited row (its hash no longer matches), a removed row (a gap in the sequence, or a
``prev_hash`` that does not match) and a removed tail (the head is ahead of the last row) are
all found. The head row is also the lock that orders appends across API processes: ``SELECT
... FOR UPDATE`` on PostgreSQL; on SQLite every write transaction is already exclusive.

What this does not stop: someone with write access to the database who rewrites a whole
chain and its head. Exported chains (``tailor admin audit export``) kept elsewhere detect
that too: their last hash must appear in the live chain at the same sequence number.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import AuditEvent, AuditHead

log = logging.getLogger("tailorml.audit")
OPERATOR_CHAIN = "operator"
GENESIS = "0" * 64
# The fields each event's hash covers, in this order (changing it changes every hash).
HASHED = (
    "chain",
    "seq",
    "at",
    "tenant_id",
    "key_id",
    "role",
    "action",
    "method",
    "path",
    "resource",
    "status",
    "ip",
    "request_id",
    "prev_hash",
)


@dataclass(frozen=True)
class Entry:
    """One event to append (what the middleware knows about a request)."""

    chain: str
    action: str
    method: str
    path: str
    status: int
    tenant_id: str | None = None
    key_id: str | None = None
    role: str | None = None
    resource: str | None = None
    ip: str | None = None
    request_id: str | None = None
    at_ms: int | None = None  # when it happened; None: when it is appended


def event_hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps(
        [fields.get(name) for name in HASHED], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fields(row: AuditEvent) -> dict[str, Any]:
    return {name: getattr(row, name) for name in HASHED}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: str | None, limit: int) -> str | None:
    """``value`` as stored: control characters written as ``\\xNN`` (PostgreSQL refuses a NUL
    in text, and a refused path is exactly what an audit log must keep), cut to ``limit``."""
    if not value:
        return None
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)[:limit]


def append(session: Session, entry: Entry) -> AuditEvent:
    """Append one event to its chain in ``session``'s transaction (committed by the caller)."""
    head = session.scalars(
        select(AuditHead).where(AuditHead.chain == entry.chain).with_for_update()
    ).one_or_none()
    if head is None:
        head = AuditHead(chain=entry.chain, seq=0, hash=GENESIS)
        with session.begin_nested():  # another process may create the same head meanwhile
            session.add(head)
    row = AuditEvent(
        chain=entry.chain,
        seq=head.seq + 1,
        at=entry.at_ms if entry.at_ms is not None else int(time.time() * 1000),
        tenant_id=entry.tenant_id,
        key_id=entry.key_id,
        role=entry.role,
        action=_text(entry.action, 64) or "",
        method=_text(entry.method, 8) or "",
        path=_text(entry.path, 512) or "",
        resource=_text(entry.resource, 255),
        status=entry.status,
        ip=_text(entry.ip, 64),
        request_id=_text(entry.request_id, 64),
        prev_hash=head.hash,
    )
    row.hash = event_hash(_fields(row))
    session.add(row)
    head.seq, head.hash = row.seq, row.hash
    session.flush()
    return row


def record(factory: sessionmaker[Session], entry: Entry, *, attempts: int = 3) -> AuditEvent:
    """Append in a transaction of its own; retried when a first event of a new chain raced."""
    for attempt in range(attempts):
        try:
            with session_scope(factory) as session:
                row = append(session, entry)
                session.expunge(row)
                return row
        except IntegrityError:
            if attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")


class AuditWriter:
    """Appends the API's audit events on a thread of its own, a batch per transaction.

    A request hands its event over and is done: it never waits on the database (a busy
    SQLite writer would otherwise hold every audited request for its busy timeout). Events
    are written within milliseconds, in the order they were handed over; a failed write is
    retried with backoff and counted (``on_failure``), keeping up to ``max_pending`` events
    (past that the oldest are dropped, and counted). Readers in this process call ``flush``
    first so they see their own requests; ``close`` writes what is left before the process
    ends. A process killed outright loses the events it had not written yet.
    """

    BATCH = 500

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        on_failure: Callable[[int], None] | None = None,
        max_pending: int = 100_000,
    ) -> None:
        self.factory = factory
        self.on_failure = on_failure or (lambda _n: None)
        self.max_pending = max_pending
        self._queue: deque[Entry] = deque()
        self._busy = 0  # events taken from the queue, not yet written
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tailorml-audit", daemon=True)
        self._thread.start()

    def submit(self, entry: Entry) -> None:
        with self._cond:
            if len(self._queue) >= self.max_pending:
                self._queue.popleft()
                self.on_failure(1)
            self._queue.append(entry)
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event handed over so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        delay = 0.1
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(self.BATCH, len(self._queue)))]
                self._busy = len(batch)
            try:
                try:
                    with session_scope(self.factory) as session:
                        for entry in batch:
                            append(session, entry)
                except OperationalError:
                    raise
                except Exception:  # noqa: BLE001 - one event the database refuses: find it
                    self._write_one_by_one(batch)
                delay = 0.1
            except Exception:  # noqa: BLE001 - the database may be busy or away: retry
                log.exception("Audit events not written yet (%d); retrying", len(batch))
                self.on_failure(len(batch))
                with self._cond:
                    self._queue.extendleft(reversed(batch))
                    self._busy = 0
                    if self._closed:
                        return
                    self._cond.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            with self._cond:
                self._busy = 0
                self._cond.notify_all()

    def _write_one_by_one(self, batch: list[Entry]) -> None:
        """Write ``batch`` an event at a time, dropping (logged, counted) each event the
        database refuses by itself, so one bad event cannot hold every later one back. A
        database that is busy or away (``OperationalError``) stops it, leaving in ``batch``
        only the events not written yet."""
        for done, entry in enumerate(list(batch)):
            try:
                record(self.factory, entry)
            except OperationalError:
                del batch[:done]  # those are written: the caller retries the rest
                raise
            except Exception:  # noqa: BLE001 - this event's content, not the database
                log.exception(
                    "Audit event dropped: the database refused it (%s %s, chain %s)",
                    entry.method,
                    entry.path[:80].encode("unicode_escape").decode(),
                    entry.chain,
                )
                self.on_failure(1)


def event_object(row: AuditEvent) -> dict[str, Any]:
    return {
        "object": "audit_event",
        "id": f"{row.chain}:{row.seq}",
        "created_at": row.at // 1000,
        **{name: getattr(row, name) for name in HASHED},
        "hash": row.hash,
    }


def events(
    session: Session, chain: str, *, after: int = 0, limit: int | None = None
) -> Iterator[AuditEvent]:
    query = (
        select(AuditEvent)
        .where(AuditEvent.chain == chain, AuditEvent.seq > after)
        .order_by(AuditEvent.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    yield from session.scalars(query)


def verify(session: Session, chain: str) -> dict[str, Any]:
    """Recompute the chain: ``{"chain", "events", "ok", "problems": [...]}`` (at most 20)."""
    problems: list[dict[str, Any]] = []
    expected_prev, expected_seq, count = GENESIS, 1, 0
    for row in session.scalars(
        select(AuditEvent).where(AuditEvent.chain == chain).order_by(AuditEvent.seq)
    ).yield_per(1000):
        count += 1
        if row.seq != expected_seq:
            problems.append(
                {"seq": expected_seq, "problem": f"events {expected_seq}..{row.seq - 1} missing"}
            )
        elif row.prev_hash != expected_prev:
            problems.append({"seq": row.seq, "problem": "does not follow the event before it"})
        if event_hash(_fields(row)) != row.hash:
            problems.append({"seq": row.seq, "problem": "edited: its hash does not match"})
        expected_prev, expected_seq = row.hash, row.seq + 1
        if len(problems) >= 20:
            break
    head = session.get(AuditHead, chain)
    if head is not None and len(problems) < 20:
        if head.seq != expected_seq - 1:
            problems.append(
                {"seq": expected_seq, "problem": f"events {expected_seq}..{head.seq} missing"}
            )
        elif head.hash != expected_prev:
            problems.append({"seq": head.seq, "problem": "the chain's head does not match"})
    elif head is None and count:
        problems.append({"seq": 0, "problem": "the chain's head is missing"})
    return {"chain": chain, "events": count, "ok": not problems, "problems": problems}


def forget_chain(session: Session, chain: str) -> int:
    """Remove a deleted tenant's chain (its deletion stays recorded in the operator chain)."""
    removed = session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.chain == chain)
    )
    session.execute(delete(AuditEvent).where(AuditEvent.chain == chain))
    session.execute(delete(AuditHead).where(AuditHead.chain == chain))
    return int(removed or 0)
