"""schemathesis over /openapi.json: for every operation, generated requests (valid and not)
with a tenant's key and with an admin key get no 5xx, a documented status, and a body that
matches the documented schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tailorml.platform.api.app import create_app
from tailorml.platform.settings import Settings
from tests.platform.conftest import make_tenant

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[object, dict[str, str]]]:
    app = create_app(settings)
    with TestClient(app) as client:
        tenant = make_tenant(client, "fuzz")
        yield app, tenant
    app.state.tailor.engine.dispose()


@pytest.fixture
def api_schema(api):  # type: ignore[no-untyped-def]
    app, _ = api
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_5xx_and_answers_as_documented(case, api) -> None:  # type: ignore[no-untyped-def]
    _, tenant = api
    key = {"Authorization": "Bearer admin-test-key"} if case.path.startswith("/admin") else tenant
    case.call_and_validate(headers=key, checks=CHECKS)
