"""The ``Idempotency-Key`` header on the creating routes (``platform/idempotency.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header, Response
from sqlalchemy.orm import Session

from tailorml.platform import idempotency

IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="A key of your choosing (a UUID): retrying with it answers the object the "
        "first request created instead of creating another; kept for 24 hours.",
    ),
]


def create_once(
    session: Session,
    response: Response,
    *,
    tenant_id: str,
    key: str | None,
    endpoint: str,
    content: Any,
    create: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """``create()``'s answer, or the answer stored for this key when it was sent before."""
    key = idempotency.check_key(key)
    if key is None:
        return create()
    digest = idempotency.fingerprint(content)
    stored = idempotency.replay(
        session, tenant_id=tenant_id, key=key, endpoint=endpoint, digest=digest
    )
    if stored is not None:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
        return stored
    answer = create()
    idempotency.remember(
        session, tenant_id=tenant_id, key=key, endpoint=endpoint, digest=digest, response=answer
    )
    return answer
