"""The fine-tuning jobs service: create (validate, enqueue), list, retrieve, cancel, events, checkpoints.

Objects follow OpenAI's ``fine_tuning.job``, ``fine_tuning.job.event`` and
``fine_tuning.job.checkpoint``. TailorML's extensions sit under ``method``
(``{"type": "supervised" | "full" | "lora" | "dpo", "lora": {...}}``) and in the
``task`` and ``metrics`` fields. Preference files train with method ``dpo`` only, and
``dpo`` trains only preference files, as with OpenAI.

Creation checks everything a job would otherwise fail on later, before the
job exists: the base-model reference against the operator's settings
(catalog names always; paths only with TAILOR_ALLOW_MODEL_PATHS, hub ids
only with TAILOR_ALLOW_HUB_MODELS), the files, enough records and classes,
the hyperparameters, every length a column limits, and the tenant's cap on
active jobs (429).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailorml.errors import ConflictError, InvalidRequestError, ModelUnavailableError, NotFoundError
from tailorml.platform.db.models import Checkpoint, File, Job, JobEvent, Model, Tenant, new_id
from tailorml.platform.files import get_file
from tailorml.platform.jobs.queue import add_event, check_capacity, request_cancel
from tailorml.platform.models import checkpoint_model_id
from tailorml.platform.scoping import get_owned_job, owned
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage
from tailorml.records import iter_jsonl, parse_record

SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# OpenAI's minimum: fewer examples cannot both train a model and hold a tenth back to judge it.
MIN_TRAINING_RECORDS = 10
MIN_CLASSES = 2


def _check_length(value: str, column: Any, *, param: str, what: str) -> None:
    """Refuse a value longer than the column it will be stored in (400, not a database error)."""
    limit = column.type.length
    if len(value) > limit:
        raise InvalidRequestError(
            f"{what} would be {len(value)} characters; the limit is {limit}. Use a shorter {param}.",
            param=param,
        )


def _looks_like_path(model: str, settings: Settings) -> bool:
    """The library's rule (``models.sources``), without touching the disk unless paths are on."""
    if model.startswith((".", "/", "~")) or model.endswith(".gguf"):
        return True
    # Probing the disk when paths are off would tell a tenant which server paths exist.
    return settings.allow_model_paths and Path(model).expanduser().exists()


def _path_base(model: str) -> tuple[str, tuple[str, ...] | None]:
    """Name and tasks of a local model the operator lets tenants name (TAILOR_ALLOW_MODEL_PATHS)."""
    from tailorml.models.catalog import TASKS_BY_ARCHITECTURE
    from tailorml.models.sources import detect_architecture, read_config, safe_name

    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return safe_name(path.stem), None  # its architecture is known once converted
    if not (path.is_dir() and (path / "config.json").is_file()):
        # The tenant's own string, never the expanded path: ``~`` would show the server's home.
        raise InvalidRequestError(
            f"No model folder (with config.json) or .gguf file at {model!r}; check the path.",
            param="model",
            code="model_not_available",
        )
    try:
        config = read_config(path)
    except (OSError, ValueError) as exc:
        raise InvalidRequestError(
            f"The config.json of {model!r} cannot be read ({type(exc).__name__}); fix the model "
            "folder or pick a catalog model from GET /v1/models.",
            param="model",
            code="model_not_available",
        ) from exc
    try:
        architecture = detect_architecture(config)
    except ModelUnavailableError as exc:
        raise InvalidRequestError(exc.message, param="model", code=exc.code) from exc
    return safe_name(path.name), TASKS_BY_ARCHITECTURE[architecture]


def _base_name(model: str, settings: Settings) -> tuple[str, tuple[str, ...] | None]:
    """The short base name for the model id, and the tasks it supports when known.

    Decided here, when the job is created, with the same rules the worker's
    ``materialize`` applies later: a catalog name; a local path only when
    TAILOR_ALLOW_MODEL_PATHS is on; a hub id only when TAILOR_ALLOW_HUB_MODELS is.
    """
    from tailorml.models.catalog import find_base
    from tailorml.models.sources import safe_name

    if not model.isprintable():
        raise InvalidRequestError(
            "model holds control characters; name a catalog model from GET /v1/models.",
            param="model",
            code="model_not_available",
        )
    spec = find_base(model)
    if spec is not None:
        return spec.name, spec.tasks
    if _looks_like_path(model, settings):
        if not settings.allow_model_paths:
            raise InvalidRequestError(
                "Local model paths are disabled on this server; use a catalog model "
                "(GET /v1/models) or ask the operator to set TAILOR_ALLOW_MODEL_PATHS=1.",
                param="model",
                code="model_not_available",
            )
        return _path_base(model)
    if HUB_ID.match(model):
        if not settings.allow_hub_models:
            raise InvalidRequestError(
                f"Model-hub ids such as {model!r} are disabled on this server; use a catalog "
                "model (GET /v1/models) or ask the operator to set TAILOR_ALLOW_HUB_MODELS=1.",
                param="model",
                code="model_not_available",
            )
        return safe_name(model.rsplit("/", 1)[-1]), None
    raise InvalidRequestError(
        f"Model {model!r} is not available for fine-tuning; list the base models with GET /v1/models.",
        param="model",
        code="model_not_available",
    )


def _fine_tune_file(session: Session, *, tenant_id: str, file_id: str, param: str) -> File:
    """A tenant's file that passed fine-tune validation on upload."""
    row = get_file(session, tenant_id=tenant_id, file_id=file_id, param=param)
    if row.purpose != "fine-tune" or row.status != "processed" or row.task is None:
        raise InvalidRequestError(
            f"File {row.id} was not uploaded with purpose=fine-tune; upload it again with that purpose.",
            param=param,
        )
    return row


def _first_labels(path: Path, enough: int) -> list[str]:
    """Up to ``enough`` distinct labels of a validated classification file, read until found."""
    found: list[str] = []
    for _, value in iter_jsonl(path):
        # Validated on upload, so every line parses; a healthy file stops after a few lines.
        label = parse_record(value, "classification").label  # type: ignore[union-attr]
        if label not in found:
            found.append(label)
            if len(found) >= enough:
                break
    return found


def _check_metrics(task: str, metrics: list[str] | None) -> None:
    """Named per-step metrics exist and fit the task (a classifier's predictions)."""
    if not metrics:
        return
    from tailorml.eval.metrics import check_metric_names

    check_metric_names(metrics)
    if task != "classification":
        raise InvalidRequestError(
            f"method.training.metrics are computed over a classifier's predictions; a {task} job "
            "reports its validation loss, and its evaluation report scores the answers.",
            param="method.training.metrics",
        )


def _check_privacy(
    training: dict[str, Any],
    *,
    task: str,
    n_records: int,
    held_out: bool,
    n_epochs: int,
    batch_size: int,
) -> None:
    """Refuse differential privacy the run could not honour, before the job exists: another
    task, accumulation or packing, a delta of 1/N or more, or a budget no noise can meet
    (the library checks again on the exact training records)."""
    dp = training.get("differential_privacy")
    if dp is None:
        return
    from tailorml.train.spec import PRIVATE_TASKS, PrivacySpec, TrainSpec

    param = "method.training.differential_privacy"
    if task not in PRIVATE_TASKS:
        raise InvalidRequestError(
            f"differential_privacy trains {', '.join(PRIVATE_TASKS)} jobs only; this training "
            f"file holds {task} data. Leave differential_privacy out or upload classification "
            "records.",
            param=param,
        )
    for key, off in (("gradient_accumulation_steps", 1), ("packing", False), ("processes", 1)):
        if training.get(key, off) != off:
            raise InvalidRequestError(
                f"method.training.{key} cannot be combined with differential_privacy (each "
                "step is one Poisson-sampled batch); leave it out, or raise batch_size.",
                param=f"method.training.{key}",
            )
    delta = dp.get("delta")
    if delta is not None and delta >= 1 / n_records:
        raise InvalidRequestError(
            f"differential_privacy.delta must be below 1/N for N training records: the file "
            f"holds {n_records}, so below {1 / n_records:.3g} (leave it out for 1/(10 N)).",
            param=f"{param}.delta",
        )
    from tailorml.train.privacy import plan_privacy

    # Without a validation file the run holds a share of the records out (about; stratified).
    n_train = n_records - round(n_records * TrainSpec.valid_fraction) if held_out else n_records
    try:
        plan_privacy(
            PrivacySpec(epsilon=dp["epsilon"], delta=delta),
            n_train=n_train,
            batch_size=batch_size,
            n_epochs=n_epochs,
        )
    except InvalidRequestError as exc:
        raise InvalidRequestError(exc.message, param=f"{param}.epsilon") from exc


def _check_trainable(train_file: File, task: str, storage: LocalStorage) -> None:
    """Refuse data too small to train on (and to hold out validation records from) now, not
    as a failed job later; the message names the minimum."""
    n = train_file.n_records or 0
    if n < MIN_TRAINING_RECORDS:
        raise InvalidRequestError(
            f"{train_file.filename} holds {n} record(s); fine-tuning needs at least "
            f"{MIN_TRAINING_RECORDS} (a tenth of them is held out for validation unless you give "
            "a validation_file). Add records and upload the file again.",
            param="training_file",
            code="too_few_records",
        )
    if task == "classification":
        labels = _first_labels(storage.path(train_file.storage_key), MIN_CLASSES)
        if len(labels) < MIN_CLASSES:
            raise InvalidRequestError(
                f"{train_file.filename} has a single label ({labels[0]!r}); a classifier needs "
                f"at least {MIN_CLASSES} classes. Add examples of the other classes.",
                param="training_file",
                code="too_few_classes",
            )


def _check_method(task: str, kind: str, filename: str) -> None:
    """Preference data trains with method dpo and nothing else does, as with OpenAI."""
    if kind == "dpo" and task != "preference":
        raise InvalidRequestError(
            f"Method dpo trains on preference data (lines with input.messages, "
            f"preferred_output and non_preferred_output), but {filename} holds {task} data; "
            "upload a preference file or use method supervised.",
            param="method.type",
            code="invalid_method",
        )
    if task == "preference" and kind != "dpo":
        raise InvalidRequestError(
            f"{filename} holds preference data, which trains with method dpo, not {kind}; "
            'pass method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}.',
            param="method.type",
            code="invalid_method",
        )


def create_job(
    session: Session,
    *,
    tenant_id: str,
    settings: Settings,
    storage: LocalStorage,
    body: dict[str, Any],
) -> Job:
    """Validate a fine-tuning request completely, then queue the job (or refuse: 400, 404, 429)."""
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
    train_file = _fine_tune_file(
        session, tenant_id=tenant_id, file_id=body["training_file"], param="training_file"
    )
    task = train_file.task
    assert task is not None  # _fine_tune_file refuses files without one
    if tasks is not None and task not in tasks:
        raise InvalidRequestError(
            f"{train_file.filename} holds {task} data, which {base} cannot learn (it supports "
            f"{', '.join(tasks)}); pick a base model for {task} from GET /v1/models.",
            param="training_file",
            code="invalid_task_for_model",
        )
    valid_key = None
    if body.get("validation_file"):
        vf = _fine_tune_file(
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
    from tailorml.platform.jobs.fine_tune import choose_method, requested_training
    from tailorml.train.tasks import load_task

    try:
        load_task(task)
    except InvalidRequestError as exc:
        raise InvalidRequestError(
            exc.message, param="training_file", code="unsupported_task"
        ) from exc
    method_cfg = body.get("method") or {}
    _check_method(task, method_cfg.get("type", "supervised"), train_file.filename)
    _check_trainable(train_file, task, storage)
    training = (body.get("method") or {}).get("training") or {}
    _check_metrics(task, training.get("metrics"))
    if training.get("judge_model"):
        if task not in ("chat", "completion", "preference"):
            raise InvalidRequestError(
                f"judge_model judges generated answers; a {task} job's report scores its "
                "predictions instead. Leave judge_model out.",
                param="method.training.judge_model",
            )
        from tailorml.platform.jobs.fine_tune import judge_source

        judge_source(session, tenant_id=tenant_id, name=training["judge_model"])
    from tailorml.train.hyperparams import resolve_hyperparameters

    requested, hp, _ = requested_training(method_cfg, body.get("hyperparameters") or {})
    resolved = resolve_hyperparameters(  # refuse bad values now rather than fail the job later
        task=task,
        method=choose_method(task, requested),
        n_train=train_file.n_records or 0,
        **hp,
    )
    _check_privacy(
        ((body.get("method") or {}).get("training") or {}),
        task=task,
        n_records=train_file.n_records or 0,
        held_out=valid_key is None,
        n_epochs=resolved.n_epochs,
        batch_size=resolved.batch_size,
    )
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    job_id = new_id("ftjob-")
    fine_tuned_model = f"ft:{base}:{tenant.name}:{suffix or ''}:{job_id.removeprefix('ftjob-')[:8]}"
    _check_length(base, Model.__table__.c.base, param="model", what="The base model's name")
    _check_length(
        fine_tuned_model, Model.__table__.c.id, param="suffix", what="The fine-tuned model's id"
    )
    # Last, and inside this transaction: the tenant stays locked until the job is added.
    check_capacity(session, tenant_id=tenant_id, limit=settings.max_active_jobs_per_tenant)
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
        "fine_tuned_model": fine_tuned_model,
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
    """A tenant's fine-tuning job; a dataset's id (or another tenant's job) is not found."""
    return get_owned_job(
        session,
        job_id,
        tenant_id=tenant_id,
        kind="fine_tune",
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
    """Cancel a queued job at once, or ask a running one to stop (409 once it has ended)."""
    return request_cancel(session, get_job(session, tenant_id=tenant_id, job_id=job_id))


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
    if method.get("type") == "dpo" and spec.get("resolved_hyperparameters"):
        # As OpenAI answers it: the values in effect, beta included, under method.dpo.
        method["dpo"] = {**(method.get("dpo") or {}), "hyperparameters": hp}
    return {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": spec["model"],
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "fine_tuned_model": result.get("fine_tuned_model"),
        "organization_id": job.tenant_id,
        "result_files": list(result.get("result_files") or []),
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
        "fine_tuned_model_checkpoint": checkpoint_model_id(fine_tuned_model, ck.step),
        "fine_tuning_job_id": ck.job_id,
        "metrics": {"step": ck.step, **(ck.metrics or {})},
        "step_number": ck.step,
    }


def job_report(session: Session, *, tenant_id: str, job_id: str) -> tuple[Job, dict[str, Any]]:
    """A succeeded job and the evaluation report stored with its model
    (``tailorml.eval.report``): 409 while the job has not succeeded, 404 without a report."""
    from tailorml.eval.report import read_report

    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    if job.status != "succeeded":
        raise ConflictError(
            f"Fine-tuning job {job_id} is {job.status}; its evaluation report is written when "
            "it succeeds.",
            param="fine_tuning_job_id",
            code="report_not_ready",
        )
    name = (job.result or {}).get("fine_tuned_model")
    model = session.get(Model, name) if name else None
    report = read_report(Path(model.path)) if model is not None else None
    if report is None:
        raise NotFoundError(
            f"Fine-tuning job {job_id} has no evaluation report: it was trained before reports "
            "existed, or writing the report failed (its events say why).",
            param="fine_tuning_job_id",
            code="report_not_found",
        )
    return job, report


def metrics_history(session: Session, *, job_id: str) -> list[dict[str, Any]]:
    """The per-step metrics events of a job, in order (the report page's loss curve)."""
    query = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.type == "metrics")
        .order_by(JobEvent.seq)
    )
    return [ev.data or {} for ev in session.scalars(query)]
