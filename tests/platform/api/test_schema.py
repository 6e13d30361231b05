"""schemathesis over /openapi.json: for every operation, generated requests (valid and not)
with a tenant's key (an admin key on /admin) get no 5xx, a documented status, and a body that
matches the documented schema.

The operations are driven from one test (schemathesis' pytest plugin does not run under
pytest 9), each with its own Hypothesis run; every failing operation is reported together.
"""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tailorml.platform.api.app import create_app
from tailorml.platform.settings import Settings
from tests.platform.conftest import make_tenant

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
ADMIN = {"Authorization": "Bearer admin-test-key"}
EXAMPLES = 12


def _runner(operation, key: dict[str, str], statuses: list[int]):  # type: ignore[no-untyped-def]
    """One Hypothesis run over the operation's generated cases."""

    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call_and_validate(headers=key, checks=CHECKS)
        statuses.append(response.status_code)

    return run


def test_every_operation_answers_as_documented(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        tenant = make_tenant(client, "fuzz")
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures: dict[str, str] = {}
        statuses: list[int] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 50

        for operation in operations:
            key = ADMIN if operation.path.startswith("/admin") else tenant
            try:
                _runner(operation, key, statuses)()
            except Exception as exc:  # noqa: BLE001 - collected, reported below
                failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:1500]
    app.state.tailor.engine.dispose()
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    # The run reached the routes: answers, refusals of bad input, and unknown ids.
    assert len(statuses) >= 2 * len(operations)
    assert {200, 400, 404} <= set(statuses), sorted(set(statuses))
