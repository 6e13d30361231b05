"""A fine-tune's training runs in a child process the worker follows: its events reach the
database in order and in batches, checkpoints only after the events before them, a cancel
leaves no trainer behind, and a library error or a crash ends the job as it did in-process."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, select

from tailorml.errors import FileFormatError
from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Checkpoint, Job, JobEvent
from tailorml.platform.jobs.trainer_process import CHILD_MODULE
from tailorml.platform.jobs.worker import Worker
from tailorml.platform.storage import LocalStorage
from tailorml.records import read_records
from tests.conftest import EXAMPLES
from tests.platform.test_files import upload
from tests.train.test_run import _alive

pytest.importorskip("torch", reason="training needs the ml extra (torch)")


def _lines(tmp_path: Path, name: str, src: str, n: int) -> Path:
    path = tmp_path / name
    lines = (EXAMPLES / "spam_assassin" / src).read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:n]))
    return path


def _create(client, acme, tiny_models, tmp_path, *, epochs: int, model=None, **extra):  # type: ignore[no-untyped-def]
    """A classification job on 40 real e-mails (36 to train: 5 steps an epoch)."""
    file_id = upload(client, acme, _lines(tmp_path, "train.jsonl", "train.jsonl", 40)).json()["id"]
    body = {
        "model": str(model or tiny_models["encoder"]),
        "training_file": file_id,
        "hyperparameters": {"n_epochs": epochs, "batch_size": 8},
        "method": {"type": "full", "training": {"checkpoint_every": 2, "eval_every": 1000}},
        **extra,
    }
    res = client.post("/v1/fine_tuning/jobs", headers=acme, json=body)
    assert res.status_code == 200, res.text
    return res.json()["id"]


def _job(client, acme, job_id: str) -> dict:  # type: ignore[no-untyped-def]
    return client.get(f"/v1/fine_tuning/jobs/{job_id}", headers=acme).json()


def _trainers(job_dir: Path) -> list[int]:
    """Running training processes of this job (found by their module and spec's path)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        spec = str(job_dir / "run_spec.json").encode()
        if CHILD_MODULE.encode() in args and spec in args and _alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def _writes(worker: Worker) -> list[list[tuple]]:
    """What each flush of the worker's sessions wrote: events (kind, step or text), checkpoints."""
    writes: list[list[tuple]] = []

    @event.listens_for(worker.sessions, "after_flush")
    def _seen(session, _context) -> None:  # type: ignore[no-untyped-def]
        rows = sorted(
            (o.seq, o.type, o.data["step"] if o.type == "metrics" else o.message)
            for o in session.new
            if isinstance(o, JobEvent)
        )
        written = [r[1:] for r in rows]
        written += [("checkpoint", o.step) for o in session.new if isinstance(o, Checkpoint)]
        if written:
            writes.append(written)

    return writes


def test_events_arrive_in_order_in_batches(client, acme, settings, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    job_id = _create(client, acme, tiny_models, tmp_path, epochs=2)
    worker = Worker(settings)
    writes = _writes(worker)
    assert worker.run(max_jobs=1) == 1
    job = _job(client, acme, job_id)
    assert job["status"] == "succeeded", job["error"]

    with session_scope(worker.sessions) as s:
        stored = list(
            s.execute(
                select(JobEvent.type, JobEvent.data)
                .where(JobEvent.job_id == job_id)
                .order_by(JobEvent.seq)
            )
        )
        saved = sorted(s.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job_id)))
    assert [d["step"] for t, d in stored if t == "metrics"] == list(range(11))  # all, in order
    assert saved == [2, 4, 5, 6, 8]  # every 2 steps and each epoch's end, not the last

    flat = [row for batch in writes for row in batch]
    for at, row in enumerate(flat):
        if row[0] == "checkpoint":
            before = flat[:at]
            assert [s for kind, s in before if kind == "metrics"] == list(range(row[1] + 1))
            assert before[-1] == ("message", f"Saved checkpoint step-{row[1]}.")
    batches = [b for b in writes if all(kind != "checkpoint" for kind, _ in b)]
    assert max(len(b) for b in batches) > 1  # several events in one transaction
    assert len(writes) < len(stored)

    job_dir = settings.jobs_dir / job_id
    assert {"run_spec.json", "trainer.log", "model"} <= {p.name for p in job_dir.iterdir()}
    assert not _trainers(job_dir)


def test_cancelling_a_job_leaves_no_trainer(client, acme, settings, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    job_id = _create(client, acme, tiny_models, tmp_path, epochs=50)
    job_dir = settings.jobs_dir / job_id
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, kwargs={"max_jobs": 1})
    thread.start()
    try:
        deadline = time.time() + 120
        while True:
            events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events", headers=acme).json()
            if any(e["type"] == "metrics" and e["data"]["step"] >= 1 for e in events["data"]):
                break
            assert time.time() < deadline and thread.is_alive(), _job(client, acme, job_id)
            time.sleep(0.1)
        (pid,) = _trainers(job_dir)
        assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel", headers=acme).status_code == 200
        thread.join(timeout=60)
    finally:
        worker.shutdown.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    job = _job(client, acme, job_id)
    assert job["status"] == "cancelled" and job["fine_tuned_model"] is None
    assert not _alive(pid) and not _trainers(job_dir)
    assert not (job_dir / "model").exists()


def test_a_library_error_fails_the_job_as_in_process(
    client, acme, settings, tiny_models, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    valid = upload(client, acme, _lines(tmp_path, "valid.jsonl", "test.jsonl", 10)).json()["id"]
    job_id = _create(client, acme, tiny_models, tmp_path, epochs=1, validation_file=valid)
    with session_scope(Worker(settings).sessions) as s:
        job_row = s.get(Job, job_id)
        assert job_row is not None
        path = LocalStorage(settings.data_dir).path(job_row.spec["validation_file_key"])
    path.write_text('{"text": "hello", "label": "ham"}\nnot json\n')  # broken after the upload
    with pytest.raises(FileFormatError) as expected:
        read_records(path, "classification")
    worker = Worker(settings)
    assert worker.run(max_jobs=1) == 1
    job = _job(client, acme, job_id)
    assert job["status"] == "failed"
    assert job["error"] == {
        "code": expected.value.code,
        "message": worker.public_message(expected.value.message),
        "param": expected.value.param,
    }


def test_a_crashing_trainer_fails_the_job_without_server_paths(
    client, acme, settings, tiny_models, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    import shutil

    folder = tmp_path / "broken-bert"
    shutil.copytree(tiny_models["encoder"], folder)
    job_id = _create(client, acme, tiny_models, tmp_path, epochs=1, model=folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors at all")  # broken after creation
    with caplog.at_level("ERROR", logger="tailorml.worker"):
        assert Worker(settings).run(max_jobs=1) == 1
    job = _job(client, acme, job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "internal_error"
    message = job["error"]["message"]
    assert "TrainerProcessError" in message and "/" not in message
    # The operator's log has the child's own traceback, from its output file.
    assert "the training process of job" in caplog.text and "trainer.log" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text.split("trainer.log")[-1]
    assert not _trainers(settings.jobs_dir / job_id)


def test_a_job_trains_on_two_processes_under_torchrun(
    client, acme, settings, tiny_models, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    too_many = {"type": "full", "training": {"processes": 9}}
    refused = client.post(
        "/v1/fine_tuning/jobs",
        headers=acme,
        json={"model": str(tiny_models["encoder"]), "training_file": "file-x", "method": too_many},
    )
    assert refused.status_code == 400 and "processes" in refused.text
    training = {"checkpoint_every": 2, "eval_every": 1000, "processes": 2}
    job_id = _create(
        client, acme, tiny_models, tmp_path, epochs=1, method={"type": "full", "training": training}
    )
    assert Worker(settings).run(max_jobs=1) == 1
    job = _job(client, acme, job_id)
    job_dir = settings.jobs_dir / job_id
    assert job["status"] == "succeeded", (
        job["error"],
        (job_dir / "trainer.log").read_text()[-3000:],
    )
    events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=200", headers=acme).json()
    messages = [e["message"] for e in events["data"]]
    assert any("split over 2 processes (4 each" in m for m in messages)
    steps = sorted(e["data"]["step"] for e in events["data"] if e["type"] == "metrics")
    assert steps == list(range(6))  # rank 0's events only: each step once
    assert any(m.startswith("New fine-tuned model created") for m in messages)
    assert (job_dir / "model" / "model.safetensors").is_file() and not _trainers(job_dir)


def test_the_operator_sets_the_default_processes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from tailorml.platform.settings import Settings

    monkeypatch.setenv("TAILOR_TRAIN_PROCESSES", "4")
    assert Settings(_env_file=None).train_processes == 4
    monkeypatch.setenv("TAILOR_TRAIN_PROCESSES", "9")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_cancelling_a_two_process_job_stops_every_rank(
    client, acme, settings, tiny_models, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    training = {"checkpoint_every": 2, "eval_every": 1000, "processes": 2}
    job_id = _create(
        client,
        acme,
        tiny_models,
        tmp_path,
        epochs=50,
        method={"type": "full", "training": training},
    )
    job_dir = settings.jobs_dir / job_id
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, kwargs={"max_jobs": 1})
    thread.start()
    try:
        deadline = time.time() + 120
        while True:
            events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events", headers=acme).json()
            if any(e["type"] == "metrics" and e["data"]["step"] >= 1 for e in events["data"]):
                break
            assert time.time() < deadline and thread.is_alive(), _job(client, acme, job_id)
            time.sleep(0.1)
        assert len(_trainers(job_dir)) == 3  # torchrun and its two ranks
        assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel", headers=acme).status_code == 200
        thread.join(timeout=60)
    finally:
        worker.shutdown.set()
        thread.join(timeout=60)
    job = _job(client, acme, job_id)
    assert job["status"] == "cancelled" and job["fine_tuned_model"] is None, job["error"]
    assert not _trainers(job_dir) and not (job_dir / "model").exists()
