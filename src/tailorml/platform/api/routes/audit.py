"""The audit log (``platform/audit.py``): a tenant reads and verifies its own chain at
/v1/audit_logs (TailorML extension); an operator reads, verifies and exports any chain,
the ``operator`` chain included, at /admin/audit/{chain}."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from tailorml.platform import audit, auth
from tailorml.platform.api.deps import AdminDep, ReadSessionDep, StateDep, TenantDep
from tailorml.platform.db.engine import read_scope

router = APIRouter(prefix="/v1/audit_logs", tags=["audit"])
admin_router = APIRouter(prefix="/admin/audit", tags=["admin"])


def _page(session: ReadSessionDep, chain: str, after: int, limit: int) -> dict[str, Any]:
    rows = list(audit.events(session, chain, after=after, limit=limit + 1))
    data = [audit.event_object(r) for r in rows[:limit]]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(rows) > limit,
        "next_after": data[-1]["seq"] if data else after,
    }


@router.get("")
def list_audit_events(
    session: ReadSessionDep,
    state: StateDep,
    tenant_id: TenantDep,
    after: int = Query(0, ge=0, le=2**62, description="The `seq` of the last event read."),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Your tenant's audit events, oldest first."""
    state.audit.flush()  # this process's requests so far, the caller's included
    return _page(session, tenant_id, after, limit)


@router.get("/verify")
def verify_audit_log(
    session: ReadSessionDep, state: StateDep, tenant_id: TenantDep
) -> dict[str, Any]:
    """Recompute your tenant's hash chain: ``ok`` false lists what was edited or removed."""
    state.audit.flush()
    return {"object": "audit_verification", **audit.verify(session, tenant_id)}


def _chain(session: ReadSessionDep, chain: str) -> str:
    if chain == audit.OPERATOR_CHAIN:
        return chain
    return auth.get_tenant(session, name_or_id=chain).id


@admin_router.get("/{chain}")
def admin_list_audit_events(
    chain: str,
    session: ReadSessionDep,
    state: StateDep,
    _: AdminDep,
    after: int = Query(0, ge=0, le=2**62),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """A tenant's chain (name or id) or the ``operator`` chain, oldest first."""
    state.audit.flush()
    return _page(session, _chain(session, chain), after, limit)


@admin_router.get("/{chain}/verify")
def admin_verify_audit_log(
    chain: str, session: ReadSessionDep, state: StateDep, _: AdminDep
) -> dict[str, Any]:
    state.audit.flush()
    return {"object": "audit_verification", **audit.verify(session, _chain(session, chain))}


@admin_router.get("/{chain}/export")
def export_audit_log(
    chain: str, session: ReadSessionDep, state: StateDep, _: AdminDep
) -> StreamingResponse:
    """The whole chain as JSON lines, read in its own session while it streams."""
    state.audit.flush()
    chain_id = _chain(session, chain)

    def lines() -> Iterator[bytes]:
        with read_scope(state.read_sessions) as reader:
            for row in audit.events(reader, chain_id):
                yield (json.dumps(audit.event_object(row), ensure_ascii=False) + "\n").encode()

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-{chain_id}.jsonl"'},
    )
