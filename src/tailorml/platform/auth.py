"""Tenants and API keys.

A key is ``tk-<prefix>-<secret>``. Only an HMAC-SHA256 of the whole key
(keyed with the master secret) is stored; a request's key is found by its
prefix and compared with ``hmac.compare_digest`` in constant time. HMAC
rather than bcrypt because keys are 190-bit random strings: a slow hash
adds latency to every request and no protection against guessing.

A key has a scope (``platform/key_scopes.py``), may expire, and records when it was last
used. Rotation without downtime: create the new key, move clients to it while the old one
still works, then revoke the old one (or give it an ``expires_at``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, or_, select, update
from sqlalchemy.orm import Session

from tailorml.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from tailorml.platform.db.models import ApiKey, Tenant, now
from tailorml.platform.key_scopes import check_scope_name

TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# What ``_new_key`` makes: 16 hex digits of prefix, then token_urlsafe(24) (32 characters). The
# secret part may be a little longer so keys made by a future generator still parse; anything
# else is refused before the database sees it (a NUL or an over-long prefix would reach a query).
KEY_FORMAT = re.compile(r"^tk-([0-9a-f]{16})-[A-Za-z0-9_-]{16,128}$")
KEY_NAME_MAX = 64  # the api_keys.name column
MAX_EXPIRY_DAYS = 3650
# ``last_used_at`` is written at most this often per key: a key check stays a read.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant's key, or an admin key (``tenant_id`` None)."""

    role: str
    tenant_id: str | None
    tenant_name: str | None
    scope: str = "all"
    key_id: str | None = None  # None for the configured TAILOR_ADMIN_KEY
    last_used_at: int | None = None


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


def iso(ts: int | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def create_key_row(
    session: Session,
    *,
    secret: str,
    tenant: Tenant | None,
    name: str = "",
    scope: str = "all",
    expires_in_days: float | None = None,
) -> tuple[str, ApiKey]:
    """Create a key for ``tenant`` (or an admin key when None); the key (shown once) and its row."""
    if len(name) > KEY_NAME_MAX or any(not c.isprintable() for c in name):
        raise InvalidRequestError(
            f"A key name is at most {KEY_NAME_MAX} printable characters; got {len(name)}.",
            param="name",
        )
    check_scope_name(scope)
    if tenant is None and scope != "all":
        raise InvalidRequestError(
            "An admin key always has the 'all' scope; scopes are for tenant keys.", param="scope"
        )
    expires_at = None
    if expires_in_days is not None:
        if not 0 < expires_in_days <= MAX_EXPIRY_DAYS:
            raise InvalidRequestError(
                f"expires_in_days must be more than 0 and at most {MAX_EXPIRY_DAYS}; "
                f"got {expires_in_days}. Leave it out for a key that does not expire.",
                param="expires_in_days",
            )
        expires_at = now() + round(expires_in_days * 86400)
    key, prefix = _new_key()
    row = ApiKey(
        tenant_id=tenant.id if tenant else None,
        role="tenant" if tenant else "admin",
        prefix=prefix,
        key_hash=hash_key(key, secret),
        name=name,
        scope=scope,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return key, row


def create_key(
    session: Session,
    *,
    secret: str,
    tenant: Tenant | None,
    name: str = "",
    scope: str = "all",
    expires_in_days: float | None = None,
) -> str:
    """Create a key for ``tenant`` (or an admin key when None); return it (shown only once)."""
    key, _ = create_key_row(
        session,
        secret=secret,
        tenant=tenant,
        name=name,
        scope=scope,
        expires_in_days=expires_in_days,
    )
    return key


def get_key(session: Session, *, prefix_or_id: str) -> ApiKey:
    """A key by its prefix, its id (``key_...``) or the whole key; never by a partial secret."""
    match = KEY_FORMAT.match(prefix_or_id)
    wanted = match.group(1) if match else prefix_or_id
    row = session.scalar(select(ApiKey).where((ApiKey.prefix == wanted) | (ApiKey.id == wanted)))
    if row is None:
        raise NotFoundError(
            f"No key with prefix or id {prefix_or_id[:40]!r}; list them with `tailor admin key list`."
        )
    return row


def list_keys(session: Session, *, tenant: Tenant | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.prefix)
    if tenant is not None:
        query = query.where(ApiKey.tenant_id == tenant.id)
    return list(session.scalars(query))


def key_object(row: ApiKey, tenant_name: str | None) -> dict[str, object]:
    """A key as the admin API and CLI show it: never its secret or hash."""
    return {
        "id": row.id,
        "object": "api_key",
        "prefix": row.prefix,
        "name": row.name,
        "role": row.role,
        "tenant": tenant_name,
        "scope": row.scope,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
    }


def revoke_key(session: Session, *, prefix: str) -> ApiKey:
    """Revoke a key by prefix or id; revoking a revoked key keeps its first revocation time."""
    row = get_key(session, prefix_or_id=prefix)
    if row.revoked_at is None:
        row.revoked_at = now()
    return row


def touch_last_used(conn: Connection, *, key_id: str, at: int | None = None) -> bool:
    """Set a key's ``last_used_at`` unless it was set within the last minute; True if written.

    Run it in its own short transaction, never in the read session of the key check. The
    ``WHERE`` makes concurrent requests (and API replicas) write at most once a minute.
    """
    at = now() if at is None else at
    result = conn.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where(
            or_(
                ApiKey.last_used_at.is_(None),
                ApiKey.last_used_at <= at - LAST_USED_RESOLUTION_SECONDS,
            )
        )
        .values(last_used_at=at)
    )
    return bool(result.rowcount)


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
    # Only after the secret matched, so an expiry tells nothing to someone without the key.
    if row.expires_at is not None and row.expires_at <= now():
        raise AuthenticationError(
            f"This API key (tk-{row.prefix}-...) expired at {iso(row.expires_at)}. Use a newer "
            "key; an operator creates one with `tailor admin key create --tenant NAME`.",
            code="expired_api_key",
        )
    if row.role == "admin":
        return Principal("admin", None, None, key_id=row.id, last_used_at=row.last_used_at)
    tenant = session.get(Tenant, row.tenant_id)
    assert tenant is not None  # foreign key
    if tenant.disabled_at is not None:
        raise PermissionDeniedError(
            f"The tenant {tenant.name!r} was disabled by the operator at "
            f"{iso(tenant.disabled_at)}; its keys are refused until the operator enables it "
            "again (`tailor admin tenant enable`).",
            code="tenant_disabled",
        )
    return Principal(
        "tenant",
        tenant.id,
        tenant.name,
        scope=row.scope,
        key_id=row.id,
        last_used_at=row.last_used_at,
    )
