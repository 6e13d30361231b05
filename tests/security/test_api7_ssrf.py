"""API7 (server-side request forgery), through /v1/datasets: a paraphrase step made the worker call
any host — an attacker's, with the server's admin key read from an environment variable the tenant
named, or loopback services whose error messages told open ports from closed ones."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailorml.platform.jobs.worker import Worker
from tests.platform.test_files import upload


class _Listener(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that records every request it receives."""

    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).seen.append({"headers": dict(self.headers), "body": body.decode()})
        text = json.loads(body)["messages"][0]["content"].rsplit("\n", 1)[-1]
        answer = {"choices": [{"message": {"role": "assistant", "content": f"Put simply: {text}"}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Listener,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dataset(client: TestClient, headers: dict[str, str], tmp_path: Path, step: dict) -> Any:  # type: ignore[type-arg]
    path = tmp_path / "reviews.jsonl"
    path.write_text(
        "".join(json.dumps({"text": f"review {i}", "label": "ok"}) + "\n" for i in range(3))
    )
    file_id = upload(client, headers, path, purpose="user_data").json()["id"]
    recipe = {"name": "para", "steps": [{"op": "paraphrase", "model": "m", **step}]}
    return client.post("/v1/datasets", headers=headers, json={"files": [file_id], "recipe": recipe})


def _run(client: TestClient, headers: dict[str, str], settings: Any, ds_id: str) -> dict[str, Any]:
    settings.data_workers = 1
    assert Worker(settings).run(max_jobs=1) == 1
    return dict(client.get(f"/v1/datasets/{ds_id}", headers=headers).json())


def test_tenant_cannot_name_an_environment_variable_or_the_policy(
    client, acme, tmp_path, listener
) -> None:  # type: ignore[no-untyped-def]
    url, seen = listener
    res = _dataset(client, acme, tmp_path, {"base_url": url, "api_key_env": "TAILOR_ADMIN_KEY"})
    assert res.status_code == 400, res.text
    assert "api_key_env" in res.json()["error"]["message"]
    for policy in ({"allow_private": True}, {"allow_hosts": ["127.0.0.1"]}):
        res = _dataset(client, acme, tmp_path, {"base_url": url, **policy})
        assert res.status_code == 400, res.text
        assert "operator" in res.json()["error"]["message"]
    assert not seen


def test_loopback_endpoint_is_refused_before_any_byte_leaves(
    client, acme, settings, tmp_path, listener, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TAILOR_ADMIN_KEY", settings.admin_key)
    url, seen = listener
    res = _dataset(client, acme, tmp_path, {"base_url": url})
    assert res.status_code == 200, res.text
    ds = _run(client, acme, settings, res.json()["id"])
    assert ds["status"] == "failed"
    assert "TAILOR_OUTBOUND_ALLOW" in ds["error"]["message"]
    assert not seen  # neither the records nor any key reached the listener


def test_errors_do_not_tell_open_ports_from_closed(
    client, acme, settings, tmp_path, listener
) -> None:  # type: ignore[no-untyped-def]
    url, _ = listener
    open_port = url.split(":")[2].split("/")[0]
    messages = []
    for port in (open_port, str(_closed_port())):
        res = _dataset(client, acme, tmp_path, {"base_url": f"http://127.0.0.1:{port}/v1"})
        ds = _run(client, acme, settings, res.json()["id"])
        assert ds["status"] == "failed"
        messages.append(ds["error"]["message"].replace(port, "PORT"))
    assert messages[0] == messages[1]


def test_operator_allowed_endpoint_gets_records_but_no_server_credentials(
    client, acme, settings, tmp_path, listener, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TAILOR_ADMIN_KEY", settings.admin_key)
    url, seen = listener
    settings.outbound_allow = [url.split("/")[2]]  # 127.0.0.1:<port>
    res = _dataset(client, acme, tmp_path, {"base_url": url})
    ds = _run(client, acme, settings, res.json()["id"])
    assert ds["status"] == "succeeded", ds["error"]
    assert ds["counts"]["added"] == 3 and len(seen) == 3
    for request in seen:
        assert "authorization" not in {k.lower() for k in request["headers"]}
        assert settings.admin_key not in json.dumps(request)
