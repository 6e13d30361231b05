"""Log lines carry their request's id, and in JSON (TAILOR_LOG_FORMAT=json) are one object per
line: through uvicorn's access log on a live server, and in a process configured from
``tailor serve``'s logging configuration."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import httpx
import pytest

from tailorml.platform.logs import REQUEST_ID, JsonFormatter, RequestIdFilter, handler_config
from tests.platform.api.live import live_api


def test_a_request_id_is_on_every_line_of_its_request(settings) -> None:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    try:
        with live_api(settings) as api:
            url = f"http://127.0.0.1:{api.port}"
            given = httpx.get(f"{url}/v1/files", headers={"X-Request-Id": "trace-7"})
            made = httpx.get(f"{url}/health")
    finally:
        access.removeHandler(handler)
    assert given.status_code == 401 and given.headers["x-request-id"] == "trace-7"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_path = {line["path"]: line for line in lines}
    assert by_path["/v1/files"]["request_id"] == "trace-7"
    assert by_path["/v1/files"]["status"] == 401 and by_path["/v1/files"]["method"] == "GET"
    assert by_path["/health"]["request_id"] == made.headers["x-request-id"]
    assert {"ts", "level", "logger", "message"} <= set(by_path["/health"])


def test_outside_a_request_there_is_no_id_and_errors_carry_their_traceback() -> None:
    record = logging.LogRecord("tailorml.x", logging.ERROR, __file__, 1, "boom %s", ("x",), None)
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "boom x" and "request_id" not in line
    token = REQUEST_ID.set("req_abc")
    try:
        try:
            raise ValueError("bad")
        except ValueError:
            record = logging.LogRecord("t", logging.ERROR, __file__, 1, "m", (), sys.exc_info())
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["request_id"] == "req_abc" and "ValueError: bad" in line["exc"]
    with pytest.raises(ValueError, match="TAILOR_LOG_FORMAT"):
        handler_config("xml")


def test_the_serve_logging_configuration_writes_json_lines() -> None:
    code = (
        "import logging, logging.config\n"
        "from tailorml.platform.api.server import log_config\n"
        "from tailorml.platform.logs import REQUEST_ID\n"
        "logging.config.dictConfig(log_config('json'))\n"
        "REQUEST_ID.set('req_1')\n"
        "logging.getLogger('tailorml.api').info('hello %s', 'world')\n"
        "logging.getLogger('uvicorn.error').warning('careful')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert lines[0]["message"] == "hello world" and lines[0]["request_id"] == "req_1"
    assert lines[0]["logger"] == "tailorml.api" and lines[1]["level"] == "WARNING"
