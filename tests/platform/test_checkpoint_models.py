"""A job's checkpoints are models, as with OpenAI: ``<fine_tuned_model>:ckpt-step-N`` is listed
with the tenant's models and answers ``/v1/chat/completions`` while its folder is kept; another
tenant, a pruned folder or a step that never was are ``model_not_found``."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("torch", reason="inference needs the ml extra (torch)")

from tailorml.models.safety import CHECKPOINT_STATE_FILES  # noqa: E402
from tailorml.platform.auth import get_tenant  # noqa: E402
from tailorml.platform.db.engine import session_scope  # noqa: E402
from tailorml.platform.db.models import Checkpoint, Job  # noqa: E402
from tests.platform.api.test_inference import adapters  # noqa: E402, F401
from tests.platform.conftest import make_tenant  # noqa: E402

NAME = "ft:tiny-llama:acme:early:ftjob-1"
MESSAGES = [{"role": "user", "content": "Hello there"}]


def _cancelled_job_with_a_checkpoint(client, folder) -> None:  # type: ignore[no-untyped-def]
    """What a job cancelled after step 3 leaves: no model row, one checkpoint on disk."""
    with session_scope(client.app.state.tailor.sessions) as s:
        tenant_id = get_tenant(s, name_or_id="acme").id
        s.add(Job(id="ftjob-1", kind="fine_tune", tenant_id=tenant_id, status="cancelled",
                  spec={"fine_tuned_model": NAME, "model": "tiny-llama", "task": "chat"}))  # fmt: skip
        s.flush()
        s.add(Checkpoint(job_id="ftjob-1", step=3, path=str(folder), metrics={}))


def test_a_checkpoint_is_listed_and_answers_chat(client, adapters, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    acme, globex = make_tenant(client, "acme"), make_tenant(client, "globex")
    folder = tmp_path / "step-3"
    shutil.copytree(adapters["a"], folder)
    for name in CHECKPOINT_STATE_FILES:  # a checkpoint's training state lies beside it
        (folder / name).write_bytes(b"state")
    _cancelled_job_with_a_checkpoint(client, folder)
    ckpt = f"{NAME}:ckpt-step-3"

    listed = {m["id"]: m for m in client.get("/v1/models", headers=acme).json()["data"]}
    assert listed[ckpt]["fine_tuning_job"] == "ftjob-1" and listed[ckpt]["checkpoint_step"] == 3
    body = {"model": ckpt, "messages": MESSAGES, "max_tokens": 3, "temperature": 0}
    answer = client.post("/v1/chat/completions", headers=acme, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == ckpt

    refused = client.post("/v1/chat/completions", headers=globex, json=body)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    assert ckpt not in [m["id"] for m in client.get("/v1/models", headers=globex).json()["data"]]
    other_step = {**body, "model": f"{NAME}:ckpt-step-4"}
    assert client.post("/v1/chat/completions", headers=acme, json=other_step).status_code == 404

    shutil.rmtree(folder)  # training keeps only its newest checkpoints
    gone = client.post("/v1/chat/completions", headers=acme, json=body)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    assert ckpt not in [m["id"] for m in client.get("/v1/models", headers=acme).json()["data"]]
