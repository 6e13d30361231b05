"""API4 (unrestricted resource consumption) before any route runs, against a real server.

Seen on ``tailor serve``: a 600 MB multipart upload without any key was received and spooled
to disk before its 401; a 200 MB chunked JSON body was read and parsed (RSS 105 -> 700 MB)
because only a declared Content-Length was checked; a body could pause for ever; JSON of any
depth reached the parser; 1,000 connections trickling one header byte every 4 s were all
still open after 75 s. Each test sends those bytes on a socket and expects the refusal early,
in bounded memory.
"""

from __future__ import annotations

import json
import select
import time
import tracemalloc

from tailorml.platform.settings import Settings
from tests.platform.api.live import closed_by_server, live_api, read_response


def _error(body: bytes) -> dict[str, str]:
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def test_keyless_upload_is_refused_before_its_body(settings: Settings) -> None:
    with live_api(settings) as api, api.connect(timeout=5) as sock:
        sock.sendall(
            b"POST /v1/files HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 600000000\r\n\r\n"
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n'
        )
        started = time.monotonic()
        status, headers, body = read_response(sock)  # before: no answer until 600 MB arrived
        assert time.monotonic() - started < 2
    assert status == 401 and _error(body)["code"] == "missing_api_key"
    assert headers["connection"] == "close"  # the rest is not received either
    assert not [p for p in settings.data_dir.rglob("*") if p.is_file() and "files" in p.parts]


def test_chunked_body_over_the_limit_is_refused_while_streaming(settings: Settings, acme) -> None:  # type: ignore[no-untyped-def]
    settings.max_request_bytes = 1_000_000
    chunk = b"[" + b"1," * 32_000  # a JSON array that never ends, 64 KB at a time
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    tracemalloc.start()
    try:
        with live_api(settings) as api, api.connect() as sock:
            sock.sendall(
                b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nAuthorization: "
                + acme["Authorization"].encode()
                + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            try:
                while sent < 64_000_000 and not select.select([sock], [], [], 0)[0]:
                    sock.sendall(frame)
                    sent += len(chunk)
                sock.sendall(b"0\r\n\r\n")
            except OSError:  # the server closed: it refused the rest
                pass
            status, _, body = read_response(sock)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 413 and _error(body)["code"] == "payload_too_large"
    assert sent < 16_000_000  # the limit, plus what the sockets' buffers held
    assert peak < 32_000_000  # nothing held the body beyond the limit


def test_a_body_that_pauses_times_out(settings: Settings, acme) -> None:  # type: ignore[no-untyped-def]
    settings.body_timeout_seconds = 0.5
    with live_api(settings) as api, api.connect() as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nAuthorization: "
            + acme["Authorization"].encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
            + b'{"model": "minilm-l6", '
        )
        started = time.monotonic()
        status, headers, body = read_response(sock)  # before: waits for the rest for ever
        assert 0.4 < time.monotonic() - started < 3
        assert closed_by_server(sock, 1.0)
    assert status == 408 and _error(body)["code"] == "request_timeout"
    assert headers["connection"] == "close"


def test_deeply_nested_json_is_refused_before_parsing(client, acme) -> None:  # type: ignore[no-untyped-def]
    for depth in (100, 200_000):
        body = b'{"model": "minilm-l6", "input": ' + b"[" * depth + b"]" * depth + b"}"
        started = time.monotonic()
        res = client.post(
            "/v1/embeddings", headers={**acme, "Content-Type": "application/json"}, content=body
        )
        assert time.monotonic() - started < 2
        assert res.status_code == 400, res.text
        err = _error(res.content)
        assert err["code"] == "invalid_json" and f"{depth + 1} levels" in err["message"]


def test_connections_trickling_headers_are_closed(settings: Settings) -> None:
    settings.header_timeout_seconds = 1.0
    with live_api(settings) as api:
        socks = [api.connect() for _ in range(50)]
        try:
            for sock in socks:
                sock.sendall(b"GET /health HTTP/1.1\r\n")
            started = time.monotonic()
            open_ = list(socks)
            while open_ and time.monotonic() - started < 5:
                for sock in list(open_):
                    try:
                        sock.send(b"X")  # one more byte of a header that never ends
                    except OSError:
                        open_.remove(sock)
                        continue
                    if closed_by_server(sock):
                        open_.remove(sock)
                time.sleep(0.25)
            assert not open_, (
                f"{len(open_)} of 50 still open after {time.monotonic() - started:.1f} s"
            )
            assert time.monotonic() - started < 3
        finally:
            for sock in socks:
                sock.close()
