"""API8:2023 Security Misconfiguration (pickle loading, as in the MLflow and Hugging Face
advisories): a model folder with a pickle-based weights file, or a config asking for remote
code, is refused before anything loads it. The pickle here creates a canary file when unpickled;
the canary never appears, through the library and through the API."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import threading
from pathlib import Path

import pytest

from tailorml.errors import UnsafeModelError
from tailorml.platform.jobs.worker import Worker
from tests.conftest import EXAMPLES
from tests.platform.test_files import upload


class _Payload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.canary}",))


def _poisoned(tiny_models, tmp_path: Path, name: str = "pytorch_model.bin") -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    folder = tmp_path / "poisoned"
    shutil.copytree(tiny_models["encoder"], folder)
    canary = tmp_path / "canary"
    (folder / name).write_bytes(pickle.dumps(_Payload(canary)))
    return folder, canary


@pytest.mark.parametrize(
    "name", ["pytorch_model.bin", "model.pt", "weights.pth", "x.pkl", "m.ckpt"]
)
def test_library_refuses_pickle_files_before_loading(tiny_models, tmp_path, name) -> None:  # type: ignore[no-untyped-def]
    from tailorml.models.sources import materialize

    folder, canary = _poisoned(tiny_models, tmp_path, name)
    with pytest.raises(UnsafeModelError) as err:
        materialize(str(folder), tmp_path / "cache")
    assert name in err.value.message and "safetensors" in err.value.message
    assert not canary.exists()


def test_serve_and_train_loaders_refuse_it_too(tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tailorml.serve.backend import LoadConfig
    from tailorml.serve.bases import BaseSpec
    from tailorml.serve.loading import load_weights
    from tailorml.train.sft import ChatSftTask

    folder, canary = _poisoned(tiny_models, tmp_path)
    with pytest.raises(UnsafeModelError, match="pytorch_model.bin"):
        load_weights(BaseSpec(path=str(folder), head="encoder"), LoadConfig())
    with pytest.raises(UnsafeModelError, match="pytorch_model.bin"):
        ChatSftTask().load_model(folder, None)
    assert not canary.exists()


def test_remote_code_configs_are_refused(tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tailorml.models.sources import materialize

    folder = tmp_path / "remote"
    shutil.copytree(tiny_models["encoder"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsafeModelError, match="auto_map"):
        materialize(str(folder), tmp_path / "cache")


def test_api_job_on_a_pickled_model_fails_clearly(
    client, acme, settings, tiny_models, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    folder, canary = _poisoned(tiny_models, tmp_path)
    file_id = upload(client, acme, EXAMPLES / "spam_assassin" / "test.jsonl").json()["id"]
    res = client.post(
        "/v1/fine_tuning/jobs", headers=acme, json={"model": str(folder), "training_file": file_id}
    )
    if res.status_code == 400:
        error = res.json()["error"]
    else:
        assert res.status_code == 200, res.text
        thread = threading.Thread(target=Worker(settings).run, kwargs={"max_jobs": 1})
        thread.start()
        thread.join(timeout=120)
        job = client.get(f"/v1/fine_tuning/jobs/{res.json()['id']}", headers=acme).json()
        assert job["status"] == "failed"
        error = job["error"]
    assert error["code"] == "unsafe_model_file"
    assert "pytorch_model.bin" in error["message"] and "safetensors" in error["message"]
    assert str(tmp_path) not in error["message"]  # no server path reaches the tenant
    assert not canary.exists()


def test_the_payload_really_runs_code_when_unpickled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    canary = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(canary)))  # what torch.load(weights_only=False) would do
    assert canary.exists()
