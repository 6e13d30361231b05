"""GET /v1/models/{id}/content: a tenant downloads its fine-tuned model as a standard folder;
base models and other tenants' models are refused; the CLI exports the same."""

from __future__ import annotations

import io
import tarfile

import pytest

from tailorml.platform.jobs.worker import Worker
from tests.platform.jobs.test_trainer_process import _create, _job

pytest.importorskip("torch", reason="training needs the ml extra (torch)")


def test_download_a_fine_tuned_model(client, acme, globex, settings, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    job_id = _create(client, acme, tiny_models, tmp_path, epochs=1)
    assert Worker(settings).run(max_jobs=1) == 1
    name = _job(client, acme, job_id)["fine_tuned_model"]

    res = client.get(f"/v1/models/{name}/content?format=merged", headers=acme)
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(res.content)) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames()}
    assert {"model.safetensors", "config.json", "README.md", "tailor_model.json"} <= names
    assert not any(n.startswith("neighbors") for n in names)
    again = client.get(f"/v1/models/{name}/content?format=merged", headers=acme)
    assert again.content == res.content  # built once, kept beside the job

    refused = client.get(f"/v1/models/{name}/content?format=adapter", headers=acme)
    assert refused.status_code == 400 and "format=merged" in refused.json()["error"]["message"]
    assert client.get(f"/v1/models/{name}/content", headers=globex).status_code == 404
    base = client.get("/v1/models/minilm-l6/content", headers=acme)
    assert base.status_code == 400 and "base model" in base.json()["error"]["message"]
    # Deleting the model deletes its exports with its job's folder.
    assert client.delete(f"/v1/models/{name}", headers=acme).status_code == 200
    assert not (settings.jobs_dir / job_id / "exports").exists()


def test_the_cli_exports_a_folder(tiny_models, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from tailorml.cli import app
    from tailorml.models.sources import materialize
    from tailorml.train.loop import train
    from tests.train.conftest import EventLog, spam_records
    from tests.train.test_loop import cls_spec

    base = materialize(str(tiny_models["encoder"]), tmp_path / "cache")
    result = train(
        cls_spec(n_epochs=1),
        base,
        spam_records("train", 12),
        [],
        tmp_path / "run",
        on_event=EventLog(),
    )
    out = CliRunner().invoke(
        app, ["models", "export", str(result.model_dir), "--out", str(tmp_path / "exp")]
    )
    assert out.exit_code == 0, out.output
    assert (tmp_path / "exp" / "model.safetensors").is_file()
    bad = CliRunner().invoke(
        app,
        [
            "models",
            "export",
            str(result.model_dir),
            "--out",
            str(tmp_path / "x"),
            "--format",
            "adapter",
        ],
    )
    assert bad.exit_code == 2 and "format=merged" in bad.output
