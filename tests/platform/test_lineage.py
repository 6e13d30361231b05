"""Lineage: a file's derived datasets, their outputs, the jobs and models trained on them;
a model names the files and datasets it came from; deleting a file answers what was derived
and, asked to, deletes the derived models too, leaving none of the file's bytes on disk."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tailorml.platform.auth import get_tenant
from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Job, Model
from tests.platform.api.test_errors import error

pytest.importorskip("torch", reason="the models are peft adapters (the ml extra)")

from tests.platform.api.test_inference import adapters  # noqa: E402, F401
from tests.platform.test_model_deletion import canaries, fine_tuned  # noqa: E402


def _upload(client, headers, body: bytes, name: str = "records.jsonl") -> str:  # type: ignore[no-untyped-def]
    res = client.post("/v1/files", headers=headers, data={"purpose": "user_data"},
                      files={"file": (name, io.BytesIO(body))})  # fmt: skip
    assert res.status_code == 200, res.text
    return str(res.json()["id"])


def _canary(tag: str) -> bytes:
    return f"tailorml-lineage-canary-{tag}-91c2".encode()


def _graph(client, acme, settings, adapters, tag: str) -> dict[str, str]:  # type: ignore[no-untyped-def]  # noqa: F811
    """upload -> dataset -> output file -> job 1 -> model 1; upload -> job 2 -> model 2."""
    upload = _upload(client, acme, _canary(tag) + b' {"text": "a customer record"}')
    output = _upload(client, acme, b'{"text": "a cleaned record"}', "clean.jsonl")
    unrelated = _upload(client, acme, b"someone else's notes", "other.txt")
    one = fine_tuned(client, settings, "acme", adapters["a"], f"ftjob-lineage{tag}1")
    two = fine_tuned(client, settings, "acme", adapters["b"], f"ftjob-lineage{tag}2")
    with session_scope(client.app.state.tailor.sessions) as s:
        tenant_id = get_tenant(s, name_or_id="acme").id
        s.add(Job(id=f"ds-lineage{tag}", kind="dataset", tenant_id=tenant_id, status="succeeded",
                  spec={"files": [{"id": upload}, {"id": unrelated}]},
                  result={"output_file": output}))  # fmt: skip
        s.get(Job, f"ftjob-lineage{tag}1").spec = {"training_file": output}  # type: ignore[union-attr]
        s.get(Job, f"ftjob-lineage{tag}2").spec = {"training_file": unrelated,  # type: ignore[union-attr]
                                                   "validation_file": upload}  # fmt: skip
    return {"upload": upload, "output": output, "unrelated": unrelated, "one": one, "two": two,
            "dataset": f"ds-lineage{tag}"}  # fmt: skip


def test_what_was_derived_and_what_a_model_came_from(
    client,
    acme,
    globex,
    settings,
    adapters,  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    g = _graph(client, acme, settings, adapters, "a")
    derived = client.get(f"/v1/files/{g['upload']}/lineage", headers=acme).json()
    assert derived == {
        "object": "file.lineage",
        "file_id": g["upload"],
        "datasets": [g["dataset"]],
        "files": [g["output"]],
        "fine_tuning_jobs": ["ftjob-lineagea1", "ftjob-lineagea2"],
        "models": sorted([g["one"], g["two"]]),
    }
    only_two = client.get(f"/v1/files/{g['unrelated']}/lineage", headers=acme).json()
    assert only_two["models"] == sorted([g["one"], g["two"]])  # the dataset read it too
    assert client.get(f"/v1/files/{g['output']}/lineage", headers=acme).json()["models"] == [
        g["one"]
    ]
    model = client.get(f"/v1/models/{g['one']}", headers=acme).json()
    assert model["trained_from"] == {
        "files": [g["output"], g["upload"], g["unrelated"]],
        "datasets": [g["dataset"]],
    }
    assert error(client.get(f"/v1/files/{g['upload']}/lineage", headers=globex), 404)


def test_deleting_a_file_keeps_or_deletes_what_was_trained_on_it(
    client,
    acme,
    settings,
    adapters,  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    g = _graph(client, acme, settings, adapters, "b")
    kept = client.delete(f"/v1/files/{g['upload']}", headers=acme).json()
    assert kept["deleted"] is True and kept["models_deleted"] == []
    assert kept["models_kept"] == sorted([g["one"], g["two"]])
    assert kept["derived"]["files"] == [g["output"]]
    # The dataset's output went with its input (as before); the models stay, listed.
    assert client.get(f"/v1/files/{g['output']}", headers=acme).status_code == 404
    assert client.get(f"/v1/models/{g['one']}", headers=acme).status_code == 200

    g = _graph(client, acme, settings, adapters, "c")
    bad = error(client.delete(f"/v1/files/{g['upload']}?derived_models=all", headers=acme), 400)
    assert "derived_models" in bad["message"] + str(bad["param"])
    gone = client.delete(f"/v1/files/{g['upload']}", headers=acme,
                         params={"derived_models": "delete"}).json()  # fmt: skip
    assert gone["models_deleted"] == sorted([g["one"], g["two"]]) and gone["models_kept"] == []
    for model in (g["one"], g["two"]):
        assert client.get(f"/v1/models/{model}", headers=acme).status_code == 404
    with session_scope(client.app.state.tailor.sessions) as s:
        assert s.get(Model, g["one"]) is None
    # Nothing of the file is left: no stored copy, no dataset output, no model folder holding it.
    assert not (Path(settings.jobs_dir) / "ftjob-lineagec1").exists()
    assert not (Path(settings.jobs_dir) / "ftjob-lineagec2").exists()
    files = [p for p in Path(settings.data_dir).rglob("*") if p.is_file()]
    assert [p for p in files if _canary("c") in p.read_bytes()] == []
    assert [p for p in files if _canary("b") in p.read_bytes()] == []  # deleted, models kept
    assert canaries(Path(settings.data_dir))  # graph b's kept models are still on disk
