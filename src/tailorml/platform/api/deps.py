"""Dependency aliases for the routers: the session, the app state, and the caller.

The caller is authenticated once per request, by the request guard before any
body byte is read (``tailorml.platform.api.guard``); ``get_principal`` reuses
that result and authenticates by itself only for a route the guard left public.
A key check is a read: it runs in a read session, which on SQLite takes no
lock, so a busy writer (a worker claiming a job) never stalls requests.
``ReadSessionDep`` is the same kind of session for routes that only read.

A key's ``last_used_at`` is the one write a key check may cause: at most once a minute per
key, in a separate short transaction that gives up at once when SQLite is busy (the time is
then written by a later request).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tailorml.errors import PermissionDeniedError
from tailorml.platform.api.state import AppState
from tailorml.platform.auth import (
    LAST_USED_RESOLUTION_SECONDS,
    Principal,
    authenticate_header,
    touch_last_used,
)
from tailorml.platform.db.engine import read_scope, session_scope
from tailorml.platform.db.models import now
from tailorml.platform.key_scopes import check_scope

log = logging.getLogger("tailorml.api")
# How long the last-used write may wait for a lock: it is bookkeeping, not worth a delay.
SQLITE_TOUCH_BUSY_MS = 0
POSTGRES_TOUCH_LOCK_TIMEOUT = "100ms"
SQLITE_BUSY_MS = 30000  # engine.py's busy timeout, restored on the pooled connection

PRINCIPAL_KEY = "tailorml.principal"  # where the guard leaves the caller in the ASGI scope state


def get_state(request: Request) -> AppState:
    return request.app.state.tailor


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with session_scope(state.sessions) as session:
        yield session


# Committed before the response is sent (scope "function"): a client that reads what it just
# created, at once and even through another replica, finds it; and nothing after the answer
# (the audit event, the next request on the connection) waits on this transaction's lock.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_read_session(state: StateDep) -> Iterator[Session]:
    with read_scope(state.read_sessions) as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def record_use(state: AppState, principal: Principal) -> bool:
    """Write the key's ``last_used_at`` when it is a minute old or unset; True if written."""
    at = now()
    if principal.key_id is None or (
        principal.last_used_at is not None
        and at - principal.last_used_at < LAST_USED_RESOLUTION_SECONDS
    ):
        return False
    sqlite = state.engine.dialect.name == "sqlite"
    with state.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None  # a checked-out pooled connection
        if sqlite:  # before BEGIN IMMEDIATE, which would otherwise wait out the busy timeout
            raw.execute(f"PRAGMA busy_timeout={SQLITE_TOUCH_BUSY_MS}")
        try:
            with conn.begin():
                if not sqlite:
                    conn.execute(text(f"SET LOCAL lock_timeout = '{POSTGRES_TOUCH_LOCK_TIMEOUT}'"))
                return touch_last_used(conn, key_id=principal.key_id, at=at)
        except OperationalError as exc:  # database is locked / lock timeout: skip this time
            log.debug("last_used_at of %s not written: %s", principal.key_id, exc.orig)
            return False
        finally:
            if sqlite:
                raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")


def authenticate_request(
    state: AppState, header: str | None, method: str | None = None, path: str | None = None
) -> Principal:
    """The caller of a request with this ``Authorization`` header (blocking: a database read).

    With ``method`` and ``path``, a tenant key whose scope does not cover them answers 403.
    """
    with read_scope(state.read_sessions) as session:
        principal = authenticate_header(
            session,
            header=header,
            secret=state.settings.secret(),
            admin_key=state.settings.admin_key,
        )
    record_use(state, principal)
    if method is not None and path is not None:
        check_scope(principal.scope, method, path)
    return principal


def get_principal(request: Request, state: StateDep) -> Principal:
    principal = request.scope.get("state", {}).get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        return principal
    return authenticate_request(
        state, request.headers.get("authorization"), request.method, request.url.path
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_tenant_id(principal: PrincipalDep) -> str:
    if principal.tenant_id is None:
        raise PermissionDeniedError("This route needs a tenant's key, not an admin key.")
    return principal.tenant_id


TenantDep = Annotated[str, Depends(get_tenant_id)]


def require_admin(principal: PrincipalDep) -> Principal:
    if principal.role != "admin":
        raise PermissionDeniedError("This route needs an admin key.")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
