"""API4 (unrestricted resource consumption): a dataset could not be cancelled, and a step blocked in
a slow outbound call held the only worker while other tenants' work stayed queued."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tailorml.platform.jobs.worker import Worker
from tests.platform.test_files import upload


class _Stall(BaseHTTPRequestHandler):
    """Accepts a request and answers nothing for a long time."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        time.sleep(30)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stall() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stall)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _file(client, headers, tmp_path) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(4)))
    return str(upload(client, headers, path, purpose="user_data").json()["id"])


def test_queued_dataset_is_cancelled_by_its_own_route(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    body = {"files": [_file(client, acme, tmp_path)], "recipe": "web-text-cleanup"}
    ds = client.post("/v1/datasets", headers=acme, json=body).json()
    res = client.post(f"/v1/datasets/{ds['id']}/cancel", headers=acme)
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "cancelled"
    assert client.post(f"/v1/datasets/{ds['id']}/cancel", headers=acme).status_code == 409


def test_cancel_stops_a_step_blocked_in_an_outbound_call(
    client, acme, settings, tmp_path, stall
) -> None:  # type: ignore[no-untyped-def]
    settings.outbound_allow = [stall]
    settings.data_workers = 1
    recipe = {
        "name": "slow",
        "steps": [{"op": "paraphrase", "base_url": f"http://{stall}/v1", "model": "m"}],
    }
    ds = client.post(
        "/v1/datasets",
        headers=acme,
        json={"files": [_file(client, acme, tmp_path)], "recipe": recipe},
    ).json()
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, kwargs={"max_jobs": 1})
    thread.start()
    deadline = time.time() + 20
    while client.get(f"/v1/datasets/{ds['id']}", headers=acme).json()["status"] != "running":
        assert time.time() < deadline
        time.sleep(0.1)
    time.sleep(1.0)  # the step is now waiting on the stalled endpoint
    started = time.time()
    assert client.post(f"/v1/datasets/{ds['id']}/cancel", headers=acme).status_code == 200
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert time.time() - started < 8  # well before the endpoint's 30 s stall or the call's timeout
    assert client.get(f"/v1/datasets/{ds['id']}", headers=acme).json()["status"] == "cancelled"
