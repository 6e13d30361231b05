"""API8 (security misconfiguration), errors: on PostgreSQL a 306-character file name reached the
``files.filename`` column (255) and the API answered a plain-text 500; a NUL in a path or query
parameter (``/v1/files/%00``) did the same, as PostgreSQL refuses NUL in text. Both are checked
before the database now and answer 400 in OpenAI's shape, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from tests.conftest import EXAMPLES
from tests.platform.test_files import upload


def test_a_file_name_longer_than_its_column_answers_400(client, acme) -> None:  # type: ignore[no-untyped-def]
    res = upload(client, acme, EXAMPLES / "spam_assassin" / "test.jsonl", name="a" * 300 + ".jsonl")
    assert res.status_code == 400, res.text
    err = res.json()["error"]
    assert (err["param"], err["code"]) == ("file", "invalid_request")
    assert "306 characters" in err["message"] and "255" in err["message"]
    assert client.get("/v1/files", headers=acme).json()["data"] == []
    assert not list(client.app.state.tailor.settings.files_dir.rglob("file-*"))


def test_a_nul_in_the_url_answers_400(client, acme) -> None:  # type: ignore[no-untyped-def]
    for url in ("/v1/files/file-%00", "/v1/files?purpose=fine-tune%00"):
        res = client.get(url, headers=acme)
        assert res.status_code == 400, res.text
        assert res.json()["error"]["code"] == "invalid_url"


def test_a_nul_in_a_json_string_answers_400_before_the_database(client, acme) -> None:  # type: ignore[no-untyped-def]
    """Found by schemathesis (tests/platform/api/test_schema.py): ``"files": ["P\\u0000"]`` on
    POST /v1/datasets reached a PostgreSQL lookup and answered 500."""
    for body in ('{"files": ["file-\\u0000x"], "recipe": "clean"}',
                 '{"model": "m\\u0000", "training_file": "file-1"}'):  # fmt: skip
        for path in ("/v1/datasets", "/v1/fine_tuning/jobs"):
            res = client.post(path, headers={**acme, "Content-Type": "application/json"},
                              content=body)  # fmt: skip
            assert res.status_code == 400, res.text
            assert res.json()["error"]["code"] == "invalid_json"
    # An escaped backslash before "u0000" is text, not a NUL: it reaches validation.
    res = client.post("/v1/fine_tuning/jobs", headers=acme,
                      json={"model": "m\\u0000", "training_file": "file-1"})  # fmt: skip
    assert res.status_code in (400, 404) and res.json()["error"]["code"] != "invalid_json"
