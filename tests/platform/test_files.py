"""/v1/files: upload with validation (every bad line reported), limits, tenant isolation."""

from __future__ import annotations

import json

from tests.conftest import EXAMPLES


def upload(client, headers, path, purpose="fine-tune", name=None):  # type: ignore[no-untyped-def]
    with open(path, "rb") as fh:
        return client.post(
            "/v1/files",
            headers=headers,
            files={"file": (name or path.name, fh)},
            data={"purpose": purpose},
        )


def test_upload_list_retrieve_content_delete(client, acme) -> None:  # type: ignore[no-untyped-def]
    path = EXAMPLES / "spam_assassin" / "train.jsonl"
    res = upload(client, acme, path)
    assert res.status_code == 200, res.text
    obj = res.json()
    assert obj["object"] == "file" and obj["status"] == "processed"
    assert (
        obj["bytes"] == path.stat().st_size
        and obj["task"] == "classification"
        and obj["n_records"] == 400
    )
    assert [f["id"] for f in client.get("/v1/files", headers=acme).json()["data"]] == [obj["id"]]
    assert client.get(f"/v1/files/{obj['id']}", headers=acme).json()["filename"] == "train.jsonl"
    assert client.get(f"/v1/files/{obj['id']}/content", headers=acme).content == path.read_bytes()
    assert client.delete(f"/v1/files/{obj['id']}", headers=acme).json()["deleted"] is True
    assert client.get(f"/v1/files/{obj['id']}", headers=acme).status_code == 404


def test_bad_lines_are_reported_with_numbers(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lines = (EXAMPLES / "glaive_chat" / "train.jsonl").read_text().splitlines()[:5]
    lines[1] = lines[1][:-5]  # truncated JSON
    broken = json.loads(lines[3])
    broken["messages"] = [m for m in broken["messages"] if m["role"] != "assistant"]
    lines[3] = json.dumps(broken)
    bad = tmp_path / "chat.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    res = upload(client, acme, bad)
    assert res.status_code == 400
    err = res.json()["error"]
    assert err["code"] == "invalid_file_format"
    assert (
        "line 2: invalid JSON" in err["message"]
        and "line 4: messages has no assistant turn" in err["message"]
    )
    assert client.get("/v1/files", headers=acme).json()["data"] == []  # nothing half-written
    assert not list((client.app.state.tailor.settings.files_dir).rglob("file-*"))


def test_wrong_format_and_purpose(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "train.csv"
    csv.write_text("text,label\n")
    assert upload(client, acme, csv).json()["error"]["code"] == "invalid_file_format"
    res = upload(client, acme, EXAMPLES / "spam_assassin" / "test.jsonl", purpose="homework")
    assert res.status_code == 400 and res.json()["error"]["param"] == "purpose"


def test_size_limit_answers_413(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    big = tmp_path / "big.jsonl"
    line = (EXAMPLES / "spam_assassin" / "train.jsonl").read_text().splitlines()[0] + "\n"
    big.write_text(line * (1_100_000 // len(line)))
    res = upload(client, acme, big)
    assert res.status_code == 413 and res.json()["error"]["code"] == "payload_too_large"
    assert client.get("/v1/files", headers=acme).json()["data"] == []


def test_files_are_isolated_between_tenants(client, acme, globex) -> None:  # type: ignore[no-untyped-def]
    file_id = upload(client, acme, EXAMPLES / "spam_assassin" / "test.jsonl").json()["id"]
    missing = client.get("/v1/files/file-doesnotexist", headers=globex)
    for res in (
        client.get(f"/v1/files/{file_id}", headers=globex),
        client.get(f"/v1/files/{file_id}/content", headers=globex),
        client.delete(f"/v1/files/{file_id}", headers=globex),
    ):
        assert res.status_code == 404
        assert res.json()["error"]["message"].replace(file_id, "X") == missing.json()["error"][
            "message"
        ].replace("file-doesnotexist", "X")
    assert client.get("/v1/files", headers=globex).json()["data"] == []
    assert client.get(f"/v1/files/{file_id}", headers=acme).status_code == 200


def test_file_names_are_base_names_checked_against_the_column(client, acme) -> None:  # type: ignore[no-untyped-def]
    path = EXAMPLES / "spam_assassin" / "test.jsonl"
    for sent in ("../../etc/test.jsonl", "C:\\Users\\me\\test.jsonl", "/abs/test.jsonl"):
        res = upload(client, acme, path, name=sent)
        assert res.status_code == 200 and res.json()["filename"] == "test.jsonl", res.text
    for bad, why in (
        ("a" * 250 + ".jsonl", "256 characters"),
        ("tab\tbell\x07.jsonl", "U+0007, U+0009"),
        ("evil\u202elsonj.jsonl", "U+202E"),
        ("../", "no file name"),
    ):
        # Raw multipart: httpx would percent-encode the control characters.
        body = (
            b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="'
            + bad.encode()
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
            + path.read_bytes()
            + b"\r\n--b--\r\n"
        )
        res = client.post(
            "/v1/files",
            headers={**acme, "Content-Type": "multipart/form-data; boundary=b"},
            content=body,
        )
        assert res.status_code == 400 and res.json()["error"]["param"] == "file", res.text
        assert why in res.json()["error"]["message"]
    assert upload(client, acme, path, name="é" * 249 + ".jsonl").status_code == 200
    assert len(client.get("/v1/files", headers=acme).json()["data"]) == 4


def test_stale_temporary_files_are_removed_at_start(settings) -> None:  # type: ignore[no-untyped-def]
    import os
    import time

    from tailorml.platform.api.app import create_app

    folder = settings.files_dir / "tn_x"
    folder.mkdir(parents=True)
    stale, fresh, kept = folder / ".tmp-killed", folder / ".tmp-writing", folder / "file-1"
    for path in (stale, fresh, kept):
        path.write_bytes(b"partial upload")
    day_ago = time.time() - 86_400
    for path in (stale, kept):
        os.utime(path, (day_ago, day_ago))
    # Training's atomic folders are its own to clean: not entered.
    atomic = settings.data_dir / "jobs" / ".tmp-ckpt-1" / ".tmp-inner"
    atomic.parent.mkdir(parents=True)
    atomic.write_bytes(b"x")
    os.utime(atomic, (day_ago, day_ago))
    create_app(settings).state.tailor.engine.dispose()
    assert not stale.exists() and fresh.exists() and kept.exists() and atomic.exists()
