"""What a training run is asked to do (``TrainSpec``) and what it returns (``TrainResult``).

The spec, the data and the base model decide everything a run computes;
``check_spec`` reports every problem with a spec at once. Hyperparameters
come from ``tailorml.train.hyperparams`` (which fills in "auto" values).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tailorml.errors import InvalidRequestError
from tailorml.models.manifest import ModelManifest
from tailorml.models.sources import MaterializedModel

EVALS_PER_RUN = 10
CHECKPOINT_EVERY = 25
DEFAULT_MAX_LENGTH = 512
MAX_EPSILON = 100.0  # above this a DP guarantee says nothing (e^100 bounds no odds)
PRIVATE_TASKS = ("classification",)  # the tasks DP-SGD trains (tailorml.train.privacy)


@dataclass
class PrivacySpec:
    """Differentially private training (DP-SGD, ``tailorml.train.privacy``): the guarantee asked
    for, (epsilon, delta) with respect to one training record."""

    epsilon: float
    delta: float | None = None  # default 1 / (10 N) for N training records
    # Seeds the Poisson sampling of batches and the noise. None (the default, and what the
    # platform passes) draws it from the OS, kept only in the run's checkpoints: whoever knew
    # it could replay both, so a job's public seed must not decide them. Tests set it.
    noise_seed: int | None = None


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
    # Where and how: "auto" is the GPU when there is one, and bf16 on a GPU that has it
    # (fp32 elsewhere); fp16/bf16 need a GPU.
    device: Literal["auto", "cpu"] = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    # Processes the launcher starts (torchrun, DDP; one per GPU on a GPU machine). The global
    # batch stays batch_size, split over them, so the run computes the same as one process.
    processes: int = 1
    gradient_accumulation_steps: int = 1  # a step takes this many batches of batch_size
    packing: bool = False  # decoders: several sequences in a row instead of padding
    # Stop after this many evaluations without a better validation loss (0 or None: never);
    # the result is the best evaluated model either way.
    early_stopping_patience: int | None = 3
    health_guard: bool = True  # skip and quarantine NaN/exploding steps (tailorml.train.health)
    # Metrics computed at every evaluation step beside loss and accuracy
    # (names registered in tailorml.eval.metrics: macro_f1, ...; classification).
    metrics: list[str] = field(default_factory=list)
    report: bool = True  # base against tuned on the held-out records, after training
    # Probes answered by the adapter on its base and merged, stored for the serving check.
    fidelity_check: bool = True
    # Chat and completion: the chat model that judges base against tuned in the report (its
    # id as the job named it; the run gets its folder as RunSpec.judge).
    judge_model: str | None = None
    # Preference (DPO) only: how strongly the policy is held to the reference model (the
    # base); the loss is -log sigmoid(beta * margin of log-ratios). OpenAI's default.
    beta: float = 0.1
    # DP-SGD with per-sample clipping at max_grad_norm (classification only); None: off.
    differential_privacy: PrivacySpec | None = None


@dataclass
class TrainResult:
    """What a finished run hands back; ``metrics`` holds the final and the base figures."""

    model_dir: Path
    metrics: dict[str, Any]
    trained_tokens: int
    steps: int
    labels: list[str] | None = field(default=None)


def check_spec(spec: TrainSpec, base: MaterializedModel) -> None:
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
        (0 < spec.beta < float("inf"), "beta must be a number above 0"),
        (spec.device in ("auto", "cpu"), f'device must be "auto" or "cpu", got {spec.device!r}'),
        (
            spec.precision in ("auto", "fp32", "fp16", "bf16"),
            f'precision must be "auto", "fp32", "fp16" or "bf16", got {spec.precision!r}',
        ),
        (
            isinstance(spec.processes, int) and spec.processes >= 1,
            "processes must be an integer of at least 1",
        ),
        (
            spec.early_stopping_patience is None or spec.early_stopping_patience >= 0,
            "early_stopping_patience must be 0 or more (0 or null: never stop early)",
        ),
        (
            isinstance(spec.gradient_accumulation_steps, int)
            and spec.gradient_accumulation_steps >= 1,
            "gradient_accumulation_steps must be an integer of at least 1",
        ),
    ]
    problems += [message for ok, message in checks if not ok]
    if spec.metrics:
        import tailorml.eval.metrics  # noqa: F401  (the metrics register on import)
        from tailorml.registry import names

        known = names("metric")
        unknown = [m for m in spec.metrics if m not in known]
        if unknown:
            problems.append(
                f"unknown metric(s) {', '.join(map(repr, unknown))}; choose from {', '.join(known)}"
            )
        if spec.task != "classification":
            problems.append(
                f"metrics are computed over a classifier's predictions; a {spec.task} job reports "
                "its loss (and the evaluation report) instead"
            )
    if spec.differential_privacy is not None:
        problems += privacy_problems(spec)
    if problems:
        raise InvalidRequestError("Invalid training spec: " + "; ".join(problems) + ".")


def privacy_problems(spec: TrainSpec) -> list[str]:
    """What keeps DP-SGD from honouring ``spec.differential_privacy`` (before any data is read;
    the bounds that need the number of records are checked by ``tailorml.train.privacy``)."""
    dp = spec.differential_privacy
    assert dp is not None
    problems: list[str] = []
    if spec.task not in PRIVATE_TASKS:
        problems.append(
            f"differential_privacy trains the {', '.join(PRIVATE_TASKS)} task only, not "
            f"{spec.task}; train without it or use a classification data set"
        )
    if not 0 < dp.epsilon <= MAX_EPSILON:
        problems.append(
            f"differential_privacy.epsilon must be above 0 and at most {MAX_EPSILON:g} (a "
            f"larger one guarantees nothing), got {dp.epsilon:g}; 1-10 is usual"
        )
    if dp.delta is not None and not 0 < dp.delta < 1:
        problems.append(
            f"differential_privacy.delta must be in (0, 1/N) for N training records, got "
            f"{dp.delta:g}; leave it out for 1/(10 N)"
        )
    if spec.gradient_accumulation_steps != 1:
        problems.append(
            "gradient_accumulation_steps cannot be combined with differential_privacy (each "
            "step is one Poisson-sampled batch); raise batch_size instead"
        )
    if spec.packing:
        problems.append("packing cannot be combined with differential_privacy; leave it off")
    if spec.processes != 1:
        problems.append(
            "differential_privacy trains in one process (its accountant counts one Poisson "
            "sampler); leave processes at 1"
        )
    if spec.precision not in ("fp32", "auto"):
        problems.append(
            f'differential_privacy trains in "fp32" ("auto" is fp32 under it), not {spec.precision}'
        )
    if spec.max_grad_norm <= 0:
        problems.append("max_grad_norm (the per-record clipping bound under DP) must be above 0")
    return problems


# Fingerprint keys added later, with the value a checkpoint written before them was run with.
FINGERPRINT_DEFAULTS = {
    "gradient_accumulation_steps": 1,
    "packing": False,
    "beta": 0.1,
    "differential_privacy": None,
}


def run_fingerprint(
    spec: TrainSpec,
    base: MaterializedModel,
    labels: list[str] | None,
    n_train: int,
    n_valid: int,
    max_length: int,
) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed by this run (stored in the checkpoint)."""
    return {
        "task": spec.task,
        "method": spec.method,
        "base": base.name,
        "labels": labels,
        "n_train": n_train,
        "n_valid": n_valid,
        "n_epochs": spec.n_epochs,
        "batch_size": spec.batch_size,
        "learning_rate": spec.learning_rate,
        "seed": spec.seed,
        "max_length": max_length,
        "gradient_accumulation_steps": spec.gradient_accumulation_steps,
        "packing": spec.packing,
        "beta": spec.beta,
        "differential_privacy": (
            dataclasses.asdict(spec.differential_privacy) if spec.differential_privacy else None
        ),
    }


def model_manifest(
    spec: TrainSpec, base: MaterializedModel, labels: list[str] | None, max_length: int
) -> ModelManifest:
    """``tailor_model.json``: what serving and evaluation need to load and use a trained model."""
    return ModelManifest(
        task=spec.task,
        method=spec.method,
        base=base.name,
        base_path=str(base.path),
        architecture=base.architecture,
        labels=tuple(labels) if labels is not None else None,
        context_length=base.context_length,
        max_length=max_length,
    )
