"""Deleting a fine-tuned model removes its weights and its job's checkpoints from disk and from
the serving engine (nothing of it is left under the data folder), never a folder the operator
registered from elsewhere, and never another tenant's model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tailorml.platform.auth import get_tenant
from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Checkpoint, Job, Model
from tests.platform.api.test_errors import error

pytest.importorskip("torch", reason="serving a model needs the ml extra (torch)")

from tests.platform.api.test_inference import adapters, chat  # noqa: E402, F401

MARK = b"tailorml-model-deletion-canary-7f3a"


def fine_tuned(client, settings, tenant: str, adapter: Path, job_id: str) -> str:  # type: ignore[no-untyped-def]
    """A finished job's folder: the model, two checkpoints carrying a canary, and the rows."""
    job_dir = Path(settings.jobs_dir) / job_id
    shutil.copytree(adapter, job_dir / "model")
    for step in (10, 20):
        ckpt = job_dir / "checkpoints" / f"step-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "state.bin").write_bytes(MARK * 10)
    (job_dir / "model" / "training_args.json").write_bytes(MARK)
    model_id = f"ft:tiny-llama:{tenant}:del:{job_id[-8:]}"
    with session_scope(client.app.state.tailor.sessions) as s:
        tenant_id = get_tenant(s, name_or_id=tenant).id
        s.add(Job(id=job_id, kind="fine_tune", tenant_id=tenant_id, status="succeeded", spec={}))
        s.flush()
        for step in (10, 20):
            s.add(Checkpoint(job_id=job_id, step=step, metrics={},
                             path=str(job_dir / "checkpoints" / f"step-{step}")))  # fmt: skip
        s.add(Model(id=model_id, tenant_id=tenant_id, job_id=job_id, base="tiny-llama",
                    task="chat", path=str(job_dir / "model")))  # fmt: skip
    return model_id


def canaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and MARK in p.read_bytes()]


def test_deleting_a_model_leaves_nothing_of_it(client, acme, globex, settings, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = fine_tuned(client, settings, "acme", adapters["a"], "ftjob-deletion0001")
    assert chat(client, acme, model).status_code == 200  # served: its adapter is in memory
    state = client.app.state.tailor
    assert model in state.serving.loaded()
    assert canaries(Path(settings.data_dir))
    assert error(client.delete(f"/v1/models/{model}", headers=globex), 404)
    assert client.delete(f"/v1/models/{model}", headers=acme).json()["deleted"] is True
    assert canaries(Path(settings.data_dir)) == []
    assert not (Path(settings.jobs_dir) / "ftjob-deletion0001").exists()
    assert model not in state.serving.loaded()
    assert error(chat(client, acme, model), 404)["code"] == "model_not_found"
    with session_scope(state.sessions) as s:
        assert s.query(Checkpoint).filter_by(job_id="ftjob-deletion0001").count() == 0
        assert s.get(Job, "ftjob-deletion0001") is not None  # the job's record stays, as OpenAI's


def test_a_folder_outside_the_data_folder_is_not_deleted(client, acme, adapters, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    outside = tmp_path / "operator-models" / "kept"
    shutil.copytree(adapters["b"], outside)
    with session_scope(client.app.state.tailor.sessions) as s:
        tenant_id = get_tenant(s, name_or_id="acme").id
        s.add(Model(id="ft:tiny-llama:acme:kept:00000001", tenant_id=tenant_id,
                    base="tiny-llama", task="chat", path=str(outside)))  # fmt: skip
    res = client.delete("/v1/models/ft:tiny-llama:acme:kept:00000001", headers=acme)
    assert res.status_code == 200
    assert (outside / "adapter_model.safetensors").exists()
