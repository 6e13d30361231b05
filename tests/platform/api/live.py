"""The API served by ``tailor serve``'s uvicorn configuration in a thread, and raw-socket helpers.

The guard and the server's limits are about bytes on a socket (a header sent one byte at a
time, a body that pauses, a chunked body that never ends), which a test client cannot send.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from tailorml.platform.api.app import create_app
from tailorml.platform.api.server import server_config
from tailorml.platform.settings import Settings


@dataclass
class LiveAPI:
    port: int
    app: Any

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.settimeout(timeout)
        return sock


@contextmanager
def live_api(settings: Settings) -> Iterator[LiveAPI]:
    """``create_app(settings)`` behind ``server_config`` on a free port, stopped afterwards."""
    app = create_app(settings)
    server = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveAPI(port=port, app=app)
    finally:
        # A graceful stop runs the app's lifespan shutdown (uvicorn skips it on force_exit),
        # so its usage and audit writers flush and stop here, not into a later test's database.
        server.config.timeout_graceful_shutdown = 1  # a test's half-sent request waits no longer
        server.should_exit = True
        thread.join(10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(10)
        app.state.tailor.usage.close()
        app.state.tailor.audit.close()
        app.state.tailor.engine.dispose()


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), data[:200]
    pairs = (line.partition(":") for line in lines[1:])
    return int(lines[0].split()[1]), {k.strip().lower(): v.strip() for k, _, v in pairs}, body


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response: status, headers (lowercased names), body.

    A server that refuses a body closes with unread bytes, which resets the connection
    once the response is out; what arrived before the reset is still the response.
    """
    data = b""
    try:
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        _, headers, body = _parse(data)
        while len(body) < int(headers.get("content-length", 0)) and (chunk := sock.recv(65536)):
            body += chunk
            data += chunk
    except ConnectionResetError:
        pass
    return _parse(data)


def closed_by_server(sock: socket.socket, wait: float = 0.0) -> bool:
    """Whether the server closed ``sock`` (end of stream or reset), waiting up to ``wait``."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(65536) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
