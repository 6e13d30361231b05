"""The request guard: who may send a body, how much, how deep, and what a crash answers."""

from __future__ import annotations

import json
import logging
import select
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tailorml.platform.api import deps
from tailorml.platform.api.app import create_app
from tailorml.platform.api.guard import json_depth
from tailorml.platform.settings import Settings
from tests.platform.api.live import live_api, read_response
from tests.platform.api.test_errors import error


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[{"', 0),
        ('{"a": [1, {"b": []}]}', 4),
        ('["\\"[[[", "\\\\", [["\\\\\\"]]"]]]', 3),
        ("[" * 40 + "]" * 40, 40),
        ("[" + ", ".join(["[]"] * 1000) + "]", 2),
        ('{"k": "' + "{" * 5000 + '"}', 1),
    ],
)
def test_json_depth_ignores_brackets_inside_strings(text: str, depth: int) -> None:
    assert json_depth(text.encode()) == depth
    if depth:  # what json itself finds, where it can
        json.loads(text)


def test_json_depth_is_linear_on_hostile_input() -> None:
    # Unterminated strings and runs of escaped quotes are where a string regex backtracks:
    # then 8 MB would take hours, linear takes about a second. The bound is generous so a
    # loaded machine cannot fail it; it guards the shape of the cost, not its speed.
    for body in (b'"\\"' * 3_000_000, b'"' + b"\\" * 8_000_000, b"[" * 8_000_000):
        started = time.perf_counter()
        json_depth(body)
        assert time.perf_counter() - started < 30.0


def _chunks(seen: list[int], n: int = 8, size: int = 1 << 16) -> Iterator[bytes]:
    for _ in range(n):
        seen.append(size)
        yield b"x" * size


def test_keyless_body_is_not_read(client) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    res = client.post(
        "/v1/files",
        content=_chunks(seen),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert error(res, 401)["code"] == "missing_api_key"
    assert seen == []  # not one chunk was asked for


def test_the_caller_is_authenticated_once(client, acme, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[str | None] = []
    real = deps.authenticate_header

    def counting(session, *, header, secret, admin_key=""):  # type: ignore[no-untyped-def]
        calls.append(header)
        return real(session, header=header, secret=secret, admin_key=admin_key)

    monkeypatch.setattr(deps, "authenticate_header", counting)
    assert client.get("/v1/files", headers=acme).status_code == 200
    assert calls == [acme["Authorization"]]


def test_public_paths_need_no_key(client) -> None:  # type: ignore[no-untyped-def]
    for path in (
        "/health",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/docs/oauth2-redirect",
    ):
        assert client.get(path).status_code == 200, path
    # A public path is not a prefix of other names.
    assert error(client.get("/healthcheck"), 401)["code"] == "missing_api_key"


def test_declared_and_streamed_bodies_over_the_limit(client, acme, settings) -> None:  # type: ignore[no-untyped-def]
    settings.max_request_bytes = 100_000
    res = client.post(
        "/v1/embeddings",
        headers={**acme, "Content-Type": "application/json", "Content-Length": "100001"},
        content=b"[" * 100_001,
    )
    assert error(res, 413)["code"] == "payload_too_large"
    seen: list[int] = []
    res = client.post(
        "/v1/embeddings",
        headers={**acme, "Content-Type": "application/json"},
        content=_chunks(seen),  # chunked: no Content-Length to check up front
    )
    assert error(res, 413)["code"] == "payload_too_large"
    upload = client.post(
        "/v1/files",
        headers={**acme, "Content-Type": "multipart/form-data; boundary=b"},
        content=_chunks([], n=20),
    )
    assert error(upload, 413)["param"] == "file"
    assert "TAILOR_MAX_UPLOAD_BYTES" in upload.json()["error"]["message"]


def test_an_upload_route_takes_json_at_the_request_limit(client, acme, settings) -> None:  # type: ignore[no-untyped-def]
    # Only a multipart body earns the upload limit; JSON to the same path is read whole.
    settings.max_request_bytes = 100_000
    res = client.post(
        "/v1/files", headers={**acme, "Content-Type": "application/json"}, content=b"1" * 200_000
    )
    assert "TAILOR_MAX_REQUEST_BYTES" in error(res, 413)["message"]


def test_deep_json_is_refused_before_parsing(client, acme, settings) -> None:  # type: ignore[no-untyped-def]
    deep = '{"model": "minilm-l6", "input": ' + "[" * 33 + "]" * 33 + "}"
    err = error(client.post("/v1/embeddings", headers=acme, content=deep), 400)
    assert err["code"] == "invalid_json" and "34 levels" in err["message"]
    assert str(settings.max_json_depth) in err["message"]
    at_limit = '{"model": "nothing-here", "input": ' + "[" * 31 + "]" * 31 + "}"
    assert error(client.post("/v1/embeddings", headers=acme, content=at_limit), 400)["code"] != (
        "invalid_json"
    )


def test_json_that_is_not_utf8_is_refused(client, acme) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"model": "minilm-l6", "input": "hi"}).encode("utf-16")
    res = client.post(
        "/v1/embeddings", headers={**acme, "Content-Type": "application/json"}, content=body
    )
    assert "UTF-8" in error(res, 400)["message"]


def test_control_characters_in_the_url(client, acme) -> None:  # type: ignore[no-untyped-def]
    assert error(client.get("/v1/files/file-%00", headers=acme), 400)["code"] == "invalid_url"
    assert error(client.get("/v1/files?purpose=%01", headers=acme), 400)["code"] == "invalid_url"


def test_unhandled_errors_answer_json_and_are_logged(settings: Settings, caplog) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings)

    @app.get("/v1/crash")
    def crash() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        with caplog.at_level(logging.ERROR, logger="tailorml.api"):
            res = client.get("/v1/crash?api_key=sekrit", headers={"Authorization": "Bearer x"})
            assert error(res, 401)["code"] == "invalid_api_key"
            res = client.get(
                "/v1/crash?api_key=sekrit", headers={"Authorization": "Bearer admin-test-key"}
            )
        err = error(res, 500)
        assert (err["type"], err["code"]) == ("server_error", "internal_error")
        assert "boom" not in res.text
        logged = [r for r in caplog.records if r.name == "tailorml.api"]
        assert len(logged) == 1 and "GET /v1/crash" in logged[0].getMessage()
        assert logged[0].exc_info and "sekrit" not in logged[0].getMessage()
    app.state.tailor.engine.dispose()


def test_a_failing_authentication_answers_json(settings: Settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def down(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise OSError("database unreachable")

    monkeypatch.setattr(deps, "authenticate_header", down)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        res = client.get("/v1/files", headers={"Authorization": "Bearer admin-test-key"})
        assert error(res, 500)["code"] == "internal_error"
    app.state.tailor.engine.dispose()


def test_a_small_refused_body_keeps_the_connection(settings: Settings) -> None:
    # Under DISCARD_LIMIT the server reads and drops the rest, so keep-alive survives a 401...
    with live_api(settings) as api, api.connect() as sock:
        body = b'{"model": "minilm-l6", "input": "hi"}'
        request = (
            b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        sock.sendall(request + body)
        status, headers, _ = read_response(sock)
        assert status == 401 and headers.get("connection") != "close"
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200
        # ... while a large unread one is cut off: the server does not receive what it refused.
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nContent-Length: 50000000\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert status == 401 and headers["connection"] == "close"


def test_a_body_trickled_below_the_minimum_rate_times_out(settings: Settings) -> None:
    # Each pause is under the body timeout, but on average it is a few bytes a second.
    settings.body_timeout_seconds = 0.5
    with live_api(settings) as api, api.connect() as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer admin-test-key\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        started = time.monotonic()
        for byte in b'{"model": "minilm-l6"':
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # closed: the answer came already
                break
            time.sleep(0.4)
            if select.select([sock], [], [], 0)[0] or time.monotonic() - started > 5:
                break  # the answer is there
        status, headers, body = read_response(sock)
    assert status == 408 and "bytes a second" in json.loads(body)["error"]["message"]
    assert time.monotonic() - started < 3 and headers["connection"] == "close"
