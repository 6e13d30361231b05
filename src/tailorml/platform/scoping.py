"""The one query helper that enforces the tenant on every read.

Another tenant's object answers exactly like a missing one (404 with the
same message), so ids cannot be probed across tenants.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tailorml.errors import NotFoundError

T = TypeVar("T")


def get_owned(
    session: Session,
    model: type[T],
    object_id: str,
    *,
    tenant_id: str,
    what: str,
    param: str | None = None,
) -> T:
    obj = session.get(model, object_id)
    if obj is None or obj.tenant_id != tenant_id:
        raise NotFoundError(
            f"No such {what}: {object_id!r}.",
            param=param,
            code=f"{what.replace(' ', '_')}_not_found",
        )
    return obj


def owned(model: type[T], *, tenant_id: str) -> Select[tuple[T]]:
    """``SELECT model WHERE tenant_id = ...``: the start of every tenant list query."""
    column: Any = model.tenant_id
    return select(model).where(column == tenant_id)
