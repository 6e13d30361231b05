"""Key scopes through the API: each scope's allowed routes answer, the others answer 403.

API5:2023 Broken Function Level Authorization: a key limited to inference, reading, fine-tuning
or annotation cannot call the routes outside its scope, and is refused before its body is read.
"""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

ADMIN = {"Authorization": "Bearer admin-test-key"}


def _scoped(client: TestClient, scope: str) -> dict[str, str]:
    res = client.post("/admin/tenants/acme/keys", json={"scope": scope}, headers=ADMIN)
    assert res.status_code == 200, res.text
    return {"Authorization": f"Bearer {res.json()['api_key']}"}


def _upload(client: TestClient, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/files",
        headers=headers,
        files={"file": ("a.txt", io.BytesIO(b"hello\n"), "text/plain")},
        data={"purpose": "user_data"},
    )


# (scope, (method, path) pairs that must be refused, pairs that must not be refused)
REFUSED = {
    "read-only": [
        ("POST", "/v1/datasets"),
        ("DELETE", "/v1/files/file-x"),
        ("POST", "/v1/embeddings"),
    ],
    "inference": [("GET", "/v1/files"), ("POST", "/v1/fine_tuning/jobs"), ("GET", "/v1/datasets")],
    "annotator": [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/fine_tuning/jobs"),
    ],
    "fine-tune": [("GET", "/admin/tenants")],
}
ALLOWED = {
    "read-only": [("GET", "/v1/files"), ("GET", "/v1/models"), ("GET", "/v1/fine_tuning/jobs")],
    "inference": [("GET", "/v1/models")],
    "annotator": [("GET", "/v1/files"), ("GET", "/v1/datasets")],
    "fine-tune": [("GET", "/v1/files"), ("GET", "/v1/fine_tuning/jobs"), ("GET", "/v1/models")],
    "all": [("GET", "/v1/files"), ("GET", "/v1/datasets"), ("GET", "/v1/fine_tuning/jobs")],
}


@pytest.mark.parametrize("scope", sorted(REFUSED))
def test_scope_refuses_what_it_does_not_cover(client: TestClient, acme, scope: str) -> None:  # type: ignore[no-untyped-def]
    """API5:2023 Broken Function Level Authorization: 403 insufficient_scope outside the scope."""
    headers = _scoped(client, scope)
    for method, path in REFUSED[scope]:
        res = client.request(method, path, headers=headers, json={})
        assert res.status_code == 403, (scope, method, path, res.text)
        err = res.json()["error"]
        if path.startswith("/v1"):
            assert err["code"] == "insufficient_scope"
            assert f"'{scope}'" in err["message"] and "needs a key with scope" in err["message"]


@pytest.mark.parametrize("scope", sorted(ALLOWED))
def test_scope_allows_what_it_covers(client: TestClient, acme, scope: str) -> None:  # type: ignore[no-untyped-def]
    """API5:2023 Broken Function Level Authorization: the covered routes still answer."""
    headers = _scoped(client, scope)
    for method, path in ALLOWED[scope]:
        res = client.request(method, path, headers=headers)
        assert res.status_code == 200, (scope, method, path, res.text)


def test_upload_needs_fine_tune_or_all(client: TestClient, acme) -> None:  # type: ignore[no-untyped-def]
    """API5:2023 Broken Function Level Authorization: creating objects needs a writing scope."""
    for scope in ("read-only", "inference", "annotator"):
        res = _upload(client, _scoped(client, scope))
        assert res.status_code == 403 and res.json()["error"]["code"] == "insufficient_scope"
    assert client.get("/v1/files", headers=acme).json()["data"] == []
    for scope in ("fine-tune", "all"):
        assert _upload(client, _scoped(client, scope)).status_code == 200
    ro = _scoped(client, "read-only")
    file_id = client.get("/v1/files", headers=ro).json()["data"][0]["id"]
    assert client.delete(f"/v1/files/{file_id}", headers=ro).status_code == 403
    assert client.get(f"/v1/files/{file_id}/content", headers=ro).status_code == 200


def test_inference_key_reaches_inference_routes(client: TestClient, acme) -> None:  # type: ignore[no-untyped-def]
    """API5:2023 Broken Function Level Authorization: inference routes pass the scope check.

    No model is loaded here, so a missing model's 404 shows the request got past the scope.
    """
    headers = _scoped(client, "inference")
    res = client.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert res.status_code != 403, res.text
    res = client.post("/v1/embeddings", headers=headers, json={"model": "nope", "input": "x"})
    assert res.status_code != 403, res.text


def test_refused_before_the_body_is_read(client: TestClient, acme, settings) -> None:  # type: ignore[no-untyped-def]
    """API4:2023 Unrestricted Resource Consumption: an out-of-scope upload over the limit is a 403."""
    headers = _scoped(client, "read-only")
    big = b"x" * (settings.max_upload_bytes + 200_000)
    res = client.post(
        "/v1/files",
        headers=headers,
        files={"file": ("a.txt", io.BytesIO(big), "text/plain")},
        data={"purpose": "user_data"},
    )
    assert res.status_code == 403  # the scope answered, not the 413 of the body's size


def test_admin_keys_keep_working(client: TestClient, acme) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/admin/tenants", headers=ADMIN).status_code == 200
    key = client.post("/admin/tenants/acme/keys", headers=ADMIN).json()
    assert key["scope"] == "all"
