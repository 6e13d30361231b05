"""``Idempotency-Key`` on creating requests: a retry answers the object the first try made.

The OpenAI SDKs retry a request that timed out or met a 5xx; without a key the retry of a
fine-tuning job creation makes a second job. With one, the first request's answer is stored
in the same transaction as the object it created, so the two are committed together or not
at all: a retry after a crash either finds both or makes the object anew, never half.

- Same key, same endpoint, same content: the stored answer, with ``Idempotent-Replayed: true``.
- Same key on another endpoint or with other content: 409 ``idempotency_key_reused``.
- A request that failed (4xx or 5xx) stores nothing, so a corrected retry with the same key
  goes through.
- Two requests with one key at the same moment: on SQLite writers are serialized, so the
  second sees the first's answer; on PostgreSQL the second's insert waits for the first's
  commit and then answers 409 ``idempotency_key_in_use`` (its own object rolled back), and
  its retry gets the stored answer.

Keys are per tenant, up to 255 printable ASCII characters, and kept for
``RETENTION_SECONDS`` (a day, as Stripe does); an older key counts as new. Rows older than
that are pruned by the request that finds them and by tenant deletion.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tailorml.errors import ConflictError, InvalidRequestError
from tailorml.platform.db.models import IdempotencyKey, now

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETENTION_SECONDS = 24 * 3600
MAX_KEY_CHARS = 255
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


def check_key(key: str | None) -> str | None:
    """The header's value when it is a usable key; 400 naming the header otherwise."""
    if key is None:
        return None
    if not _KEY.match(key):
        raise InvalidRequestError(
            f"The {HEADER} header must be 1 to {MAX_KEY_CHARS} printable ASCII characters "
            "without spaces (a UUID is a good choice).",
            param=HEADER,
            code="invalid_idempotency_key",
        )
    return key


def fingerprint(content: Any) -> str:
    """sha256 of the request's content as canonical JSON (key order and spacing do not count)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def replay(
    session: Session, *, tenant_id: str, key: str, endpoint: str, digest: str
) -> dict[str, Any] | None:
    """The stored answer to an earlier request with this key; None when there is none.

    Raises 409 when the key was used on another endpoint or with other content.
    """
    row = session.get(IdempotencyKey, (tenant_id, key))
    if row is None:
        return None
    if row.created_at < now() - RETENTION_SECONDS:
        session.delete(row)
        session.flush()
        return None
    if row.endpoint != endpoint or row.fingerprint != digest:
        raise ConflictError(
            f"The {HEADER} {key!r} was already used for a different request "
            f"({row.endpoint}, other content); use a new key for a new request.",
            param=HEADER,
            code="idempotency_key_reused",
        )
    return dict(row.response)


def remember(
    session: Session,
    *,
    tenant_id: str,
    key: str,
    endpoint: str,
    digest: str,
    response: dict[str, Any],
) -> None:
    """Store the answer in the request's transaction (committed with the object it describes)."""
    row = IdempotencyKey(
        tenant_id=tenant_id, key=key, endpoint=endpoint, fingerprint=digest, response=response
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another request with this key committed meanwhile (PostgreSQL): this one's object
        # must not be committed beside it.
        raise ConflictError(
            f"Another request with the {HEADER} {key!r} was being processed at the same time; "
            "retry this request to receive that request's result.",
            param=HEADER,
            code="idempotency_key_in_use",
        ) from None


def forget_tenant(session: Session, tenant_id: str) -> None:
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id))
