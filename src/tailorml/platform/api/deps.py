"""Dependency aliases for the routers: the session, the app state, and the caller.

The caller is authenticated once per request, by the request guard before any
body byte is read (``tailorml.platform.api.guard``); ``get_principal`` reuses
that result and authenticates by itself only for a route the guard left public.
A key check is a read: it runs in a read session, which on SQLite takes no
lock, so a busy writer (a worker claiming a job) never stalls requests.
``ReadSessionDep`` is the same kind of session for routes that only read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tailorml.errors import PermissionDeniedError
from tailorml.platform.api.state import AppState
from tailorml.platform.auth import Principal, authenticate_header
from tailorml.platform.db.engine import read_scope, session_scope

PRINCIPAL_KEY = "tailorml.principal"  # where the guard leaves the caller in the ASGI scope state


def get_state(request: Request) -> AppState:
    return request.app.state.tailor


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with session_scope(state.sessions) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_read_session(state: StateDep) -> Iterator[Session]:
    with read_scope(state.read_sessions) as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def authenticate_request(state: AppState, header: str | None) -> Principal:
    """The caller of a request with this ``Authorization`` header (blocking: a database read)."""
    with read_scope(state.read_sessions) as session:
        return authenticate_header(
            session,
            header=header,
            secret=state.settings.secret(),
            admin_key=state.settings.admin_key,
        )


def get_principal(request: Request, state: StateDep) -> Principal:
    principal = request.scope.get("state", {}).get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        return principal
    return authenticate_request(state, request.headers.get("authorization"))


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
