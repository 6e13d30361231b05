"""API8 (security misconfiguration), logs: a key sent in a query string (``?api_key=...``, as
some clients and webhooks do) was written verbatim to uvicorn's access log, where anyone who
reads the logs could use it. Now every line uvicorn logs has such values redacted, and no log
line carries the Authorization header."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from uvicorn.logging import AccessFormatter

from tailorml.platform.settings import Settings
from tests.platform.api.live import live_api, read_response


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """Every line the server logs, formatted as ``tailor serve`` prints access lines."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    access = Keep()
    access.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))
    other = Keep()
    other.setFormatter(logging.Formatter("%(name)s %(message)s"))
    loggers = [(logging.getLogger("uvicorn.access"), access)] + [
        (logging.getLogger(name), other) for name in ("uvicorn.error", "uvicorn.asgi", "tailorml")
    ]
    levels = {}
    for logger, handler in loggers:
        levels[logger] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    yield seen
    for logger, handler in loggers:
        logger.removeHandler(handler)
        logger.setLevel(levels[logger])


def test_keys_in_query_strings_are_not_logged(settings: Settings, acme, lines) -> None:  # type: ignore[no-untyped-def]
    key = acme["Authorization"].removeprefix("Bearer ")
    with live_api(settings) as api, api.connect() as sock:
        for target in (f"/v1/files?api_key={key}&limit=2", f"/v1/models?token={key}"):
            sock.sendall(
                f"GET {target} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
            )
            assert read_response(sock)[0] == 200
    access = [line for line in lines if "GET /v1/" in line]
    assert len(access) == 2, lines
    assert "/v1/files?api_key=[REDACTED]&limit=2" in access[0]
    assert "/v1/models?token=[REDACTED]" in access[1]
    assert not [line for line in lines if key in line or key.split("-", 2)[2] in line]
