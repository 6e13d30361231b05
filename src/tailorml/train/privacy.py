"""Differentially private fine-tuning of classifiers: DP-SGD with Opacus, as a recipe.

``train()`` runs ``PrivateRecipe`` when the spec has ``differential_privacy``
(``spec.PrivacySpec``). Each step is DP-SGD (Abadi et al. 2016):

- its batch is a **Poisson sample**: every training record joins with
  probability ``q = 1 / steps_per_epoch`` on its own, so batch sizes vary
  around ``q N`` (sometimes empty). This is what the accountant assumes; the
  loop's bucketed, fixed-size batches are not, so they are not used here;
- opacus' ``GradSampleModule`` computes **per-record gradients** of the
  trainable parameters only (a LoRA run: the adapters and the head);
- its ``DPOptimizer`` **clips** each record's gradient to ``max_grad_norm``,
  sums them, adds **Gaussian noise** of std ``noise_multiplier x max_grad_norm``
  from a seeded generator, divides by the expected batch size ``q N`` and
  lets AdamW step;
- the **RDP accountant** counts the step. Before training,
  ``get_noise_multiplier`` finds the noise that makes the whole run
  (epsilon, delta)-DP; ``epsilon_spent`` is reported at every evaluation and
  in the result (the spend of every step taken: the result model is chosen
  among checkpoints after all of them).

The guarantee covers what is computed from the model (weights, served
answers); the per-step training loss in the events and the evaluation
report are the tenant's own figures and are not noised. Resume is exact:
the accountant's history, the noise generator and the sampling seed are
saved with every checkpoint (``privacy.pt``). The health guard is off under
DP (skipping a step for what its batch held would leak it); clipping bounds
every update instead.
"""

from __future__ import annotations

import functools
import inspect
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailorml.errors import InvalidRequestError
from tailorml.records import Record
from tailorml.train.batching import steps_per_epoch
from tailorml.train.checkpoints import TrainerState, save_checkpoint
from tailorml.train.loop import Recipe
from tailorml.train.spec import PrivacySpec, TrainResult
from tailorml.train.tasks import Example

PRIVACY_STATE = "privacy.pt"
ACCOUNTANT = "rdp"  # opacus' Renyi-DP accountant (Mironov 2017), its default
EPSILON_TOLERANCE = 0.01  # how far below the target the found noise may leave epsilon
PRIVACY_METRICS = ("epsilon_spent", "dp_delta", "dp_noise_multiplier")


@dataclass(frozen=True)
class PrivacyPlan:
    """The noise that makes a run of ``steps`` Poisson-sampled steps (epsilon, delta)-DP."""

    epsilon: float  # the target
    delta: float
    sample_rate: float
    steps: int
    noise_multiplier: float
    n_train: int

    @property
    def expected_batch_size(self) -> float:
        return self.sample_rate * self.n_train


def plan_privacy(dp: PrivacySpec, *, n_train: int, batch_size: int, n_epochs: int) -> PrivacyPlan:
    """The noise multiplier for ``dp`` on ``n_train`` records (opacus' ``get_noise_multiplier``,
    RDP accountant), or a clear error when the request cannot be honoured."""
    from opacus.accountants.utils import get_noise_multiplier

    delta = dp.delta if dp.delta is not None else 1 / (10 * n_train)
    if not 0 < delta < 1 / n_train:
        raise InvalidRequestError(
            f"differential_privacy.delta is {delta:g}, but it must be below 1/N = {1 / n_train:g} "
            f"for N = {n_train} training records (a delta of 1/N allows leaking a whole record); "
            "leave it out for 1/(10 N).",
            param="differential_privacy.delta",
        )
    per_epoch = steps_per_epoch(n_train, batch_size)
    sample_rate, steps = 1 / per_epoch, per_epoch * n_epochs
    try:
        sigma = get_noise_multiplier(
            target_epsilon=dp.epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=ACCOUNTANT,
            epsilon_tolerance=EPSILON_TOLERANCE,
        )
    except ValueError:  # opacus: "The privacy budget is too low."
        raise InvalidRequestError(
            f"No amount of noise makes {steps} steps at sample rate {sample_rate:.3g} "
            f"(ε={dp.epsilon:g}, δ={delta:.3g})-DP under the RDP accountant: epsilon is too "
            "small for these records and steps. Raise epsilon, train fewer epochs, or add "
            "records.",
            param="differential_privacy.epsilon",
        ) from None
    return PrivacyPlan(dp.epsilon, delta, sample_rate, steps, float(sigma), n_train)


def poisson_batches(
    n_examples: int, sample_rate: float, n_batches: int, seed: int, epoch: int
) -> list[list[int]]:
    """``n_batches`` Poisson samples of example indices (each index in each batch with
    probability ``sample_rate``, independently), seeded by ``(seed, epoch)`` so that a resumed
    run draws the same ones. Batches vary in size and may be empty, as the accounting assumes."""
    rng = np.random.default_rng([seed, epoch])
    return [np.flatnonzero(rng.random(n_examples) < sample_rate).tolist() for _ in range(n_batches)]


def check_private_model(model: Any) -> None:
    """Refuse a model opacus cannot compute per-record gradients for (``ModuleValidator``).

    Its fixes (BatchNorm to GroupNorm, ...) change the architecture, and the saved model
    would no longer load as the class its config names; so they are refused, not applied.
    BERT-style encoders (Embedding, LayerNorm, Linear) pass.
    """
    from opacus.validators import ModuleValidator

    training = model.training
    model.train()  # as it trains (the validator refuses a model in eval mode)
    problems = ModuleValidator.validate(model, strict=False)
    model.train(training)
    if problems:
        found = "; ".join(str(p) for p in problems[:5])
        raise InvalidRequestError(
            f"DP-SGD cannot train this model: opacus finds layers it cannot compute per-record "
            f"gradients for ({found}). Pick a base model without them (a BERT-style encoder) "
            "or train without differential_privacy.",
            param="differential_privacy",
        )


class PrivateRecipe(Recipe):
    """The training recipe with DP-SGD steps (see the module docstring)."""

    def prepare(self, total_steps: int) -> None:
        import torch
        from opacus import GradSampleModule
        from opacus.accountants import RDPAccountant
        from opacus.optimizers import DPOptimizer

        super().prepare(total_steps)
        spec, dp = self.spec, self.spec.differential_privacy
        assert dp is not None
        self.plan = plan_privacy(
            dp, n_train=len(self.data.train), batch_size=spec.batch_size, n_epochs=spec.n_epochs
        )
        assert self.plan.steps == total_steps
        model = self.accelerator.unwrap_model(self.model)
        check_private_model(model)
        # Hooks on the trainable modules; the model itself stays what is saved and served.
        self.grad_sampler = GradSampleModule(model, loss_reduction="mean")
        core = model.get_base_model() if hasattr(model, "get_base_model") else model
        # A BERT-style encoder adds position embeddings of shape (1, length) to every row;
        # their per-record gradients need the positions given per row.
        self.row_positions = "position_ids" in inspect.signature(core.forward).parameters
        self.accountant = RDPAccountant()
        self.generator = torch.Generator(device=self.accelerator.device)
        if self.resume is None:
            self.secret = dp.noise_seed if dp.noise_seed is not None else secrets.randbits(63)
            self.generator.manual_seed(self.secret)
        else:
            self.restore_privacy_state()
        self.optimizer = DPOptimizer(
            self.optimizer,
            noise_multiplier=self.plan.noise_multiplier,
            max_grad_norm=spec.max_grad_norm,
            expected_batch_size=self.plan.expected_batch_size,  # type: ignore[arg-type]
            generator=self.generator,
        )
        plan = self.plan
        self.say(
            f"Differential privacy (DP-SGD, opacus): noise multiplier {plan.noise_multiplier:.4g}"
            f" (Gaussian noise of std {plan.noise_multiplier:.4g} x max_grad_norm "
            f"{spec.max_grad_norm:g} on each step's sum of per-record gradients clipped to "
            f"{spec.max_grad_norm:g}); Poisson-sampled batches at rate {plan.sample_rate:.4g} "
            f"(expected {plan.expected_batch_size:.1f} records) over {plan.steps} steps. The "
            f"trained model will be (ε={plan.epsilon:g}, δ={plan.delta:.3g})-DP with respect to "
            "one training record (RDP accountant). The health guard is off under DP."
        )
        if plan.noise_multiplier > plan.expected_batch_size:
            self.say(
                f"The noise on each step's mean gradient ({plan.noise_multiplier:.3g} x the clip "
                f"norm / {plan.expected_batch_size:.1f} records) exceeds the largest gradient a "
                "step can have: expect little learning. Raise epsilon or batch_size, or add "
                "records.",
                "warning",
            )

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return poisson_batches(
            len(self.data.train),
            self.plan.sample_rate,
            steps_per_epoch(len(self.data.train), self.spec.batch_size),
            self.secret,
            epoch,
        )

    def train_step(self, micro_batches: list[list[Example]]) -> float | None:
        """One DP-SGD step over one Poisson batch; None (no loss) when the batch is empty,
        which still adds noise and counts as a step, as the accounting assumes."""
        import torch

        (examples,) = micro_batches  # privacy_problems refuses accumulation
        loss: float | None = None
        if examples:
            batch = self._on_device(self.collate(examples, self.pad))
            model = self.model
            if self.row_positions:
                rows, width = batch["input_ids"].shape
                positions = torch.arange(width, device=batch["input_ids"].device)
                model = functools.partial(model, position_ids=positions.expand(rows, width))
            score = self.task.score(model, batch)
            self.accelerator.backward(score.loss)
            loss = float(score.loss.detach())
            self.check_grad_samples(len(examples))
        else:
            for p in self.params:
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
        self.optimizer.step()  # clip, noise, average over the expected batch size, AdamW
        self.accountant.step(
            noise_multiplier=self.plan.noise_multiplier, sample_rate=self.plan.sample_rate
        )
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def check_grad_samples(self, rows: int) -> None:
        """Every trainable parameter has one gradient per record (a layer that mixes rows, or
        a broadcast input, would give it fewer, and its clipping would be wrong)."""
        model = self.accelerator.unwrap_model(self.model)
        for name, p in model.named_parameters():
            if p.requires_grad and (p.grad_sample is None or p.grad_sample.shape[0] != rows):
                raise InvalidRequestError(
                    f"opacus computed no per-record gradient for {name} of this model, so "
                    "DP-SGD cannot bound each record's influence; train it without "
                    "differential_privacy or with method lora.",
                    param="differential_privacy",
                )

    def privacy_metrics(self) -> dict[str, float]:
        """``epsilon_spent`` by the steps taken so far, at the run's delta and noise."""
        spent = self.accountant.get_epsilon(delta=self.plan.delta) if self.accountant.history else 0
        return {
            "epsilon_spent": float(spent),
            "dp_delta": self.plan.delta,
            "dp_noise_multiplier": self.plan.noise_multiplier,
        }

    def validate(self) -> dict[str, float | None]:
        return {**super().validate(), **self.privacy_metrics()}

    def privacy_state(self) -> dict[str, Any]:
        return {
            "accountant": self.accountant.state_dict(),
            "generator": self.generator.get_state(),
            "seed": self.secret,
        }

    def restore_privacy_state(self) -> None:
        import torch

        assert self.resume is not None
        path = self.resume / PRIVACY_STATE
        if not path.is_file():
            raise InvalidRequestError(
                f"The checkpoint {self.resume.name} has no {PRIVACY_STATE}: it was not written "
                "by a differentially private run; resume with the spec it was written with.",
                param="resume_from",
            )
        state = torch.load(path, weights_only=True)
        self.accountant.load_state_dict(state["accountant"])
        self.generator.set_state(state["generator"])
        self.secret = int(state["seed"])

    def save_checkpoint(self, state: TrainerState) -> Path:
        return save_checkpoint(
            self.out_dir,
            state,
            model=self.accelerator.unwrap_model(self.model),
            tokenizer=self.data.tokenizer,
            manifest=self.manifest,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            extra={PRIVACY_STATE: self.privacy_state()},
        )

    def run(self, train_records: list[Record], valid_records: list[Record] | None) -> TrainResult:
        result = super().run(train_records, valid_records)
        # The whole run's spend, whichever step's model was kept: the choice was made after
        # every step (a best model of step k is still a function of all T noisy steps).
        for key in PRIVACY_METRICS:
            result.metrics.pop(f"base_{key}", None)
        result.metrics.update(self.privacy_metrics())
        spent = result.metrics["epsilon_spent"]
        self.say(
            f"Privacy spent: ε={spent:.4g} of {self.plan.epsilon:g} over {result.steps} steps; "
            f"the model is (ε={spent:.4g}, δ={self.plan.delta:.3g})-DP with respect to one "
            "training record."
        )
        return result
