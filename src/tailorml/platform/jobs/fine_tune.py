"""The ``fine_tune`` job kind: materialize the base, read the files, train, register the model.

The worker resolves what the run needs (the base model, "auto"
hyperparameters, the checkpoint to resume from) and the training itself
runs in a child process (``trainer_process``), whose events and
checkpoints are stored as they come.

Everything the job produces lives in ``<data>/jobs/<job id>/``: the run's
spec and output log, checkpoints while it runs, ``model/`` when it
succeeds. A restarted job resumes from the newest checkpoint recorded in
the database, so a killed worker loses at most the steps since that
checkpoint.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import JobEvent, Model
from tailorml.platform.files import create_file
from tailorml.platform.jobs.context import JobContext
from tailorml.platform.jobs.trainer_process import run_trainer
from tailorml.records import read_records
from tailorml.registry import register


def choose_method(task: str, requested: str) -> Literal["full", "lora"]:
    """``full`` or ``lora`` as asked; ``supervised`` (OpenAI's name) is the task's default
    (full fine-tuning for an encoder's classification, LoRA for a decoder's chat)."""
    from tailorml.train.tasks import load_task

    return load_task(task).method(requested)


def requested_training(
    method_cfg: dict[str, Any], hyperparameters: dict[str, Any]
) -> tuple[str, dict[str, Any], float | None]:
    """What a job's ``method`` asks for: ``full``, ``lora`` or ``supervised`` (the task's
    default), the hyperparameters, and DPO's beta (None for other methods).

    As with OpenAI, ``method.dpo.hyperparameters`` take the place of the top-level
    ``hyperparameters`` where they are set; ``method.dpo.tuning`` (TailorML's) picks full
    fine-tuning over LoRA.
    """
    from tailorml.train.preference import DEFAULT_BETA

    kind = method_cfg.get("type", "supervised")
    if kind != "dpo":
        return kind, dict(hyperparameters), None
    dpo = method_cfg.get("dpo") or {}
    given = {k: v for k, v in (dpo.get("hyperparameters") or {}).items() if v != "auto"}
    merged = {**hyperparameters, **given}
    beta = merged.pop("beta", DEFAULT_BETA)
    return dpo.get("tuning") or "supervised", merged, float(beta)


@register("job_kind", "fine_tune")
def run_fine_tune(ctx: JobContext) -> dict[str, Any]:
    from tailorml.models.sources import materialize
    from tailorml.train.hyperparams import resolve_hyperparameters
    from tailorml.train.preference import DEFAULT_BETA
    from tailorml.train.run_spec import RunSpec
    from tailorml.train.spec import PrivacySpec, TrainSpec

    spec = ctx.spec
    settings = ctx.settings
    ctx.emit({"message": f"Preparing base model {spec['model']}."})
    base = materialize(
        spec["model"],
        settings.model_cache_dir,
        allow_paths=settings.allow_model_paths,
        allow_hub=settings.allow_hub_models,
        progress=lambda m: ctx.emit({"message": m}),
    )
    task = spec["task"]
    training_file = ctx.storage.path(spec["training_file_key"])
    validation_file = None
    if spec.get("validation_file_key"):
        validation_file = ctx.storage.path(spec["validation_file_key"])
    # Read here too: "auto" hyperparameters depend on the number of records.
    train_records = read_records(training_file, task)  # type: ignore[arg-type]

    method_cfg = spec.get("method") or {}
    requested, hp_in, beta = requested_training(method_cfg, spec.get("hyperparameters") or {})
    method = choose_method(task, requested)
    hp = resolve_hyperparameters(
        task=task,
        method=method,
        n_train=len(train_records),
        n_epochs=hp_in.get("n_epochs", "auto"),
        batch_size=hp_in.get("batch_size", "auto"),
        learning_rate_multiplier=hp_in.get("learning_rate_multiplier", "auto"),
    )
    ctx.update_spec(
        resolved_hyperparameters={
            "n_epochs": hp.n_epochs,
            "batch_size": hp.batch_size,
            "learning_rate_multiplier": hp.learning_rate_multiplier,
            "learning_rate": hp.learning_rate,  # what the multiplier stands for, in effect
            **({"beta": beta} if beta is not None else {}),
        },
        resolved_method=method,
    )
    if beta is not None:
        ctx.emit(
            {
                "message": f"Method dpo ({method}): preference tuning with beta {beta:g}, "
                "the base model as the reference."
            }
        )
    lora = method_cfg.get("lora") or {}
    options = {k: v for k, v in (method_cfg.get("training") or {}).items() if v is not None}
    # DP-SGD's accounting assumes one sampler: it keeps one process whatever the default.
    options.setdefault(
        "processes", 1 if "differential_privacy" in options else settings.train_processes
    )
    if "differential_privacy" in options:
        options["differential_privacy"] = PrivacySpec(**options["differential_privacy"])
    tspec = TrainSpec(
        task=task,
        method=method,
        n_epochs=hp.n_epochs,
        batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
        seed=int(spec["seed"]),
        beta=DEFAULT_BETA if beta is None else beta,
        **{
            k: lora[k]
            for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
            if k in lora
        },
        **options,
    )
    checkpoint = ctx.latest_checkpoint()
    resume_from = Path(checkpoint.path) if checkpoint else None
    if checkpoint:
        ctx.emit({"message": f"Resuming from the checkpoint at step {checkpoint.step}."})
    judge = None
    if tspec.judge_model:
        with session_scope(ctx.sessions) as s:
            judge = judge_folder(s, ctx.settings, tenant_id=ctx.tenant_id, name=tspec.judge_model)
    run = RunSpec(
        train=tspec,
        base=base,
        training_file=training_file,
        validation_file=validation_file,
        task=task,
        out_dir=ctx.work_dir,
        resume_from=resume_from,
        judge=judge,
    )
    result = run_trainer(ctx, run)
    name = spec["fine_tuned_model"]
    with session_scope(ctx.sessions) as s:
        s.merge(
            Model(
                id=name,
                tenant_id=ctx.tenant_id,
                job_id=ctx.job_id,
                base=base.name,
                task=task,
                path=str(result.model_dir),
            )
        )
    ctx.emit({"message": f"New fine-tuned model created: {name}"})
    return {
        "fine_tuned_model": name,
        "trained_tokens": result.trained_tokens,
        "metrics": result.metrics,
        "steps": result.steps,
        "labels": result.labels,
        "result_files": [store_results_file(ctx)],
    }


def judge_source(session: Any, *, tenant_id: str, name: str) -> Path | str:
    """Where the chat model a job names as its report's judge comes from: the folder of one
    of the tenant's fine-tuned chat models, or a catalog decoder's name; else a clear 400."""
    from tailorml.errors import InvalidRequestError
    from tailorml.models.catalog import find_base

    row = session.get(Model, name)
    if row is not None and row.tenant_id == tenant_id:
        if row.task not in ("chat", "preference"):
            raise InvalidRequestError(
                f"judge_model {name} is a {row.task} model; a judge must be a chat model.",
                param="method.training.judge_model",
            )
        return Path(row.path)
    entry = find_base(name)
    if entry is None or "chat" not in entry.tasks:
        raise InvalidRequestError(
            f"judge_model {name!r} is neither one of your chat models nor a chat model of the "
            "catalog (GET /v1/models lists both).",
            param="method.training.judge_model",
        )
    return name


def judge_folder(session: Any, settings: Any, *, tenant_id: str, name: str) -> Path:
    """The judge's folder, a catalog model materialised once into the model cache."""
    from tailorml.models.sources import materialize

    source = judge_source(session, tenant_id=tenant_id, name=name)
    if isinstance(source, Path):
        return source
    return materialize(source, settings.model_cache_dir, allow_paths=False, allow_hub=False).path


# OpenAI's result file columns first, in its order; TailorML's figures after them.
RESULT_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
EXTRA_COLUMNS = ("valid_accuracy", "epoch", "learning_rate", "trained_tokens")


def results_csv(rows: list[dict[str, Any]]) -> bytes:
    """The per-step metrics as OpenAI's ``step_metrics.csv``: a row per step, the last one
    recorded when a resumed attempt ran a step again; empty cells where a step has no figure."""
    by_step = {int(r["step"]): r for r in rows if isinstance(r.get("step"), int)}
    named = sorted({k for r in by_step.values() for k in r if k.startswith("valid_")})
    columns = [
        *RESULT_COLUMNS,
        *EXTRA_COLUMNS,
        *(k for k in named if k not in RESULT_COLUMNS + EXTRA_COLUMNS),
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for step in sorted(by_step):
        row = by_step[step]
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue().encode()


def store_results_file(ctx: JobContext) -> str:
    """Store the job's per-step metrics as a ``fine-tune-results`` file of its tenant."""
    with session_scope(ctx.sessions) as s:
        rows = [
            ev.data or {}
            for ev in s.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == ctx.job_id, JobEvent.type == "metrics")
                .order_by(JobEvent.seq)
            )
        ]
        file = create_file(
            s,
            tenant_id=ctx.tenant_id,
            storage=ctx.storage,
            filename="step_metrics.csv",
            purpose="fine-tune-results",
            chunks=[results_csv(rows)],
            max_bytes=1 << 40,  # written by the service, not an upload
            output=True,
        )
        return file.id
