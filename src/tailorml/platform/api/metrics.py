"""HTTP metrics for Prometheus (served with the engine's at ``/metrics``: routes/metrics.py).

``MetricsMiddleware`` is a pure ASGI layer (it adds no task and no copy of
a body): it counts each answer by method, route template and status, times
it to its last body byte (so a stream counts whole), and for an error
answer reads the OpenAI-shaped body's ``code`` (``rate_limit_exceeded``,
``insufficient_quota``, ``model_not_found`` ...), which says more than the
status. Route templates, not raw paths, keep the label set bounded;
requests that match no route count under ``unmatched``.

"""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
ERROR_BODY_LIMIT = 64 << 10  # an error body larger than this is not parsed for its code


class HttpMetrics:
    """The platform's HTTP metric families, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tailorml_http_requests", "HTTP answers by method, route and status.",
            ("method", "route", "status"), registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "tailorml_http_request_duration_seconds",
            "From a request's first byte to its answer's last, by method and route.",
            ("method", "route"), buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "tailorml_http_errors", "Error answers by route, status and error code.",
            ("route", "status", "code"), registry=self.registry,
        )  # fmt: skip
        self.audit_failures = Counter(
            "tailorml_audit_write_failures", "Audit events that could not be written.",
            registry=self.registry,
        )  # fmt: skip


class MetricsMiddleware:
    """Counts and times every HTTP answer (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app raises before answering, the server answers 500
        error_body: list[bytes] = []
        error_size = 0

        async def observe(message: Message) -> None:
            nonlocal status, error_size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400:
                chunk = message.get("body", b"")
                error_size += len(chunk)
                if error_size <= ERROR_BODY_LIMIT:
                    error_body.append(chunk)
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = _route(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(method, route).observe(time.perf_counter() - start)
            if status >= 400:
                code = _error_code(b"".join(error_body)) if error_size <= ERROR_BODY_LIMIT else ""
                self.metrics.errors.labels(route, str(status), code or "none").inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _error_code(body: bytes) -> str:
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        # A code is one of ours (short snake_case); anything else would grow the label set.
        if isinstance(code, str) and len(code) <= 64 and code.replace("_", "").isalnum():
            return code
    return ""
