"""Keys: stored hashed, looked up by prefix, compared in constant time; 401 without a valid key."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tailorml.errors import AuthenticationError, ConflictError, InvalidRequestError
from tailorml.platform import auth
from tailorml.platform.db.engine import make_engine, make_sessionmaker, migrate, session_scope
from tailorml.platform.db.models import ApiKey


@pytest.fixture
def sessions(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    migrate(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_key_is_stored_hashed_and_authenticates(sessions) -> None:  # type: ignore[no-untyped-def]
    with session_scope(sessions) as s:
        tenant = auth.create_tenant(s, name="acme")
        key = auth.create_key(s, secret="s3cret", tenant=tenant)
    with session_scope(sessions) as s:
        row = s.scalar(select(ApiKey))
        assert key not in (row.key_hash, row.prefix) and key.split("-", 2)[2] not in row.key_hash
        who = auth.authenticate(s, key=key, secret="s3cret")
        assert (who.role, who.tenant_name) == ("tenant", "acme")
        with pytest.raises(AuthenticationError):
            auth.authenticate(s, key=key, secret="another-secret")
        with pytest.raises(AuthenticationError):
            auth.authenticate(s, key=key[:-1] + ("A" if key[-1] != "A" else "B"), secret="s3cret")


def test_revoked_key_and_admin_key(sessions) -> None:  # type: ignore[no-untyped-def]
    with session_scope(sessions) as s:
        tenant = auth.create_tenant(s, name="acme")
        key = auth.create_key(s, secret="x", tenant=tenant)
        admin = auth.create_key(s, secret="x", tenant=None)
        auth.revoke_key(s, prefix=key.split("-")[1])
    with session_scope(sessions) as s:
        with pytest.raises(AuthenticationError):
            auth.authenticate(s, key=key, secret="x")
        assert auth.authenticate(s, key=admin, secret="x").role == "admin"


def test_tenant_names_are_checked(sessions) -> None:  # type: ignore[no-untyped-def]
    with session_scope(sessions) as s:
        auth.create_tenant(s, name="acme")
        with pytest.raises(ConflictError):
            auth.create_tenant(s, name="acme")
        with pytest.raises(InvalidRequestError, match="lowercase"):
            auth.create_tenant(s, name="Acme Corp")


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic abc", "Bearer tk-0000000000000000-wrong", "Bearer not-a-key"],
)
def test_v1_needs_a_valid_key(client, header) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": header} if header else {}
    res = client.get("/v1/models", headers=headers)
    assert res.status_code == 401
    err = res.json()["error"]
    assert err["type"] == "invalid_request_error" and isinstance(err["code"], str)


def test_admin_routes_refuse_tenant_keys(client, acme) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/admin/tenants", headers=acme)
    assert res.status_code == 403
    assert (
        client.get("/admin/tenants", headers={"Authorization": "Bearer admin-test-key"}).status_code
        == 200
    )
