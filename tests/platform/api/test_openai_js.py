"""The JavaScript ``openai`` package (npm, tests/js) against a live server, unchanged: n
choices under a JSON schema, a stream with usage in its last chunk, and an error it raises as
its own ``APIError``. ``make install`` installs the package (``npm ci`` in tests/js)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import httpx
import jsonschema
import pytest

pytest.importorskip("torch", reason="inference needs the ml extra (torch)")

from tests.platform.api.live import live_api  # noqa: E402
from tests.platform.api.test_inference import adapters, register  # noqa: E402, F401
from tests.platform.api.test_openai_sdk import SCHEMA  # noqa: E402

JS = Path(__file__).resolve().parents[2] / "js"


def test_the_javascript_sdk_works_unchanged(settings, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    node = shutil.which("node")
    assert node, "node is needed for this test (Node.js 20 or newer)"
    assert (JS / "node_modules" / "openai").is_dir(), "run `make install` (npm ci in tests/js)"
    with live_api(settings) as live:
        url = f"http://127.0.0.1:{live.port}"
        made = httpx.post(f"{url}/admin/tenants", json={"name": "acme"},
                          headers={"Authorization": "Bearer admin-test-key"})  # fmt: skip
        assert made.status_code == 200, made.text
        model = register(SimpleNamespace(app=live.app), "acme", "js", adapters["a"])
        env = {**os.environ, "TAILOR_BASE_URL": f"{url}/v1",
               "TAILOR_API_KEY": made.json()["api_key"], "TAILOR_MODEL": model}  # fmt: skip
        run = subprocess.run([node, str(JS / "check.mjs")], env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert [c["index"] for c in out["choices"]] == [0, 1]
    for choice in out["choices"]:
        assert choice["finish"] == "stop"
        jsonschema.validate(json.loads(choice["content"]), SCHEMA)
    assert (
        out["usage"]["total_tokens"]
        == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
    )
    assert out["streamed"] == out["plain"] and out["streamed"]
    assert out["streamUsage"]["completion_tokens"] >= 1
    assert out["error"] == {"isApiError": True, "status": 404, "code": "model_not_found"}
