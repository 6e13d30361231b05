"""What a job writes through its context: library events, one or many in one transaction,
summarised and with server paths cut out."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from tailorml.platform.db.engine import make_engine, make_sessionmaker, migrate, session_scope
from tailorml.platform.db.models import Job, JobEvent, Tenant
from tailorml.platform.jobs.context import JobContext
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage


@pytest.fixture
def ctx(db_url: str, tmp_path):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        s.add(Tenant(id="tn_a", name="acme"))
        s.flush()
        s.add(Job(id="job-1", kind="fine_tune", tenant_id="tn_a", status="running", spec={}))
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, master_secret="s")
    yield JobContext("job-1", "tn_a", {}, 1, settings, sessions, LocalStorage(settings.data_dir))
    engine.dispose()


def _stored(ctx: JobContext) -> list[tuple[str, str, str, dict | None]]:
    with session_scope(ctx.sessions) as s:
        rows = s.execute(
            select(JobEvent.type, JobEvent.level, JobEvent.message, JobEvent.data)
            .where(JobEvent.job_id == "job-1")
            .order_by(JobEvent.seq)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_emit_many_writes_a_batch_in_one_transaction(ctx) -> None:  # type: ignore[no-untyped-def]
    commits = []
    event.listen(ctx.sessions, "after_commit", lambda s: commits.append(s))
    metrics = {
        "type": "metrics",
        "step": 3,
        "total_steps": 9,
        "train_loss": 0.5,
        "valid_loss": None,
    }
    ctx.emit_many(
        [
            {"type": "message", "level": "warning", "message": "Read /srv/tailor/data/x.jsonl"},
            metrics,
            {"type": "message", "message": "Saved checkpoint step-3.", "path": "/srv/a/step-3"},
        ]
    )
    assert len(commits) == 1
    ctx.emit_many([])
    assert len(commits) == 1  # nothing to write: no transaction
    ctx.emit({"message": "One more."})
    assert len(commits) == 2
    assert _stored(ctx) == [
        ("message", "warning", "Read …/x.jsonl", None),
        (
            "metrics",
            "info",
            "Step 3/9: train_loss=0.5000",
            {k: v for k, v in metrics.items() if k != "type"},
        ),
        ("message", "info", "Saved checkpoint step-3.", {"path": "…/step-3"}),
        ("message", "info", "One more.", None),
    ]
