"""The error handlers: a TailorError's status and shape, Retry-After on 429, JSON 500s."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tailorml.errors import RateLimitError
from tailorml.platform.api.app import create_app
from tailorml.platform.settings import Settings
from tests.platform.api.test_errors import error

ADMIN = {"Authorization": "Bearer admin-test-key"}


def test_rate_limits_say_when_to_retry(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/v1/busy")
    def busy() -> None:
        raise RateLimitError("Too many jobs; retry later.", retry_after=2.4)

    @app.get("/v1/busier")
    def busier() -> None:
        raise RateLimitError("Too many jobs; retry later.")

    with TestClient(app) as client:
        res = client.get("/v1/busy", headers=ADMIN)
        assert error(res, 429)["code"] == "rate_limit_exceeded"
        assert res.headers["retry-after"] == "2"
        assert "retry-after" not in client.get("/v1/busier", headers=ADMIN).headers
    app.state.tailor.engine.dispose()
