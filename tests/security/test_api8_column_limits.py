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
