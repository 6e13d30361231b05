"""Tenants and API keys.

A key is ``tk-<prefix>-<secret>``. Only an HMAC-SHA256 of the whole key
(keyed with the master secret) is stored; a request's key is found by its
prefix and compared with ``hmac.compare_digest`` in constant time. HMAC
rather than bcrypt because keys are 190-bit random strings: a slow hash
adds latency to every request and no protection against guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailorml.errors import AuthenticationError, ConflictError, InvalidRequestError, NotFoundError
from tailorml.platform.db.models import ApiKey, Tenant, now

TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# What ``_new_key`` makes: 16 hex digits of prefix, then token_urlsafe(24) (32 characters). The
# secret part may be a little longer so keys made by a future generator still parse; anything
# else is refused before the database sees it (a NUL or an over-long prefix would reach a query).
KEY_FORMAT = re.compile(r"^tk-([0-9a-f]{16})-[A-Za-z0-9_-]{16,128}$")
KEY_NAME_MAX = 64  # the api_keys.name column


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant's key, or an admin key (``tenant_id`` None)."""

    role: str
    tenant_id: str | None
    tenant_name: str | None


def hash_key(key: str, secret: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def _new_key() -> tuple[str, str]:
    prefix = secrets.token_hex(8)
    return f"tk-{prefix}-{secrets.token_urlsafe(24)}", prefix


def create_tenant(session: Session, *, name: str) -> Tenant:
    if not TENANT_NAME.match(name):
        raise InvalidRequestError(
            f"Tenant name {name!r} is not valid: use 1-63 lowercase letters, digits and hyphens, "
            "starting with a letter or digit.",
            param="name",
        )
    if session.scalar(select(Tenant).where(Tenant.name == name)):
        raise ConflictError(f"A tenant named {name!r} already exists.", param="name")
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, *, name_or_id: str) -> Tenant:
    tenant = session.scalar(
        select(Tenant).where((Tenant.name == name_or_id) | (Tenant.id == name_or_id))
    )
    if tenant is None:
        raise NotFoundError(f"No tenant {name_or_id!r}; list them with `tailor admin tenant list`.")
    return tenant


def create_key(session: Session, *, secret: str, tenant: Tenant | None, name: str = "") -> str:
    """Create a key for ``tenant`` (or an admin key when None); return it (shown only once)."""
    if len(name) > KEY_NAME_MAX or any(not c.isprintable() for c in name):
        raise InvalidRequestError(
            f"A key name is at most {KEY_NAME_MAX} printable characters; got {len(name)}.",
            param="name",
        )
    key, prefix = _new_key()
    session.add(
        ApiKey(
            tenant_id=tenant.id if tenant else None,
            role="tenant" if tenant else "admin",
            prefix=prefix,
            key_hash=hash_key(key, secret),
            name=name,
        )
    )
    session.flush()
    return key


def revoke_key(session: Session, *, prefix: str) -> None:
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise NotFoundError(f"No key with prefix {prefix!r}.")
    row.revoked_at = now()


def bearer_key(header: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header, or ``AuthenticationError``."""
    scheme, _, key = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'; "
            "an operator creates one with `tailor admin tenant create NAME`.",
            code="missing_api_key",
        )
    return key.strip()


def authenticate_header(
    session: Session, *, header: str | None, secret: str, admin_key: str = ""
) -> Principal:
    """The principal of a request's ``Authorization`` header, or ``AuthenticationError``."""
    return authenticate(session, key=bearer_key(header), secret=secret, admin_key=admin_key)


def authenticate(session: Session, *, key: str, secret: str, admin_key: str = "") -> Principal:
    """The principal a bearer key belongs to, or ``AuthenticationError``."""
    if admin_key and hmac.compare_digest(key.encode(), admin_key.encode()):
        return Principal("admin", None, None)
    match = KEY_FORMAT.match(key)
    if match is None:
        raise AuthenticationError(
            "Incorrect API key provided. Keys look like tk-<prefix>-<secret>."
        )
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == match.group(1)))
    expected = row.key_hash if row else hash_key("decoy", secret)
    # Compare even when no row matched so both paths take the same time.
    ok = hmac.compare_digest(hash_key(key, secret), expected) and row is not None
    if not ok or row is None or row.revoked_at is not None:
        raise AuthenticationError("Incorrect API key provided.")
    if row.role == "admin":
        return Principal("admin", None, None)
    tenant = session.get(Tenant, row.tenant_id)
    assert tenant is not None  # foreign key
    return Principal("tenant", tenant.id, tenant.name)
