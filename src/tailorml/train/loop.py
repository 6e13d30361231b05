"""The training loop: one explicit loop for every task, full or LoRA, as a ``Recipe``.

AdamW, linear warmup then linear decay, gradient clipping, seeded; device,
precision and gradient accumulation from the spec, through accelerate.
Progress goes out through ``on_event`` as plain dicts (the platform stores
them as job events): ``{"type": "message", ...}`` at milestones and
``{"type": "metrics", ...}`` after every step, with validation figures on
evaluation steps and for the untrained base at step 0. ``should_stop`` is
polled before every step and every validation batch. Checkpoints are
written every ``checkpoint_every`` steps and at each epoch's end, and a run
resumed from one ends exactly where an uninterrupted run would. Under
torchrun the same loop runs on every process, DDP through accelerate, and
computes the run of one process with the same global batch
(``tailorml.train.distributed``); only rank 0 writes.

Why not the HF Trainer: the platform needs events, cancellation and
exactly-resumable checkpoints in its own format, and overriding the
Trainer's callbacks for all three is more code than this loop.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError, JobCancelledError
from tailorml.models.atomic import atomic_directory, remove_stale_temporaries
from tailorml.models.sources import MaterializedModel
from tailorml.records import Record
from tailorml.train import distributed
from tailorml.train.batching import epoch_batches, steps_per_epoch
from tailorml.train.checkpoints import (
    CheckpointInfo,
    TrainerState,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    write_model_folder,
)
from tailorml.train.data import prepare_data
from tailorml.train.evaluation import evaluate
from tailorml.train.health import Fault, GradientWatch, recover
from tailorml.train.setup import build_model, make_optimizer
from tailorml.train.spec import (
    CHECKPOINT_EVERY,
    EVALS_PER_RUN,
    FINGERPRINT_DEFAULTS,
    TrainResult,
    TrainSpec,
    check_spec,
    model_manifest,
    run_fingerprint,
)
from tailorml.train.tasks import Example, load_task

__all__ = ["TrainResult", "TrainSpec", "train"]


def _prepare_out_dir(out_dir: Path, resume_step: int | None) -> None:
    """Clear what an earlier attempt left that this run would otherwise mix with its own."""
    folder = out_dir / "checkpoints"
    remove_stale_temporaries(folder)
    remove_stale_temporaries(out_dir)
    for ckpt in list_checkpoints(folder):
        if resume_step is None or int(ckpt.name.split("-")[1]) > resume_step:
            shutil.rmtree(ckpt, ignore_errors=True)


class _StepFault(Exception):
    """A step the health guard refused (raised by ``train_step``, handled by ``run``)."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.detail)
        self.fault = fault


class Recipe:
    """One run as a small recipe of swappable steps, in the manner of torchtune's recipes:
    ``setup_data``, ``setup_model``, ``setup_optimizer``, ``train_step``, ``validate``,
    ``save_checkpoint`` and ``save_model``, run in order by ``run``. A variant (another
    optimizer, a health guard around ``train_step``) subclasses it and replaces one step;
    ``train(..., recipe=MyRecipe)`` runs it.

    Device, precision and DDP come from accelerate: the model and optimizer go through
    ``Accelerator.prepare``, the backward pass and gradient clipping through the
    accelerator. A step is one optimizer step; with ``gradient_accumulation_steps`` N it
    takes N batches of ``batch_size`` examples (see ``train_step``).

    Why checkpoints are not ``Accelerator.save_state``: it writes every prepared model whole
    (a LoRA checkpoint would hold the frozen base too) and restores its random states with
    a pickle load that can run code; ours keeps a LoRA checkpoint to the adapter and loads
    only tensors (``checkpoints.load_checkpoint``).

    Under torchrun every rank runs this recipe (``tailorml.train.distributed``): each takes
    its share of every batch, ``should_stop`` becomes a decision all ranks share, and only
    rank 0 emits events and writes to ``out_dir``.
    """

    def __init__(
        self,
        spec: TrainSpec,
        base: MaterializedModel,
        out_dir: Path,
        *,
        on_event: Callable[[dict], None],
        on_checkpoint: Callable[[CheckpointInfo], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        resume_from: Path | None = None,
    ) -> None:
        check_spec(spec, base)
        self.spec, self.base, self.out_dir = spec, base, Path(out_dir)
        self.main = distributed.is_main()  # only rank 0 reports and writes
        self.on_event = on_event if self.main else lambda event: None
        self.on_checkpoint = on_checkpoint if self.main else None
        self.should_stop = should_stop
        self.resume = Path(resume_from) if resume_from is not None else None
        self.task = load_task(spec.task)

    def say(self, message: str, level: str = "info") -> None:
        self.on_event({"type": "message", "level": level, "message": message})

    # -- the steps ---------------------------------------------------------------------

    def setup_data(self, train_records: list[Record], valid_records: list[Record] | None) -> None:
        self.data = prepare_data(
            self.task, self.spec, self.base, train_records, valid_records, self.say
        )
        self.lengths = [e.length for e in self.data.train]
        self.collate = self.task.collate
        if self.spec.packing:
            packed = getattr(self.task, "collate_packed", None)
            if packed is None:
                raise InvalidRequestError(
                    f"packing is for decoder tasks; the {self.spec.task} task pads its batches. "
                    "Leave packing off.",
                    param="packing",
                )
            # Rows as long as the run's max_length: short sequences share a row.
            self.collate = functools.partial(packed, width=self.data.max_length)

    def setup_model(self) -> Any:
        import torch
        from accelerate import Accelerator

        spec = self.spec
        on_cpu = spec.device == "cpu" or not torch.cuda.is_available()
        if on_cpu and spec.precision not in ("auto", "fp32"):
            raise InvalidRequestError(
                f"precision {spec.precision} needs a GPU (on a CPU it is slow or unsupported); "
                'use "fp32".',
                param="precision",
            )
        world = distributed.world_size()
        if not on_cpu and world > torch.cuda.device_count():
            raise InvalidRequestError(
                f"{world} processes need a GPU each and this machine has "
                f"{torch.cuda.device_count()}; ask for fewer processes or train on the CPU.",
                param="processes",
            )
        self.precision = spec.precision
        if spec.precision == "auto":  # bf16 where the GPU has it: half the memory, same range
            bf16 = not on_cpu and torch.cuda.is_bf16_supported() and not spec.differential_privacy
            self.precision = "bf16" if bf16 else "fp32"
        self.accelerator = Accelerator(
            cpu=on_cpu,
            mixed_precision="no" if self.precision == "fp32" else self.precision,
            kwargs_handlers=distributed.process_group_kwargs(),
        )
        return build_model(self.task, spec, self.base, self.data.labels, self.resume)

    def setup_optimizer(self, model: Any, total_steps: int) -> tuple[Any, Any]:
        from transformers import get_linear_schedule_with_warmup

        optimizer = make_optimizer(model, self.spec, self.task.head_modules)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, round(self.spec.warmup_ratio * total_steps), total_steps
        )
        return optimizer, scheduler

    def prepare(self, total_steps: int) -> None:
        """Model, optimizer and scheduler for a run of ``total_steps``, on the device."""
        model = self.setup_model()
        optimizer, self.scheduler = self.setup_optimizer(model, total_steps)
        # The scheduler stays ours: accelerate's steps once per process under DDP. What is
        # prepared (DDP-wrapped) is the task's score around the model; self.model is the model.
        scorer = distributed.scoring_module(self.task, model)
        self.scorer, self.optimizer = self.accelerator.prepare(scorer, optimizer)
        self.model = self.accelerator.unwrap_model(self.scorer).model
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.ranks = distributed.Ranks(self.accelerator)
        self.should_stop = self.ranks.agreed(self.should_stop)
        self.watch = GradientWatch()
        data = self.data
        self.pad = data.pad_id
        self.manifest = model_manifest(self.spec, self.base, data.labels, data.max_length)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Example indices of every batch of ``epoch``, in training order (``steps_per_epoch``
        of them); a DP run draws Poisson batches instead (``tailorml.train.privacy``)."""
        return epoch_batches(self.lengths, self.spec.batch_size, self.spec.seed, epoch)

    def _on_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        device = self.accelerator.device
        return {k: v.to(device) for k, v in batch.items()}

    def train_step(self, micro_batches: list[list[Example]]) -> float | None:
        """One optimizer step over ``micro_batches`` (the global batches; this process scores
        its share of each); the loss is their item-weighted mean (None: a step with no loss
        to report, a DP run's empty Poisson batch).

        Accumulation is counted here, not by ``Accelerator.accumulate``: an epoch's last
        group of batches may be short, which accelerate's own counter does not know, and its
        gradients would then run into the next step. Gradients are synchronised across
        processes on the last micro-batch only (``no_sync`` before it, as accumulate does).
        """
        accelerator, scorer, ranks = self.accelerator, self.scorer, self.ranks
        total = sum(self.task.loss_weight(examples) for examples in micro_batches) or 1
        loss_sum = 0.0
        for n, examples in enumerate(micro_batches):
            mine = distributed.share(examples, ranks.rank, ranks.world)
            weight = self.task.loss_weight(mine) if mine else 0
            # Each share's loss is a mean over its own items: weighted back (and times the
            # world size, which DDP's average divides by), a step's gradient is the mean over
            # all of its items however they were split into micro-batches and processes.
            scale = weight * ranks.world / total
            if not mine:  # fewer examples than processes: take part in the all-reduce anyway
                mine, scale = examples[:1], 0.0
            last = n + 1 == len(micro_batches)
            with contextlib.nullcontext() if last else accelerator.no_sync(scorer):
                score = scorer(self._on_device(self.collate(mine, self.pad)))
                accelerator.backward(score.loss * scale)
            loss_sum += float(score.loss.detach()) * weight
        norm = float(accelerator.clip_grad_norm_(self.params, self.spec.max_grad_norm))
        loss = ranks.sum(loss_sum) / total
        fault = self.watch.check(loss, norm) if self.spec.health_guard else None
        if fault is None:
            self.optimizer.step()
        self.scheduler.step()  # a skipped step still moves the schedule, keeping it aligned
        self.optimizer.zero_grad(set_to_none=True)
        if fault is not None:
            raise _StepFault(fault)
        return loss

    def validate(self) -> dict[str, float | None]:
        with self.accelerator.autocast():
            found = evaluate(
                self.task,
                self.model,
                self.data.valid,
                self.pad,
                self.spec.batch_size,
                self.should_stop,
                collate=lambda examples, pad: self._on_device(self.collate(examples, pad)),
                metrics=self.spec.metrics,
                labels=self.data.labels,
                ranks=self.ranks,
            )
        self.model.train()
        return found

    def save_checkpoint(self, state: TrainerState) -> Path:
        """Rank 0 writes the checkpoint, with every rank's RNG state (all ranks call this)."""
        rng = rng_state()
        every = self.ranks.gather(rng)
        if self.ranks.world > 1:
            rng["ranks"] = every
        if not self.main:
            return self.out_dir / "checkpoints" / f"step-{state.step}"
        return save_checkpoint(
            self.out_dir,
            state,
            model=self.model,
            tokenizer=self.data.tokenizer,
            manifest=self.manifest,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            rng=rng,
        )

    def save_model(self) -> Path:
        model_dir = self.out_dir / "model"
        if self.main:
            with atomic_directory(model_dir) as tmp:
                write_model_folder(tmp, self.model, self.data.tokenizer, self.manifest)
        return model_dir

    # -- the run -----------------------------------------------------------------------

    def run(self, train_records: list[Record], valid_records: list[Record] | None) -> TrainResult:
        import torch

        spec, base = self.spec, self.base
        self.setup_data(train_records, valid_records)
        data = self.data
        accumulation = spec.gradient_accumulation_steps
        batches_per_epoch = steps_per_epoch(len(data.train), spec.batch_size)
        per_epoch = -(-batches_per_epoch // accumulation)
        total_steps = per_epoch * spec.n_epochs
        eval_every = spec.eval_every or max(1, total_steps // EVALS_PER_RUN)
        checkpoint_every = spec.checkpoint_every or CHECKPOINT_EVERY
        fingerprint = run_fingerprint(
            spec, base, data.labels, len(data.train), len(data.valid), data.max_length
        )
        loaded = load_checkpoint(self.resume) if self.resume is not None else None
        theirs = {**FINGERPRINT_DEFAULTS, **loaded[0].fingerprint} if loaded else fingerprint
        if theirs != fingerprint:
            differ = sorted(k for k in fingerprint if theirs.get(k) != fingerprint[k])
            raise InvalidRequestError(
                f"The checkpoint {self.resume} was written by a run with other "
                f"{', '.join(differ)}; resume with the same spec and data, or start a new run.",
                param="resume_from",
            )
        if self.main:
            _prepare_out_dir(self.out_dir, loaded[0].step if loaded else None)

        torch.manual_seed(spec.seed)
        self.prepare(total_steps)
        if spec.processes != self.ranks.world:
            self.say(
                f"The spec asks for {spec.processes} processes and {self.ranks.world} run it "
                f"(start it with torchrun --nproc-per-node {spec.processes}); the result is the "
                "same, only the speed differs.",
                "warning",
            )
        scheduler = self.scheduler
        task_state = self.task.before_training(
            spec,
            self.model,
            data.train,
            data.valid,
            collate=lambda examples, pad: self._on_device(self.collate(examples, pad)),
            pad_id=self.pad,
            should_stop=self.should_stop,
            saved=loaded[0].task_state if loaded else None,
        )

        if loaded is None:
            state = TrainerState(0, 0, 0, total_steps, 0, fingerprint, task_state=task_state)
            self.say(
                f"Training {base.name} ({spec.method}) for {spec.task} on {len(data.train)} "
                f"records ({len(data.valid)} for validation): {spec.n_epochs} epoch(s), "
                f"{total_steps} steps."
            )
            effective = spec.batch_size * accumulation
            self.say(
                f"Settings: learning rate {spec.learning_rate:.3g} (warmup {spec.warmup_ratio:.0%}"
                f", then linear decay), batch {spec.batch_size}"
                + (f" x {accumulation} accumulated = {effective}" if accumulation > 1 else "")
                + distributed.split_note(spec.batch_size, self.ranks.world)
                + f", max_length {data.max_length} tokens"
                + (", packed" if spec.packing else "")
                + f", {self.accelerator.device.type} {self.precision}; {data.held_out}."
            )
            if self.ranks.rank:  # its own dropout stream (the model was built alike on all)
                torch.manual_seed(spec.seed + self.ranks.rank)
            state.base_metrics = self.validate()
            state.last_eval = dict(state.base_metrics)
            self.on_event(
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
            self.optimizer.load_state_dict(optimizer_state)
            scheduler.load_state_dict(scheduler_state)
            # Last, so nothing above (model construction draws random numbers) moves them.
            restore_rng_state(self.ranks.own_rng_state(rng))
            self.say(f"Resumed from {self.resume.name} at step {state.step} of {total_steps}.")

        for stale in self.out_dir.glob("best-step-*") if self.main else ():
            if state.best is None or stale != self._best_dir(state.best):
                shutil.rmtree(stale, ignore_errors=True)  # a later step's, from a lost attempt
        self.model.train()
        stop_early = False
        while state.step < total_steps:
            batches = self.epoch_batches(state.epoch)
            index = state.batch_in_epoch
            while index < len(batches):
                if self.should_stop():
                    raise JobCancelledError(f"Training was cancelled before step {state.step + 1}.")
                group = batches[index : index + accumulation]
                micro = [[data.train[i] for i in batch] for batch in group]
                learning_rate = scheduler.get_last_lr()[0]
                train_loss: float | None
                try:
                    train_loss = self.train_step(micro)
                except _StepFault as fault:
                    train_loss = None
                    self.on_fault(state, fault.fault, [e for m in micro for e in m])
                index += len(group)

                state.step += 1
                if train_loss is not None:
                    state.trained_tokens += sum(e.trained_tokens for m in micro for e in m)
                    state.train_losses.append(train_loss)
                epoch_done = index == len(batches)
                state.epoch, state.batch_in_epoch = (
                    (state.epoch + 1, 0) if epoch_done else (state.epoch, index)
                )
                event = {
                    "type": "metrics",
                    "step": state.step,
                    "total_steps": total_steps,
                    "epoch": state.step / per_epoch,
                    "train_loss": train_loss,
                    "valid_loss": None,
                    "valid_accuracy": None,
                    **dict.fromkeys(state.base_metrics),  # the task's own, on evaluation steps
                    "learning_rate": learning_rate,
                    "trained_tokens": state.trained_tokens,  # so far, resumed attempts included
                }
                stop_early = False
                if state.step % eval_every == 0 or state.step == total_steps:
                    state.last_eval = self.validate()
                    event.update(state.last_eval)
                    stop_early = self.track_best(state, final=state.step == total_steps)
                self.on_event(event)
                if self.watch.vanishing():
                    self.say(
                        "The gradients have stayed near zero for many steps: training has "
                        "stalled; raise the learning rate or check the labels.",
                        "warning",
                    )
                if stop_early:
                    self.say(
                        f"Validation loss has not improved for {state.evals_since_best} "
                        f"evaluations (best {state.best['valid_loss']:.4f} at step "
                        f"{state.best['step']}); stopping early at step {state.step} of "
                        f"{total_steps}.",
                    )
                    break
                if state.step < total_steps and (epoch_done or state.step % checkpoint_every == 0):
                    path = self.save_checkpoint(state)
                    self.say(f"Saved checkpoint step-{state.step}.")
                    if self.on_checkpoint is not None:
                        self.on_checkpoint(
                            CheckpointInfo(state.step, path, _metrics(state, per_epoch))
                        )
                if epoch_done:
                    break
            if stop_early:
                break

        metrics = _metrics(state, per_epoch)
        best = state.best
        if best is not None and best["step"] != state.step and not self._best_dir(best).is_dir():
            # An attempt that ran past the checkpoint resumed from found a better model and
            # dropped this one's folder before it was lost itself.
            self.say(
                f"The best model (step {best['step']}) was not kept by an interrupted attempt; "
                "the result is the last step's model.",
                "warning",
            )
            best = None
        if best is not None and best["step"] != state.step:
            model_dir = self.out_dir / "model"
            if self.main:
                with atomic_directory(model_dir) as tmp:
                    shutil.copytree(self._best_dir(best), tmp, dirs_exist_ok=True)
            metrics.update(best["metrics"])
            self.say(
                f"The result is the model of step {best['step']}, the best validation loss "
                f"({best['valid_loss']:.4f}); step {state.step} ended at "
                f"{state.last_eval.get('valid_loss') or float('nan'):.4f}."
            )
        else:
            model_dir = self.save_model()
        for kept in self.out_dir.glob("best-step-*") if self.main else ():
            shutil.rmtree(kept, ignore_errors=True)  # the result holds it now
        metrics["best_step"] = best["step"] if best is not None else state.step
        if state.quarantined:
            metrics["quarantined_records"] = sorted(state.quarantined)
        self.say(f"Training finished: {state.step} steps; model written to {model_dir.name}/.")
        return TrainResult(model_dir, metrics, state.trained_tokens, state.step, data.labels)

    # -- model selection and the health guard -----------------------------------------------

    def _best_dir(self, best: dict[str, Any]) -> Path:
        return self.out_dir / f"best-step-{best['step']}"

    def track_best(self, state: TrainerState, *, final: bool) -> bool:
        """Keep the best evaluated model (by validation loss); True when it is time to stop.

        The best model is written to ``out_dir/best-step-N`` when it improves (not at the
        last step, whose model is written anyway), so a resumed run still has it.
        """
        loss = state.last_eval.get("valid_loss")
        if loss is None:
            return False
        if state.best is None or loss < state.best["valid_loss"]:
            previous = state.best
            state.best = {"step": state.step, "valid_loss": loss, "metrics": dict(state.last_eval)}
            state.evals_since_best = 0
            if not final and self.main:
                with atomic_directory(self._best_dir(state.best)) as tmp:
                    write_model_folder(tmp, self.model, self.data.tokenizer, self.manifest)
            if previous is not None and self.main:
                shutil.rmtree(self._best_dir(previous), ignore_errors=True)
            return False
        state.evals_since_best += 1
        patience = self.spec.early_stopping_patience
        return not final and bool(patience) and state.evals_since_best >= (patience or 0)

    def on_fault(self, state: TrainerState, fault: Fault, examples: list[Example]) -> None:
        """Skip the step (its update was not applied), lower the learning rate, quarantine
        the batch's records, and roll back to the last checkpoint if the weights are bad
        (``health.recover``)."""
        recover(self, state, fault, examples)


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
    recipe: type[Recipe] | None = None,
) -> TrainResult:
    """Fine-tune ``base`` on the records; write ``out_dir/model`` and return the result.

    A spec with ``differential_privacy`` runs ``privacy.PrivateRecipe`` (DP-SGD) by default.
    """
    if recipe is None and spec.differential_privacy is not None:
        from tailorml.train.privacy import PrivateRecipe

        recipe = PrivateRecipe
    run = (recipe or Recipe)(
        spec,
        base,
        out_dir,
        on_event=on_event,
        on_checkpoint=on_checkpoint,
        should_stop=should_stop,
        resume_from=resume_from,
    )
    return run.run(train_records, valid_records)


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
