"""Platform fixtures: settings on a fresh database, an app, a client, tenants with keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tailorml.platform.api.app import create_app
from tailorml.platform.settings import Settings


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        master_secret="test-secret",
        admin_key="admin-test-key",
        lease_seconds=3,
        heartbeat_seconds=0.3,
        poll_seconds=0.1,
        allow_model_paths=True,
        max_upload_bytes=1_000_000,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.state.tailor.engine.dispose()


def make_tenant(client: TestClient, name: str) -> dict[str, str]:
    """Create a tenant through the admin API; return headers carrying its key."""
    res = client.post(
        "/admin/tenants", json={"name": name}, headers={"Authorization": "Bearer admin-test-key"}
    )
    assert res.status_code == 200, res.text
    return {"Authorization": f"Bearer {res.json()['api_key']}"}


@pytest.fixture
def acme(client: TestClient) -> dict[str, str]:
    return make_tenant(client, "acme")


@pytest.fixture
def globex(client: TestClient) -> dict[str, str]:
    return make_tenant(client, "globex")
