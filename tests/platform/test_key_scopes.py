"""Key scopes: which method and path each scope allows, and the 403 it answers otherwise."""

from __future__ import annotations

import pytest

from tailorml.errors import InvalidRequestError, PermissionDeniedError
from tailorml.platform.key_scopes import SCOPES, allows, check_scope, check_scope_name

CASES = [
    # (method, path, scopes that allow it besides "all")
    ("GET", "/v1/models", {"read-only", "inference", "fine-tune"}),
    ("GET", "/v1/models/ft:x:acme:s:ftjob-1", {"read-only", "inference", "fine-tune"}),
    ("DELETE", "/v1/models/ft:x:acme:s:ftjob-1", {"fine-tune"}),
    ("POST", "/v1/chat/completions", {"inference", "fine-tune"}),
    ("POST", "/v1/completions", {"inference", "fine-tune"}),
    ("POST", "/v1/embeddings", {"inference", "fine-tune"}),
    ("POST", "/v1/classifications", {"inference", "fine-tune"}),
    ("POST", "/v1/files", {"fine-tune"}),
    ("GET", "/v1/files", {"read-only", "fine-tune", "annotator"}),
    ("GET", "/v1/files/file-1/content", {"read-only", "fine-tune", "annotator"}),
    ("DELETE", "/v1/files/file-1", {"fine-tune"}),
    ("POST", "/v1/fine_tuning/jobs", {"fine-tune"}),
    ("GET", "/v1/fine_tuning/jobs", {"read-only", "fine-tune"}),
    ("POST", "/v1/datasets", {"fine-tune"}),
    ("GET", "/v1/datasets/ds-1/records", {"read-only", "fine-tune", "annotator"}),
    ("GET", "/v1/filesystem", {"read-only"}),  # not under /v1/files: a segment, not a prefix
    ("POST", "/v1/chat/completions/x", set()),
]


@pytest.mark.parametrize(("method", "path", "allowed"), CASES)
def test_each_scope_allows_what_it_says(method: str, path: str, allowed: set[str]) -> None:
    for scope in SCOPES:
        expected = scope == "all" or scope in allowed
        assert allows(scope, method, path) is expected, (scope, method, path)


def test_refusal_names_the_scope_and_what_is_needed() -> None:
    with pytest.raises(PermissionDeniedError) as info:
        check_scope("read-only", "POST", "/v1/files")
    err = info.value
    assert err.status_code == 403 and err.code == "insufficient_scope"
    assert "'read-only'" in err.message and "'fine-tune'" in err.message
    assert "tailor admin key create" in err.message


def test_unknown_scope_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="read-only"):
        check_scope_name("write")
