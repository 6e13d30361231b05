"""How ``tailor serve`` runs the API: uvicorn with the limits it lacks, and logs without secrets.

uvicorn bounds the idle time between keep-alive requests but not the time a client
takes to send a request's headers: a client trickling one header byte every few
seconds held its connection for ever (1,000 of them were all open after 75 s).
``HeaderTimeoutH11Protocol`` closes a connection whose request headers are not
complete ``header_timeout_seconds`` after it opened, or after the previous response
ended. The rest is uvicorn's own settings: a cap on concurrent connections, a short
keep-alive, a bounded header block, HTTP/1.1 through h11 only (the subclass is
h11's), no WebSockets and no ``Server`` header.

Access log lines carry the request's path and query string as the client sent it;
``SecretScrubber`` rewrites the values of credential-like query parameters
(``?api_key=...``), bearer tokens and TailorML keys in every line uvicorn logs.
Body size and read timeouts are the request guard's (``api.guard``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import unquote_plus

import h11
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from tailorml.platform import logs
from tailorml.platform.settings import Settings

# More connections than this answer 503: a client may hold one only for a header timeout
# without sending a request, so an attacker must keep opening them, and the file
# descriptors of a default `ulimit -n` (1024) stay enough for the database and storage.
LIMIT_CONCURRENCY = 900
TIMEOUT_KEEP_ALIVE = 5  # seconds an idle keep-alive connection stays open (uvicorn's default)
GRACEFUL_SHUTDOWN_SECONDS = 30  # a stop's wait for answers in flight before it cancels them
# The largest request line plus headers; h11's default, stated so it is visible. A larger
# header block is refused with 400 before any of it reaches the app.
MAX_HEADER_BYTES = 16 * 1024

# Query parameters whose values never reach a log (compared lowercased, '-' read as '_').
SENSITIVE_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "authorization",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "sig",
        "signature",
        "session",
        "jwt",
        "credential",
        "x_amz_credential",
        "x_amz_security_token",
    }
)
SENSITIVE_SUFFIXES = ("_key", "_token", "_secret", "_password", "_signature")
REDACTED = "[REDACTED]"

_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s\"']+)=(?P<value>[^&;#\s\"']*)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?!\[REDACTED\])[^\s'\",)\]]+")
_TAILOR_KEY = re.compile(r"\btk-[0-9a-f]{16}-[A-Za-z0-9_-]+")


def _is_sensitive(name: str) -> bool:
    normal = unquote_plus(name).strip().lower().replace("-", "_")
    return normal in SENSITIVE_PARAMS or normal.endswith(SENSITIVE_SUFFIXES)


def _redact_param(match: re.Match[str]) -> str:
    if not _is_sensitive(match["name"]) or not match["value"]:
        return match[0]
    return f"{match['lead']}{match['name']}={REDACTED}"


def scrub_secrets(text: str) -> str:
    """``text`` with credential-like query values, bearer tokens and TailorML keys redacted."""
    if "=" in text:
        text = _QUERY_PARAM.sub(_redact_param, text)
    text = _BEARER.sub(rf"\g<1>{REDACTED}", text)
    return _TAILOR_KEY.sub(f"tk-{REDACTED}", text)


def _scrub_arg(arg: object) -> object:
    if isinstance(arg, str):
        return scrub_secrets(arg)
    if isinstance(arg, int | float | bool) or arg is None:
        return arg  # formatters use numbers as numbers (the access log's status code: %d)
    # Containers (uvicorn's trace log prints whole ASGI scopes, headers included) as text.
    text = str(arg)
    scrubbed = scrub_secrets(text)
    return arg if scrubbed == text else scrubbed


class SecretScrubber(logging.Filter):
    """A logging filter that redacts secrets in a record's message and arguments in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub_secrets(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            # Same length and order: uvicorn's access formatter unpacks these arguments.
            record.args = tuple(_scrub_arg(a) for a in record.args)
        return True


SCRUBBED_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi")


def install_log_scrubbing() -> None:
    """Put a ``SecretScrubber`` on each logger uvicorn writes requests to (once each).

    On the loggers rather than their handlers, so it holds whatever handlers an operator
    configures; a logger's filter sees every record logged through that logger.
    """
    for name in SCRUBBED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretScrubber) for f in logger.filters):
            logger.addFilter(SecretScrubber())


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections slow to send a request's headers.

    The clock starts when the connection opens and again when a response ends and the
    connection waits for the next request; it stops once h11 has parsed a request's
    headers (the client's state leaves IDLE). Data arriving does not reset it, which is
    what lets a trickle of bytes hold a connection under uvicorn's keep-alive timeout.
    """

    header_timeout_seconds: ClassVar[float] = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow_request()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _follow_request(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(
                    self.header_timeout_seconds, self._header_timeout
                )
        else:
            self._stop_header_timer()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.debug("Closing a connection that sent no complete request headers.")
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with this header timeout."""

    class _Protocol(HeaderTimeoutH11Protocol):
        header_timeout_seconds = seconds

    return _Protocol


def log_config(log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging configuration, plus TailorML's own loggers on the same stderr, every
    line with its request id; in JSON with ``log_format`` "json" (``platform/logs.py``)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["tailorml"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    parts = logs.handler_config(log_format)
    config.setdefault("filters", {})["request_id"] = parts["filter"]
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("request_id")
    if log_format == "json":
        config["formatters"] = {"default": parts["formatter"], "access": parts["formatter"]}
    return config


def server_config(
    app: Any,
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    limit_concurrency: int = LIMIT_CONCURRENCY,
    logging_config: dict[str, Any] | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration ``tailor serve`` runs ``app`` with.

    ``logging_config`` None (tests, embedding) leaves the process's logging as it is;
    the scrubbing filter is installed either way.
    """
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=settings.port if port is None else port,
        http=header_timeout_protocol(settings.header_timeout_seconds),
        ws="none",
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=TIMEOUT_KEEP_ALIVE,
        # A stop waits this long for answers in flight, then cancels them and still runs the
        # app's shutdown (usage and audit written): a client that never finishes cannot hold it.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        server_header=False,
        log_config=logging_config,
        log_level="info",
    )
    install_log_scrubbing()
    return config


def run_server(
    app: Any, settings: Settings, *, host: str | None = None, port: int | None = None
) -> None:
    """Serve ``app`` until a signal stops it (uvicorn re-raises the signal afterwards)."""
    server = uvicorn.Server(
        server_config(
            app, settings, host=host, port=port, logging_config=log_config(settings.log_format)
        )
    )
    server.run()
    if not server.started:  # the port was taken, or the app failed to start
        raise SystemExit(3)
