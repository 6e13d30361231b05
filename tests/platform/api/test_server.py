"""The server ``tailor serve`` runs: header timeout on every request, uvicorn's limits, clean logs."""

from __future__ import annotations

import logging
import time

import pytest

from tailorml.platform.api.server import (
    HeaderTimeoutH11Protocol,
    SecretScrubber,
    install_log_scrubbing,
    scrub_secrets,
    server_config,
)
from tailorml.platform.settings import Settings
from tests.platform.api.live import closed_by_server, live_api, read_response

KEY = "tk-0123456789abcdef-AbCdEfGhIjKlMnOpQrStUvWxYz012345"


@pytest.fixture
def quick(settings: Settings) -> Settings:
    settings.header_timeout_seconds = 1.0
    return settings


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f"GET /v1/models?api_key={KEY}&limit=2 HTTP/1.1",
            "GET /v1/models?api_key=[REDACTED]&limit=2 HTTP/1.1",
        ),
        ("/x?Access-Token=abc;sig=def&page=3", "/x?Access-Token=[REDACTED];sig=[REDACTED]&page=3"),
        (
            "/x?client%5Fsecret=s3&aws_secret=s4",
            "/x?client%5Fsecret=[REDACTED]&aws_secret=[REDACTED]",
        ),
        ("/x?limit=10&after=file-1&purpose=", "/x?limit=10&after=file-1&purpose="),
        (f"key {KEY} leaked", "key tk-[REDACTED] leaked"),
        ("(b'authorization', b'Bearer abc.def')", "(b'authorization', b'Bearer [REDACTED]')"),
    ],
)
def test_scrub_secrets(line: str, expected: str) -> None:
    assert scrub_secrets(line) == expected


def test_scrubber_keeps_the_access_log_arguments() -> None:
    # uvicorn's access formatter unpacks (client, method, path, version, status) and uses %d.
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/v1/models?token={KEY}", "1.1", 200),
        None,
    )
    assert SecretScrubber().filter(record)
    assert record.args == ("127.0.0.1:5", "GET", "/v1/models?token=[REDACTED]", "1.1", 200)
    # uvicorn's trace log prints whole scopes, headers included.
    scope = {"headers": [(b"authorization", f"Bearer {KEY}".encode())]}
    record = logging.LogRecord("uvicorn.asgi", 5, __file__, 1, "scope=%s", (scope,), None)
    SecretScrubber().filter(record)
    assert KEY not in record.getMessage() and "REDACTED" in record.getMessage()


def test_scrubbing_is_installed_once() -> None:
    install_log_scrubbing()
    install_log_scrubbing()
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn.asgi"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, SecretScrubber) for f in filters) == 1


def test_uvicorn_settings(settings: Settings) -> None:
    config = server_config(object(), settings, port=0)
    assert issubclass(config.http, HeaderTimeoutH11Protocol)  # type: ignore[arg-type]
    assert config.http.header_timeout_seconds == settings.header_timeout_seconds  # type: ignore[union-attr]
    assert config.limit_concurrency and config.timeout_keep_alive <= 5
    assert config.h11_max_incomplete_event_size == 16 * 1024
    assert config.ws == "none" and config.server_header is False


def test_headers_in_time_are_served(quick: Settings) -> None:
    with live_api(quick) as api, api.connect() as sock:
        for part in (b"GET /hea", b"lth HTTP/1.1\r\nHo", b"st: t\r\n\r\n"):
            sock.sendall(part)
            time.sleep(0.25)
        assert read_response(sock)[0] == 200


def test_headers_too_slow_close_the_connection(quick: Settings) -> None:
    with live_api(quick) as api, api.connect() as kept:
        # A keep-alive connection gets the same clock for its next request's headers.
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(kept)[0] == 200
        # Opened now, so both clocks start together however long the first answer took.
        first = api.connect()
        started = time.monotonic()
        closed: dict[str, float] = {}
        while len(closed) < 2 and time.monotonic() - started < 5:
            for name, sock in (("first", first), ("kept", kept)):
                if name in closed:
                    continue
                try:
                    sock.send(b"X")  # one byte of a header that never ends
                except OSError:
                    closed[name] = time.monotonic() - started
                    continue
                if closed_by_server(sock, 0.1):
                    closed[name] = time.monotonic() - started
            time.sleep(0.2)
        first.close()
        assert set(closed) == {"first", "kept"}
        assert all(0.8 <= t <= 2.5 for t in closed.values()), closed


def test_scrubbing_twice_changes_nothing_more() -> None:
    line = f"GET /x?api_key={KEY} Authorization: Bearer {KEY}"
    assert scrub_secrets(scrub_secrets(line)) == scrub_secrets(line)
