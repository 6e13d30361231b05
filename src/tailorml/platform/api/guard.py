"""The request guard: a pure ASGI layer that bounds what a request may cost before a route runs.

For every HTTP request, in this order:

1. a path or query string with control characters (``%00`` and the like) answers 400;
2. every path that is not public is authenticated before a single body byte is read
   (FastAPI reads a whole multipart form before dependencies run, so without this a
   keyless 600 MB upload was received and spooled before its 401), and a key whose
   scope does not cover the method and path answers 403 (``platform/key_scopes.py``);
3. a declared ``Content-Length`` over the route's limit answers 413 at once, and a tenant
   over a quota or a rate limit 429 (the ``meter``, ``platform/quota_gate.py``), whose
   headers (``x-ratelimit-*``) the answer then carries;
4. the body is counted while it streams, chunked ones included: 413 as soon as the limit
   is passed, 408 when the client pauses longer than ``body_timeout_seconds`` between
   chunks or, after that grace, averages less than ``MIN_BODY_RATE``;
5. a JSON body is read (bounded by the limit) and refused with 400 when it nests deeper
   than ``max_json_depth``, before anything parses it;
6. an unhandled exception is logged and answered with a JSON 500.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs the app in a task
behind a memory stream: it cannot refuse in the middle of a body and answer in place of
the app. Every refusal is OpenAI's error shape, built by ``api.errors``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn, Protocol
from urllib.parse import unquote_to_bytes

import anyio
import anyio.to_thread
import numpy as np
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tailorml.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
    TailorError,
)
from tailorml.platform.api.deps import PRINCIPAL_KEY
from tailorml.platform.api.errors import error_response, internal_error_response
from tailorml.platform.auth import Principal
from tailorml.platform.settings import Settings

log = logging.getLogger("tailorml.api")

# Paths anyone may call. A prefix covers what is below it (``/docs/oauth2-redirect``).
PUBLIC_PATHS = ("/health", "/healthz", "/readyz", "/docs", "/redoc", "/openapi.json")
# Routes whose multipart body is a file, limited by ``max_upload_bytes`` instead.
UPLOAD_PATHS = ("/v1/files",)
# Room for the multipart envelope (boundaries, part headers, the purpose field) of an upload.
MULTIPART_ALLOWANCE = 64 * 1024
# Apache mod_reqtimeout's default ``MinRate``: after the grace period (one body timeout), each
# 500 bytes received buys one more second, so a client can hold a request for at most about
# ``body_timeout + size / 500`` seconds however it spaces its chunks.
MIN_BODY_RATE = 500.0
# Up to this much unread body, the server may keep the connection: uvicorn reads and drops the
# rest after the response. Past it, or with an unknown length, the refusal closes the
# connection rather than receive what it refused. Go's net/http keeps the same 256 KiB.
DISCARD_LIMIT = 256 * 1024

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
# Without escapes a string is a quote, non-quotes, a quote: no backtracking, so linear.
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1
_BLOCK = 1 << 18

# (Authorization header, method, path) -> the caller, or a TailorError (401, or 403 for scope).
Authenticator = Callable[[str | None, str, str], Principal]


class RequestMeter(Protocol):
    """Quotas checked before the body (``QuotaGate``): ``admit`` may block and raise a 429."""

    def applies(self, method: str, path: str) -> bool: ...

    def admit(
        self, principal: Principal, method: str, path: str, declared: int | None
    ) -> Mapping[str, str]: ...

    def done(self, principal: Principal, method: str, path: str, status: int) -> None: ...


def json_depth(body: bytes) -> int:
    """How deeply a JSON text nests arrays and objects, in linear time at C speed.

    Escapes and then strings are cut out so brackets inside strings do not count;
    ``bytes.translate`` keeps only the brackets, and their running sum (numpy, in
    blocks so memory stays small) peaks at the depth. For malformed JSON the number
    may be anything, which does no harm: the parser refuses such a body anyway.
    """
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), _BLOCK):
        chunk = np.frombuffer(brackets[start : start + _BLOCK], dtype=np.uint8)
        running = np.cumsum(_STEP[chunk], dtype=np.int64) + depth
        deepest = max(deepest, int(running.max()))
        depth = int(running[-1])
    return deepest


# A \u0000 escape: preceded by an even number of backslashes (an odd one escapes the "\").
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def check_json(body: bytes, *, max_depth: int) -> None:
    """Refuse (400) a JSON body that is not UTF-8, nests deeper than ``max_depth``, or holds
    a NUL character (no field takes one, and PostgreSQL text cannot store it)."""
    # json.loads would also accept UTF-16 and UTF-32, whose bytes the depth count cannot
    # read; RFC 8259 requires UTF-8 between systems, so refusing the others loses nothing.
    if json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
        raise InvalidRequestError(
            "The JSON body is not UTF-8. Send JSON encoded as UTF-8.", code="invalid_json"
        )
    if b"\\u0000" in body and _NUL_ESCAPE.search(body):
        raise InvalidRequestError(
            "The JSON body holds a NUL character (\\u0000) in a string; no field accepts "
            "one. Remove it.",
            code="invalid_json",
        )
    depth = json_depth(body)
    if depth > max_depth:
        raise InvalidRequestError(
            f"The JSON body nests arrays and objects {depth} levels deep; the limit is "
            f"{max_depth}. Flatten the request (the operator sets TAILOR_MAX_JSON_DEPTH).",
            code="invalid_json",
        )


def _is_json(content_type: str | None) -> bool:
    # The bodies FastAPI parses as JSON: no content type, application/json or .../*+json.
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


@dataclass(frozen=True)
class GuardLimits:
    """What the guard allows; ``from_settings`` reads them from the platform settings."""

    max_request_bytes: int
    max_upload_bytes: int
    max_json_depth: int
    body_timeout_seconds: float
    min_body_rate: float = MIN_BODY_RATE
    public_paths: tuple[str, ...] = PUBLIC_PATHS
    upload_paths: tuple[str, ...] = UPLOAD_PATHS

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardLimits:
        return cls(
            max_request_bytes=settings.max_request_bytes,
            max_upload_bytes=settings.max_upload_bytes,
            max_json_depth=settings.max_json_depth,
            body_timeout_seconds=settings.body_timeout_seconds,
        )

    def is_public(self, path: str) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.public_paths)

    def is_upload(self, method: str, path: str, content_type: str | None) -> bool:
        multipart = (content_type or "").lower().startswith("multipart/form-data")
        return method == "POST" and multipart and path.rstrip("/") in self.upload_paths


class _Exchange:
    """One request as the guard sees it: how much body came, and who answers."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limits: GuardLimits):
        self.scope = scope
        self.limits = limits
        self._receive = receive
        self._send = send
        self.headers = Headers(scope=scope)
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.content_type = self.headers.get("content-type")
        self.upload = limits.is_upload(self.method, self.path, self.content_type)
        self.limit = (
            limits.max_upload_bytes + MULTIPART_ALLOWANCE
            if self.upload
            else limits.max_request_bytes
        )
        length = self.headers.get("content-length")
        # h11 refuses a malformed Content-Length already; another server might not.
        self.bad_length = length is not None and not length.isdigit()
        self.declared = int(length) if length is not None and not self.bad_length else None
        chunked = "transfer-encoding" in self.headers
        self.body_done = not chunked and not self.declared and not self.bad_length
        self.expect_continue = "expect" in self.headers
        self.received = 0
        self.waited = 0.0  # seconds spent waiting for the client's body, not for the app
        self.replay: bytes | None = None
        self.response_started = False
        self.refusal: TailorError | None = None
        self.timed_out = False
        self.principal: Principal | None = None
        self.extra_headers: Mapping[str, str] = {}  # the meter's, for the app's answer
        self.status = 0

    def refuse(self, exc: TailorError) -> NoReturn:
        """Record ``exc`` as the answer (unless the app already started one) and raise it."""
        if self.refusal is None and not self.response_started:
            self.refusal = exc
        raise exc

    def _too_large(self) -> PayloadTooLargeError:
        if self.upload:
            return PayloadTooLargeError(
                f"The upload is larger than the limit of {self.limits.max_upload_bytes} bytes; "
                "split the file or ask the operator to raise TAILOR_MAX_UPLOAD_BYTES.",
                param="file",
            )
        return PayloadTooLargeError(
            f"The request body is larger than the limit of {self.limits.max_request_bytes} "
            "bytes; send less per request or ask the operator to raise TAILOR_MAX_REQUEST_BYTES."
        )

    def check_declared_length(self) -> None:
        if self.bad_length:
            self.refuse(InvalidRequestError("Content-Length must be a number of bytes."))
        if self.declared is not None and self.declared > self.limit:
            self.refuse(self._too_large())

    async def receive(self) -> Message:
        """The app's ``receive``: the body counted and timed, or the JSON body read earlier."""
        if self.replay is not None:
            body, self.replay = self.replay, None
            return {"type": "http.request", "body": body, "more_body": False}
        if self.body_done:
            return await self._receive()
        pause = self.limits.body_timeout_seconds
        # Allowed waiting in all: the grace period plus one second per MIN_BODY_RATE bytes.
        budget = pause + self.received / self.limits.min_body_rate - self.waited
        started = time.monotonic()
        try:
            with anyio.fail_after(max(min(pause, budget), 0.0)):
                message = await self._receive()
        except TimeoutError:
            self.timed_out = True
            if budget < pause:
                self.refuse(
                    RequestTimeoutError(
                        "The request body arrived too slowly (less than "
                        f"{self.limits.min_body_rate:.0f} bytes a second on average); send it "
                        "without pauses."
                    )
                )
            self.refuse(
                RequestTimeoutError(
                    f"The request body paused for more than {pause:g} s between chunks; send it "
                    "without pauses (the operator sets TAILOR_BODY_TIMEOUT_SECONDS)."
                )
            )
        self.waited += time.monotonic() - started
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.refuse(self._too_large())
            if not message.get("more_body", False):
                self.body_done = True
        else:  # http.disconnect: nothing more will come
            self.body_done = True
        return message

    async def read_json(self) -> bool:
        """Read the whole (bounded) body and check it; False when the client went away."""
        parts: list[bytes] = []
        while not self.body_done:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return False
            parts.append(message.get("body", b""))
        body = b"".join(parts)
        if body:
            try:
                check_json(body, max_depth=self.limits.max_json_depth)
            except InvalidRequestError as exc:
                self.refuse(exc)
        self.replay = body
        return True

    async def send(self, message: Message) -> None:
        """The app's ``send``; once the guard refused the request, the app's answer is dropped."""
        if self.refusal is not None:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
            self.status = message["status"]
            if self.extra_headers:
                extra = [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in self.extra_headers.items()
                ]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await self._send(message)

    def closing_headers(self) -> dict[str, str]:
        """``Connection: close`` when answering now would leave a body we do not want."""
        if self.body_done:
            return {}
        remaining = None if self.declared is None else self.declared - self.received
        if self.timed_out or self.expect_continue or remaining is None or remaining > DISCARD_LIMIT:
            return {"connection": "close"}
        return {}

    async def answer(self, response: Response) -> None:
        self.response_started = True
        await response(self.scope, self._receive, self._send)


class RequestGuard:
    """ASGI middleware: authentication, size, time and JSON-depth limits, JSON 500s."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: GuardLimits | Callable[[], GuardLimits],
        authenticate: Authenticator,
        meter: RequestMeter | None = None,
    ):
        self.app = app
        # A callable is read per request, so limits follow settings changed at run time.
        self.limits = limits if callable(limits) else (lambda: limits)
        self.authenticate = authenticate
        self.meter = meter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits()
        exchange = _Exchange(scope, receive, send, limits)
        try:
            if await self._admit(exchange):
                await self.app(scope, exchange.receive, exchange.send)
                if self.meter is not None and exchange.principal is not None:
                    self.meter.done(
                        exchange.principal, exchange.method, exchange.path, exchange.status
                    )
        except Exception:
            if exchange.refusal is None:
                # The boundary of one request: log it, answer it, keep the server serving.
                # The path, never the query string, which may carry a key.
                log.exception("Unhandled error answering %s %s", exchange.method, exchange.path)
                if not exchange.response_started:
                    await exchange.answer(
                        internal_error_response(headers=exchange.closing_headers())
                    )
                return
        if exchange.refusal is not None:
            await exchange.answer(
                error_response(exchange.refusal, headers=exchange.closing_headers())
            )

    async def _admit(self, exchange: _Exchange) -> bool:
        """Run the checks that come before the app; False when there is nobody to answer."""
        limits = exchange.limits
        query = exchange.scope.get("query_string", b"")
        if _CONTROL.search(exchange.path.encode("utf-8", "surrogateescape")) or (
            query and _CONTROL.search(unquote_to_bytes(query))
        ):
            exchange.refuse(
                InvalidRequestError(
                    "The URL has control characters (such as %00) in its path or query; "
                    "remove them.",
                    code="invalid_url",
                )
            )
        if not limits.is_public(exchange.path):
            header = exchange.headers.get("authorization")
            try:
                # A database read: in a thread, so a slow database does not stall the loop.
                principal = await anyio.to_thread.run_sync(
                    self.authenticate, header, exchange.method, exchange.path
                )
            except TailorError as exc:
                exchange.refuse(exc)
            exchange.scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
            exchange.principal = principal
        exchange.check_declared_length()
        if (
            self.meter is not None
            and exchange.principal is not None
            and self.meter.applies(exchange.method, exchange.path)
        ):
            try:
                # Quota totals and shared rate counters may need I/O: in a thread too.
                exchange.extra_headers = await anyio.to_thread.run_sync(
                    self.meter.admit,
                    exchange.principal,
                    exchange.method,
                    exchange.path,
                    exchange.declared,
                )
            except TailorError as exc:
                exchange.refuse(exc)
        if not exchange.body_done and not exchange.upload and _is_json(exchange.content_type):
            return await exchange.read_json()
        return True
