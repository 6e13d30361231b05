"""Dependency aliases for the routers: the session, the app state, and the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tailorml.errors import AuthenticationError, PermissionDeniedError
from tailorml.platform.api.state import AppState
from tailorml.platform.auth import Principal, authenticate
from tailorml.platform.db.engine import session_scope


def get_state(request: Request) -> AppState:
    return request.app.state.tailor


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with session_scope(state.sessions) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(request: Request, state: StateDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'; "
            "an operator creates one with `tailor admin tenant create NAME`.",
            code="missing_api_key",
        )
    with session_scope(state.sessions) as session:
        return authenticate(
            session,
            key=key.strip(),
            secret=state.settings.secret(),
            admin_key=state.settings.admin_key,
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
