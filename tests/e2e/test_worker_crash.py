"""A worker killed with SIGKILL mid-training: a new worker resumes the job from its last
checkpoint, nothing is lost, and no second copy runs. Cancelling stops training within seconds."""

from __future__ import annotations

import signal
import time

from tests.conftest import EXAMPLES
from tests.e2e.conftest import all_events, wait_for


def _chat_job(client, tiny_models, tmp_path, *, epochs: int, checkpoint_every: int):  # type: ignore[no-untyped-def]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        "".join(
            (EXAMPLES / "glaive_chat" / "train.jsonl").read_text().splitlines(keepends=True)[:40]
        )
    )
    file = client.files.create(file=chat.open("rb"), purpose="fine-tune")
    return client.fine_tuning.jobs.create(
        model=str(tiny_models["decoder"]),
        training_file=file.id,
        seed=7,
        hyperparameters={"n_epochs": epochs, "batch_size": 1},
        method={
            "type": "lora",
            "training": {"checkpoint_every": checkpoint_every, "eval_every": 1000},
        },
    )


def _steps(events) -> list[int]:  # type: ignore[no-untyped-def]
    return [e.data["step"] for e in events if e.type == "metrics" and e.data["step"] > 0]


def test_sigkilled_worker_resumes_from_checkpoint(live_server, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = live_server(workers=0)
    client = server.client(server.create_tenant("acme"))
    job = _chat_job(client, tiny_models, tmp_path, epochs=4, checkpoint_every=10)
    first = server.start_worker()

    deadline = time.time() + 120
    while time.time() < deadline:
        if client.fine_tuning.jobs.checkpoints.list(job.id).data:
            break
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = all_events(client, job.id)
    saved = [
        c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id, limit=100).data
    ]
    assert saved, "no checkpoint before the kill"
    killed_at = max(_steps(before))
    total = next(e.data["total_steps"] for e in before if e.type == "metrics")
    assert killed_at < total, "the job finished before the kill; make it longer"
    time.sleep(1.0)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"  # nobody else picked it up

    server.start_worker()
    job = wait_for(client, job.id, timeout=240)
    assert job.status == "succeeded", job.error
    events = all_events(client, job.id)
    messages = [e.message for e in events]
    assert sum(m.startswith("Job started by worker") for m in messages) == 1
    assert sum(m.startswith("Job restarted by worker") for m in messages) == 1
    resumed = [e for e in events if e.message.startswith("Resuming from the checkpoint at step")]
    assert len(resumed) == 1
    resume_step = int(resumed[0].message.rsplit(" ", 1)[1].rstrip("."))
    assert resume_step == max(saved)

    after = _steps(events[events.index(resumed[0]) :])
    # The new worker starts right after the checkpoint and runs each remaining step once, in order.
    assert after == list(range(resume_step + 1, total + 1))
    # Every step of the run was trained: nothing lost.
    assert set(_steps(events)) == set(range(1, total + 1))
    assert job.fine_tuned_model in [m.id for m in client.models.list().data]
    reply = client.chat.completions.create(
        model=job.fine_tuned_model,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=4,
        temperature=0,
    )
    assert reply.choices[0].message.content is not None


def test_cancel_stops_training_within_seconds(live_server, tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = live_server(workers=1)
    client = server.client(server.create_tenant("acme"))
    job = _chat_job(client, tiny_models, tmp_path, epochs=50, checkpoint_every=1000)
    deadline = time.time() + 120
    while time.time() < deadline and not _steps(
        client.fine_tuning.jobs.list_events(job.id, limit=5).data
    ):
        time.sleep(0.1)
    cancelled_at = time.time()
    assert client.fine_tuning.jobs.cancel(job.id).status in ("running", "cancelled")
    job = wait_for(client, job.id, timeout=30)
    assert job.status == "cancelled" and time.time() - cancelled_at < 10
    last_step = max(_steps(all_events(client, job.id)))
    time.sleep(1.5)
    assert max(_steps(all_events(client, job.id))) == last_step  # training really stopped
    assert job.fine_tuned_model is None
