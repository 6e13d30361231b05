"""The training loop: one explicit loop for every task, full or LoRA.

AdamW, linear warmup then linear decay, gradient clipping, fp32, seeded.
Progress goes out through ``on_event`` as plain dicts (the platform stores
them as job events): ``{"type": "message", ...}`` at milestones and
``{"type": "metrics", ...}`` after every step, with validation figures on
evaluation steps and for the untrained base at step 0. ``should_stop`` is
polled before every step and every validation batch. Checkpoints are
written every ``checkpoint_every`` steps and at each epoch's end, and a run
resumed from one ends exactly where an uninterrupted run would.

Why not the HF Trainer: the platform needs events, cancellation and
exactly-resumable checkpoints in its own format, and overriding the
Trainer's callbacks for all three is more code than this loop.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tailorml.errors import InvalidRequestError, JobCancelledError
from tailorml.records import Record
from tailorml.train.atomic import atomic_directory, remove_stale_temporaries
from tailorml.train.batching import epoch_batches, steps_per_epoch
from tailorml.train.checkpoints import (
    CheckpointInfo,
    TrainerState,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    write_model_folder,
)
from tailorml.train.evaluation import evaluate
from tailorml.train.sources import MaterializedModel
from tailorml.train.tasks import TrainTask, load_task

EVALS_PER_RUN = 10
CHECKPOINT_EVERY = 25
DEFAULT_MAX_LENGTH = 512


@dataclass
class TrainSpec:
    """Everything that decides what a run computes (with the data and the base)."""

    task: str
    method: Literal["full", "lora"]
    n_epochs: int
    batch_size: int
    learning_rate: float
    seed: int = 42
    max_length: int | None = None  # default: min(context_length, 512)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int | None = None  # default: about EVALS_PER_RUN times, and at the end
    checkpoint_every: int | None = None  # default: every CHECKPOINT_EVERY steps and each epoch
    valid_fraction: float = 0.1


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict[str, Any]
    trained_tokens: int
    steps: int
    labels: list[str] | None = field(default=None)


def _check_spec(spec: TrainSpec, base: MaterializedModel) -> None:
    """Every problem with the spec at once, as one error."""
    problems: list[str] = []
    if spec.task not in base.tasks:
        problems.append(
            f"the base model {base.name} ({base.architecture}) trains {', '.join(base.tasks)}, "
            f"not {spec.task}; pick a base model for {spec.task}"
        )
    if spec.method not in ("full", "lora"):
        problems.append(f'method must be "full" or "lora", got {spec.method!r}')
    checks = [
        (spec.n_epochs >= 1, "n_epochs must be at least 1"),
        (spec.batch_size >= 1, "batch_size must be at least 1"),
        (spec.learning_rate > 0, "learning_rate must be above 0"),
        (0 <= spec.valid_fraction < 1, "valid_fraction must be in [0, 1)"),
        (0 <= spec.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
        (spec.max_length is None or spec.max_length >= 8, "max_length must be at least 8"),
        (spec.lora_r >= 1, "lora_r must be at least 1"),
    ]
    problems += [message for ok, message in checks if not ok]
    if problems:
        raise InvalidRequestError("Invalid training spec: " + "; ".join(problems) + ".")


def _build_model(
    task: TrainTask,
    spec: TrainSpec,
    base: MaterializedModel,
    labels: list[str] | None,
    resume: Path | None,
) -> Any:
    from tailorml.train.lora import load_adapter_weights, wrap_with_lora

    if spec.method == "full":
        # A full checkpoint is a whole model folder: load it in place of the base.
        return task.load_model(resume or base.path, labels)
    model = wrap_with_lora(
        task.load_model(base.path, labels),
        task_type=task.peft_task_type,
        r=spec.lora_r,
        alpha=spec.lora_alpha,
        dropout=spec.lora_dropout,
        target_modules=spec.lora_target_modules,
    )
    if resume is not None:
        load_adapter_weights(model, resume)
    return model


def _optimizer(model: Any, spec: TrainSpec) -> Any:
    import torch

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # Biases and norm weights (1-D) are not decayed, as in BERT and most recipes.
    groups = [
        {"params": [p for _, p in params if p.ndim >= 2], "weight_decay": spec.weight_decay},
        {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=spec.learning_rate)


def _prepare_out_dir(out_dir: Path, resume_step: int | None) -> None:
    """Clear what an earlier attempt left that this run would otherwise mix with its own."""
    folder = out_dir / "checkpoints"
    remove_stale_temporaries(folder)
    remove_stale_temporaries(out_dir)
    for ckpt in list_checkpoints(folder):
        if resume_step is None or int(ckpt.name.split("-")[1]) > resume_step:
            shutil.rmtree(ckpt, ignore_errors=True)


def train(
    spec: TrainSpec,
    base: MaterializedModel,
    train_records: list[Record],
    valid_records: list[Record] | None,
    out_dir: Path,
    *,
    on_event: Callable[[dict], None],
    on_checkpoint: Callable[[CheckpointInfo], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    resume_from: Path | None = None,
) -> TrainResult:
    """Fine-tune ``base`` on the records; write ``out_dir/model`` and return the result."""
    import torch
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    def say(message: str, level: str = "info") -> None:
        on_event({"type": "message", "level": level, "message": message})

    _check_spec(spec, base)
    task = load_task(spec.task)
    out_dir = Path(out_dir)
    task.check_records(train_records, "training_file")
    task.check_records(valid_records or [], "validation_file")
    labels = task.labels(train_records)
    if valid_records is None:
        train_records, valid_records = task.split(train_records, spec.valid_fraction, spec.seed)
    max_length = min(spec.max_length or DEFAULT_MAX_LENGTH, base.context_length)
    if spec.max_length is not None and spec.max_length > base.context_length:
        say(
            f"max_length {spec.max_length} is over the context of {base.name}; "
            f"using {base.context_length}.",
            "warning",
        )

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    train_ex, skipped = task.encode(tokenizer, train_records, labels, max_length)
    valid_ex, v_skipped = task.encode(tokenizer, valid_records, labels, max_length)
    for what, reasons in (("training", skipped), ("validation", v_skipped)):
        if reasons:
            say(f"Left out {len(reasons)} {what} record(s): {'; '.join(reasons[:5])}", "warning")
    if not train_ex:
        raise InvalidRequestError(
            "No training record is usable (see the warnings); raise max_length or fix the data.",
            param="training_file",
        )

    per_epoch = steps_per_epoch(len(train_ex), spec.batch_size)
    total_steps = per_epoch * spec.n_epochs
    eval_every = spec.eval_every or max(1, total_steps // EVALS_PER_RUN)
    checkpoint_every = spec.checkpoint_every or CHECKPOINT_EVERY
    fingerprint = {
        "task": spec.task, "method": spec.method, "base": base.name, "labels": labels,
        "n_train": len(train_ex), "n_valid": len(valid_ex), "n_epochs": spec.n_epochs,
        "batch_size": spec.batch_size, "learning_rate": spec.learning_rate, "seed": spec.seed,
        "max_length": max_length,
    }  # fmt: skip

    resume = Path(resume_from) if resume_from is not None else None
    loaded = load_checkpoint(resume) if resume is not None else None
    if loaded is not None and loaded[0].fingerprint != fingerprint:
        differ = sorted(k for k in fingerprint if loaded[0].fingerprint.get(k) != fingerprint[k])
        raise InvalidRequestError(
            f"The checkpoint {resume} was written by a run with other {', '.join(differ)}; "
            "resume with the same spec and data, or start a new run.",
            param="resume_from",
        )
    _prepare_out_dir(out_dir, loaded[0].step if loaded else None)

    torch.manual_seed(spec.seed)
    model = _build_model(task, spec, base, labels, resume)
    optimizer = _optimizer(model, spec)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(spec.warmup_ratio * total_steps), total_steps
    )
    manifest = {
        "task": spec.task, "method": spec.method, "base": base.name, "base_path": str(base.path),
        "architecture": base.architecture, "labels": labels,
        "context_length": base.context_length, "max_length": max_length,
    }  # fmt: skip
    lengths = [len(e.input_ids) for e in train_ex]

    def validate() -> dict[str, float | None]:
        return evaluate(task, model, valid_ex, pad_id, spec.batch_size, should_stop)

    if loaded is None:
        state = TrainerState(0, 0, 0, total_steps, 0, fingerprint)
        say(
            f"Training {base.name} ({spec.method}) for {spec.task} on {len(train_ex)} records "
            f"({len(valid_ex)} for validation): {spec.n_epochs} epoch(s), {total_steps} steps."
        )
        state.base_metrics = validate()
        state.last_eval = dict(state.base_metrics)
        on_event({"type": "metrics", "step": 0, "total_steps": total_steps, "epoch": 0.0,
                  "train_loss": None, **state.base_metrics,
                  "learning_rate": scheduler.get_last_lr()[0]})  # fmt: skip
    else:
        state, optimizer_state, scheduler_state, rng = loaded
        optimizer.load_state_dict(optimizer_state)
        scheduler.load_state_dict(scheduler_state)
        # Last, so nothing above (model construction draws random numbers) moves them.
        restore_rng_state(rng)
        say(f"Resumed from {resume.name} at step {state.step} of {total_steps}.")

    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    while state.step < total_steps:
        batches = epoch_batches(lengths, spec.batch_size, spec.seed, state.epoch)
        for index in range(state.batch_in_epoch, len(batches)):
            if should_stop():
                raise JobCancelledError(f"Training was cancelled before step {state.step + 1}.")
            examples = [train_ex[i] for i in batches[index]]
            score = task.score(model, task.collate(examples, pad_id))
            score.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
            learning_rate = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            state.step += 1
            state.trained_tokens += sum(e.trained_tokens for e in examples)
            state.train_losses.append(float(score.loss.detach()))
            epoch_done = index + 1 == len(batches)
            state.epoch, state.batch_in_epoch = (
                (state.epoch + 1, 0) if epoch_done else (state.epoch, index + 1)
            )
            event = {"type": "metrics", "step": state.step, "total_steps": total_steps,
                     "epoch": state.step / per_epoch, "train_loss": state.train_losses[-1],
                     "valid_loss": None, "valid_accuracy": None,
                     "learning_rate": learning_rate}  # fmt: skip
            if state.step % eval_every == 0 or state.step == total_steps:
                state.last_eval = validate()
                event.update(state.last_eval)
                model.train()
            on_event(event)
            if state.step < total_steps and (epoch_done or state.step % checkpoint_every == 0):
                path = save_checkpoint(out_dir, state, model=model, tokenizer=tokenizer,
                                       manifest=manifest, optimizer=optimizer, scheduler=scheduler)  # fmt: skip
                say(f"Saved checkpoint step-{state.step}.")
                if on_checkpoint is not None:
                    on_checkpoint(CheckpointInfo(state.step, path, _metrics(state, per_epoch)))

    model_dir = out_dir / "model"
    with atomic_directory(model_dir) as tmp:
        write_model_folder(tmp, model, tokenizer, manifest)
    metrics = _metrics(state, per_epoch)
    say(f"Training finished: {state.step} steps; model written to {model_dir.name}/.")
    return TrainResult(model_dir, metrics, state.trained_tokens, state.step, labels)


def _metrics(state: TrainerState, per_epoch: int) -> dict[str, Any]:
    """Summary figures: train loss over the last epoch's steps, the latest validation figures."""
    recent = state.train_losses[-per_epoch:]
    base = {f"base_{k}": v for k, v in state.base_metrics.items()}
    return {
        "train_loss": sum(recent) / len(recent) if recent else None,
        **state.last_eval,
        **base,
        "step": state.step,
    }
