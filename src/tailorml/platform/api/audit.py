"""ASGI middleware: a request id on every request, and an audit event for the audited ones.

Outermost but for the metrics, so the guard's refusals (401, 403) are audited too and every
log line of a request carries its id. The id is the caller's ``X-Request-Id`` when it is a
short token (so a gateway's id follows the request), else a new ``req_...``; the answer
carries it in ``x-request-id``, as OpenAI's does.

Audited: every ``/admin`` request, and every ``/v1`` request but the inference calls (those
are metered per request instead; auditing each token-serving call would double the database
writes of the hottest path): every change, and every read of tenant data (files and their
content, datasets and their records, job events and checkpoints, models, usage, the audit
log itself). The event is written once the answer is sent and the request's own transaction
has ended (writing it before would wait on that transaction's SQLite write lock); a process
killed in between loses that one event, and a request whose answer never started has none.
A failed audit write is logged and counted (``tailorml_audit_write_failures_total``).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tailorml.platform import audit
from tailorml.platform.api.deps import PRINCIPAL_KEY
from tailorml.platform.auth import Principal
from tailorml.platform.key_scopes import INFERENCE_PATHS
from tailorml.platform.logs import REQUEST_ID

log = logging.getLogger("tailorml.audit")
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def audited(method: str, path: str) -> bool:
    if path == "/admin" or path.startswith("/admin/"):
        return True
    if not path.startswith("/v1/"):
        return False  # health, metrics, docs
    return not (method == "POST" and path in INFERENCE_PATHS)


def _action(scope: Scope, status: int) -> str:
    endpoint = scope.get("endpoint")
    if endpoint is not None and hasattr(endpoint, "__name__"):
        module = getattr(endpoint, "__module__", "") or ""
        return f"{module.rsplit('.', 1)[-1]}.{endpoint.__name__}"
    return {401: "refused.unauthenticated", 403: "refused.forbidden"}.get(status, "unrouted")


def entry_for(scope: Scope, status: int, request_id: str) -> audit.Entry:
    principal = scope.get("state", {}).get(PRINCIPAL_KEY)
    tenant = principal.tenant_id if isinstance(principal, Principal) else None
    params: dict[str, Any] = scope.get("path_params") or {}
    client = scope.get("client")
    return audit.Entry(
        chain=tenant or audit.OPERATOR_CHAIN,
        action=_action(scope, status),
        method=scope["method"],
        path=scope["path"],
        status=status,
        tenant_id=tenant,
        key_id=principal.key_id if isinstance(principal, Principal) else None,
        role=principal.role if isinstance(principal, Principal) else None,
        resource="/".join(str(v) for v in params.values()) or None,
        ip=client[0] if client else None,
        request_id=request_id,
        at_ms=int(time.time() * 1000),
    )


class AuditMiddleware:
    def __init__(self, app: ASGIApp, *, writer: Callable[[], audit.AuditWriter]):
        self.app = app
        self.writer = writer  # read per request: the app state's writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"),
            "",
        )
        request_id = incoming if _INCOMING_ID.match(incoming) else f"req_{secrets.token_hex(12)}"
        token = REQUEST_ID.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        wanted = audited(scope["method"], scope["path"])
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
                if wanted:  # handed to the writer thread: the answer does not wait for it
                    self.writer().submit(entry_for(scope, status, request_id))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
