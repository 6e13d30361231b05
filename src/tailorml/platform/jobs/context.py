"""What a running job sees: its spec, an event sink, checkpoints, and a stop flag.

Job kinds (``register("job_kind", name)``) are plain functions
``run(ctx) -> result dict``. They call the libraries with ``ctx.emit`` as
the progress callback and ``ctx.should_stop`` as the cancellation check;
a job that follows a child process stores its events in batches with
``ctx.emit_many`` (``trainer_process``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Checkpoint
from tailorml.platform.jobs.queue import add_event
from tailorml.platform.scrub import scrub_value
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage


def _event_row(event: dict[str, Any]) -> dict[str, Any]:
    """``add_event``'s arguments for a library event: a metrics line gets its one-line summary."""
    event = scrub_value(event)
    kind = event.get("type", "message")
    if kind == "metrics":
        data = {k: v for k, v in event.items() if k != "type"}
        parts = [f"Step {data.get('step')}/{data.get('total_steps')}"]
        for key in ("train_loss", "valid_loss", "valid_accuracy", "valid_reward_margin"):
            if data.get(key) is not None:
                parts.append(f"{key}={data[key]:.4f}")
        message = ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]
        return {"message": message, "type": "metrics", "data": data}
    return {
        # Already scrubbed with the rest; scrubbing twice doubled the "…" of a cut path.
        "message": str(event.get("message", "")),
        "level": str(event.get("level", "info")),
        "data": {k: v for k, v in event.items() if k not in ("type", "message", "level")} or None,
    }


@dataclass
class JobContext:
    job_id: str
    tenant_id: str
    spec: dict[str, Any]
    attempt: int
    settings: Settings
    sessions: sessionmaker[Session]
    storage: LocalStorage
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def work_dir(self) -> Path:
        path = self.settings.jobs_dir / self.job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def should_stop(self) -> bool:
        return self.stop.is_set()

    def emit(self, event: dict[str, Any]) -> None:
        """Store one library event (``type`` message or metrics) as a job event."""
        self.emit_many([event])

    def emit_many(self, events: Iterable[dict[str, Any]]) -> None:
        """Store library events as job events, in order, in one transaction.

        A training process reports after every step; one transaction per
        batch (``trainer_process``) keeps a fast run from queueing on the
        database. The tenant reads these: server paths are cut out first
        (``platform.scrub``).
        """
        rows = [_event_row(event) for event in events]
        if not rows:
            return
        with session_scope(self.sessions) as s:
            for row in rows:
                add_event(s, self.job_id, **row)

    def record_checkpoint(self, step: int, path: Path, metrics: dict[str, Any]) -> None:
        with session_scope(self.sessions) as s:
            # The training library already reports the checkpoint as an event.
            s.add(Checkpoint(job_id=self.job_id, step=step, path=str(path), metrics=metrics))

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest recorded checkpoint whose files still exist (for resuming)."""
        with session_scope(self.sessions) as s:
            rows = s.scalars(
                select(Checkpoint)
                .where(Checkpoint.job_id == self.job_id)
                .order_by(Checkpoint.step.desc())
            ).all()
            for row in rows:
                if Path(row.path).is_dir():
                    return row
        return None

    def update_spec(self, **values: Any) -> None:
        """Merge resolved values (for example "auto" hyperparameters) into the job's spec."""
        from tailorml.platform.db.models import Job

        with session_scope(self.sessions) as s:
            job = s.get(Job, self.job_id)
            assert job is not None
            job.spec = {**job.spec, **values}
            self.spec = dict(job.spec)
