"""The fine-tuning jobs service: create (validate, enqueue), list, retrieve, cancel, events, checkpoints.

Objects follow OpenAI's ``fine_tuning.job``, ``fine_tuning.job.event`` and
``fine_tuning.job.checkpoint``. TailorML's extensions sit under ``method``
(``{"type": "supervised" | "full" | "lora", "lora": {...}}``) and in the
``task`` and ``metrics`` fields.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailorml.errors import ConflictError, InvalidRequestError
from tailorml.platform.db.models import Checkpoint, Job, JobEvent, Tenant, new_id, now
from tailorml.platform.files import get_file
from tailorml.platform.jobs.queue import ACTIVE, add_event
from tailorml.platform.scoping import get_owned, owned
from tailorml.platform.settings import Settings

SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _base_name(model: str, settings: Settings) -> tuple[str, tuple[str, ...] | None]:
    """The short base name for the model id, and the tasks it supports when known."""
    from tailorml.train.catalog import find_base

    spec = find_base(model)
    if spec is not None:
        return spec.name, spec.tasks
    looks_like_path = model.startswith(("/", "./", "../", "~")) or model.endswith(".gguf")
    if looks_like_path:
        if not settings.allow_model_paths:
            raise InvalidRequestError(
                "Local model paths are disabled on this server; use a catalog model "
                "(GET /v1/models) or ask the operator to set TAILOR_ALLOW_MODEL_PATHS=1.",
                param="model",
                code="model_not_available",
            )
        name = re.sub(r"\.gguf$", "", model.rstrip("/").rsplit("/", 1)[-1])
        return re.sub(r"[^A-Za-z0-9._-]", "-", name).lower(), None
    if HUB_ID.match(model) and settings.allow_hub_models:
        return model.rsplit("/", 1)[-1].lower(), None
    raise InvalidRequestError(
        f"Model {model!r} is not available for fine-tuning; list the base models with GET /v1/models.",
        param="model",
        code="model_not_available",
    )


def create_job(
    session: Session, *, tenant_id: str, settings: Settings, body: dict[str, Any]
) -> Job:
    model = body["model"]
    base, tasks = _base_name(model, settings)
    if body["training_file"].startswith("ds-"):
        from tailorml.platform.datasets import training_file_id

        body = {
            **body,
            "training_file": training_file_id(
                session, tenant_id=tenant_id, dataset_id=body["training_file"]
            ),
        }
    train_file = get_file(
        session, tenant_id=tenant_id, file_id=body["training_file"], param="training_file"
    )
    if train_file.purpose != "fine-tune" or train_file.status != "processed":
        raise InvalidRequestError(
            f"File {train_file.id} was not uploaded with purpose=fine-tune; upload it again with that purpose.",
            param="training_file",
        )
    task = train_file.task
    assert task is not None
    if tasks is not None and task not in tasks:
        raise InvalidRequestError(
            f"{train_file.filename} holds {task} data, which {base} cannot learn (it supports "
            f"{', '.join(tasks)}); pick a base model for {task} from GET /v1/models.",
            param="training_file",
            code="invalid_task_for_model",
        )
    valid_key = None
    if body.get("validation_file"):
        vf = get_file(
            session, tenant_id=tenant_id, file_id=body["validation_file"], param="validation_file"
        )
        if vf.task != task:
            raise InvalidRequestError(
                f"The validation file holds {vf.task} data but the training file holds {task} data.",
                param="validation_file",
            )
        valid_key = vf.storage_key
    suffix = body.get("suffix")
    if suffix is not None and not SUFFIX.match(suffix):
        raise InvalidRequestError(
            "suffix may hold 1-64 letters, digits, '-' and '_'.", param="suffix"
        )
    from tailorml.platform.jobs.fine_tune import choose_method
    from tailorml.train.tasks import load_task

    try:
        load_task(task)
    except InvalidRequestError as exc:
        raise InvalidRequestError(
            exc.message, param="training_file", code="unsupported_task"
        ) from exc
    from tailorml.train.hyperparams import resolve_hyperparameters

    hp = body.get("hyperparameters") or {}
    resolve_hyperparameters(  # refuse bad values now rather than fail the job later
        task=task,
        method=choose_method(task, (body.get("method") or {}).get("type", "supervised")),
        n_train=train_file.n_records or 0,
        **hp,
    )
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    job_id = new_id("ftjob-")
    spec = {
        "model": model,
        "base": base,
        "task": task,
        "training_file": train_file.id,
        "training_file_key": train_file.storage_key,
        "validation_file": body.get("validation_file"),
        "validation_file_key": valid_key,
        "hyperparameters": body.get("hyperparameters") or {},
        "method": body.get("method") or {"type": "supervised"},
        "suffix": suffix,
        "seed": body.get("seed") if body.get("seed") is not None else 42,
        "metadata": body.get("metadata"),
        "fine_tuned_model": f"ft:{base}:{tenant.name}:{suffix or ''}:{job_id.removeprefix('ftjob-')[:8]}",
    }
    job = Job(
        id=job_id, kind="fine_tune", tenant_id=tenant_id, status="validating_files", spec=spec
    )
    session.add(job)
    session.flush()
    add_event(
        session,
        job_id,
        f"Validating training file: {train_file.id} ({train_file.n_records} {task} records).",
    )
    add_event(session, job_id, "Files validated, moving job to queued state.")
    job.status = "queued"
    return job


def get_job(session: Session, *, tenant_id: str, job_id: str) -> Job:
    return get_owned(
        session,
        Job,
        job_id,
        tenant_id=tenant_id,
        what="fine-tuning job",
        param="fine_tuning_job_id",
    )


def list_jobs(
    session: Session, *, tenant_id: str, after: str | None, limit: int
) -> tuple[list[Job], bool]:
    query = owned(Job, tenant_id=tenant_id).where(Job.kind == "fine_tune")
    if after:
        pivot = get_job(session, tenant_id=tenant_id, job_id=after)
        query = query.where(
            (Job.created_at < pivot.created_at)
            | ((Job.created_at == pivot.created_at) & (Job.id < pivot.id))
        )
    rows = list(
        session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    return rows[:limit], len(rows) > limit


def cancel_job(session: Session, *, tenant_id: str, job_id: str) -> Job:
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    if job.status not in ACTIVE:
        raise ConflictError(
            f"Job {job_id} has already {job.status}; only active jobs can be cancelled."
        )
    job.cancel_requested = True
    if job.status != "running":
        job.status = "cancelled"
        job.finished_at = now()
        add_event(session, job_id, "Job cancelled before it started.")
    else:
        add_event(session, job_id, "Cancellation requested; stopping the training.")
    return job


def list_events(
    session: Session, *, tenant_id: str, job_id: str, after: str | None, limit: int
) -> tuple[list[JobEvent], bool]:
    get_job(session, tenant_id=tenant_id, job_id=job_id)
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    if after:
        seq = session.scalar(
            select(JobEvent.seq).where(JobEvent.id == after, JobEvent.job_id == job_id)
        )
        if seq is not None:
            query = query.where(JobEvent.seq < seq)
    rows = list(session.scalars(query.order_by(JobEvent.seq.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def list_checkpoints(
    session: Session, *, tenant_id: str, job_id: str, limit: int
) -> list[Checkpoint]:
    get_job(session, tenant_id=tenant_id, job_id=job_id)
    query = select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step.desc())
    # Training keeps only its newest checkpoints on disk; list the ones that still exist.
    kept = [c for c in session.scalars(query) if Path(c.path).is_dir()]
    return kept[:limit]


def job_object(job: Job) -> dict[str, Any]:
    spec = job.spec
    hp = spec.get("resolved_hyperparameters") or {
        "n_epochs": "auto",
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
        **(spec.get("hyperparameters") or {}),
    }
    result = job.result or {}
    method = dict(spec.get("method") or {"type": "supervised"})
    if spec.get("resolved_method"):
        method["resolved"] = spec["resolved_method"]
    return {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": spec["model"],
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "fine_tuned_model": result.get("fine_tuned_model"),
        "organization_id": job.tenant_id,
        "result_files": [],
        "status": job.status,
        "validation_file": spec.get("validation_file"),
        "training_file": spec["training_file"],
        "hyperparameters": hp,
        "method": method,
        "trained_tokens": result.get("trained_tokens"),
        "error": job.error,
        "seed": spec.get("seed"),
        "suffix": spec.get("suffix"),
        "user_provided_suffix": spec.get("suffix"),
        "estimated_finish": None,
        "integrations": [],
        "metadata": spec.get("metadata"),
        "task": spec.get("task"),
        "metrics": result.get("metrics"),
    }


def event_object(ev: JobEvent) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": ev.id,
        "created_at": ev.created_at,
        "level": ev.level,
        "message": ev.message,
        "data": ev.data,
        "type": ev.type,
    }


def checkpoint_object(ck: Checkpoint, fine_tuned_model: str) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": ck.id,
        "created_at": ck.created_at,
        "fine_tuned_model_checkpoint": f"{fine_tuned_model}:ckpt-step-{ck.step}",
        "fine_tuning_job_id": ck.job_id,
        "metrics": {"step": ck.step, **(ck.metrics or {})},
        "step_number": ck.step,
    }
