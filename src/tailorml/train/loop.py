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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError, JobCancelledError
from tailorml.models.atomic import atomic_directory, remove_stale_temporaries
from tailorml.models.sources import MaterializedModel
from tailorml.records import Record
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
from tailorml.train.spec import (
    CHECKPOINT_EVERY,
    DEFAULT_MAX_LENGTH,
    EVALS_PER_RUN,
    TrainResult,
    TrainSpec,
    check_spec,
    model_manifest,
    run_fingerprint,
)
from tailorml.train.tasks import Example, TrainTask, load_task

__all__ = ["TrainResult", "TrainSpec", "train"]

HEAD_LR_FACTOR = 20.0


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


def _optimizer(model: Any, spec: TrainSpec, head_modules: frozenset[str]) -> Any:
    """AdamW; a new task head learns HEAD_LR_FACTOR times faster than the pretrained body.

    Why: a head initialised at random needs far larger steps than weights
    that are already good, and at the body's rate it barely moves in the few
    hundred steps a small data set gives (SetFit trains its head at 1e-2
    and its body at 2e-5 for the same reason). Biases and norm weights (1-D)
    are not decayed, as in BERT and most recipes.
    """
    import torch

    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            is_head = bool(head_modules & set(name.split(".")))
            groups.setdefault((is_head, param.ndim >= 2), []).append(param)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": spec.learning_rate * (HEAD_LR_FACTOR if is_head else 1.0),
                "weight_decay": spec.weight_decay if decay else 0.0,
            }
            for (is_head, decay), params in sorted(groups.items())
        ]
    )


def _prepare_out_dir(out_dir: Path, resume_step: int | None) -> None:
    """Clear what an earlier attempt left that this run would otherwise mix with its own."""
    folder = out_dir / "checkpoints"
    remove_stale_temporaries(folder)
    remove_stale_temporaries(out_dir)
    for ckpt in list_checkpoints(folder):
        if resume_step is None or int(ckpt.name.split("-")[1]) > resume_step:
            shutil.rmtree(ckpt, ignore_errors=True)


@dataclass
class _Data:
    """The encoded examples of a run and what encoding them needed."""

    tokenizer: Any
    labels: list[str] | None
    max_length: int
    pad_id: int
    train: list[Example]
    valid: list[Example]


def _prepare_data(
    task: TrainTask,
    spec: TrainSpec,
    base: MaterializedModel,
    train_records: list[Record],
    valid_records: list[Record] | None,
    say: Callable[[str, str], None],
) -> _Data:
    """Check, split and encode the records; report every record left out."""
    from transformers import AutoTokenizer

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
    # Decoders often have no pad token; padding positions are masked out, so any id works.
    pad_id = tokenizer.pad_token_id
    pad_id = tokenizer.eos_token_id if pad_id is None else pad_id
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
    return _Data(tokenizer, labels, max_length, pad_id, train_ex, valid_ex)


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
    from transformers import get_linear_schedule_with_warmup

    def say(message: str, level: str = "info") -> None:
        on_event({"type": "message", "level": level, "message": message})

    check_spec(spec, base)
    task = load_task(spec.task)
    out_dir = Path(out_dir)
    data = _prepare_data(task, spec, base, train_records, valid_records, say)
    tokenizer, labels, max_length = data.tokenizer, data.labels, data.max_length
    train_ex, valid_ex, pad_id = data.train, data.valid, data.pad_id

    per_epoch = steps_per_epoch(len(train_ex), spec.batch_size)
    total_steps = per_epoch * spec.n_epochs
    eval_every = spec.eval_every or max(1, total_steps // EVALS_PER_RUN)
    checkpoint_every = spec.checkpoint_every or CHECKPOINT_EVERY
    fingerprint = run_fingerprint(spec, base, labels, len(train_ex), len(valid_ex), max_length)

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
    optimizer = _optimizer(model, spec, task.head_modules)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(spec.warmup_ratio * total_steps), total_steps
    )
    manifest = model_manifest(spec, base, labels, max_length)
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
        on_event(
            {
                "type": "metrics",
                "step": 0,
                "total_steps": total_steps,
                "epoch": 0.0,
                "train_loss": None,
                **state.base_metrics,
                "learning_rate": scheduler.get_last_lr()[0],
                "trained_tokens": 0,
            }
        )
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
            event = {
                "type": "metrics",
                "step": state.step,
                "total_steps": total_steps,
                "epoch": state.step / per_epoch,
                "train_loss": state.train_losses[-1],
                "valid_loss": None,
                "valid_accuracy": None,
                "learning_rate": learning_rate,
                "trained_tokens": state.trained_tokens,  # so far, resumed attempts included
            }
            if state.step % eval_every == 0 or state.step == total_steps:
                state.last_eval = validate()
                event.update(state.last_eval)
                model.train()
            on_event(event)
            if state.step < total_steps and (epoch_done or state.step % checkpoint_every == 0):
                path = save_checkpoint(
                    out_dir,
                    state,
                    model=model,
                    tokenizer=tokenizer,
                    manifest=manifest,
                    optimizer=optimizer,
                    scheduler=scheduler,
                )
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
