"""What a run writes to disk: model folders and resumable checkpoints.

A model folder (the final ``out_dir/model`` and the weights part of every
checkpoint) holds the weights as safetensors (the whole model for a full
fine-tune, the peft adapter for LoRA), the tokenizer and
``tailor_model.json`` (``tailorml.models.manifest``). A checkpoint
(``out_dir/checkpoints/step-<N>``) adds what the loop needs to continue
exactly: optimizer, scheduler and RNG states, and ``trainer_state.json``
(step, data position, metrics so far). Everything is written atomically and
only the newest ``KEEP_CHECKPOINTS`` are kept.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailorml.errors import InvalidRequestError
from tailorml.models.atomic import atomic_directory
from tailorml.models.manifest import ModelManifest
from tailorml.models.safety import CHECKPOINT_STATE_FILES

if TYPE_CHECKING:
    import torch

STATE = "trainer_state.json"
KEEP_CHECKPOINTS = 2
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class CheckpointInfo:
    """Passed to ``on_checkpoint`` after a checkpoint is safely on disk."""

    step: int
    path: Path
    metrics: dict[str, Any]


@dataclass
class TrainerState:
    """The loop's position and history, as stored in ``trainer_state.json``."""

    step: int
    epoch: int  # the epoch the next step belongs to
    batch_in_epoch: int  # index of the next batch within that epoch's order
    total_steps: int
    trained_tokens: int
    fingerprint: dict[str, Any]
    base_metrics: dict[str, Any] = field(default_factory=dict)
    last_eval: dict[str, Any] = field(default_factory=dict)
    train_losses: list[float] = field(default_factory=list)
    # The best validation so far ({"step", "valid_loss", "metrics"}), and evaluations since.
    best: dict[str, Any] | None = None
    evals_since_best: int = 0
    # The health guard's record: training-file indices of quarantined records, and faults.
    quarantined: list[int] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    # What the task computed before training (TrainTask.before_training: DPO's reference).
    task_state: dict[str, Any] = field(default_factory=dict)


# A checkpoint's own training state, loaded with torch.load(weights_only=True): not model weights.
STATE_FILES = CHECKPOINT_STATE_FILES


def write_model_folder(folder: Path, model: Any, tokenizer: Any, manifest: ModelManifest) -> None:
    """Weights (adapter only for a peft model), tokenizer and manifest into ``folder``."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    manifest.write(folder)


def rng_state() -> dict[str, Any]:
    """This process's torch generator states (CPU, and every GPU's), as a checkpoint keeps them."""
    import torch

    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put torch's generators back where a checkpoint left them (dropout draws from them)."""
    import torch

    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    out_dir: Path,
    state: TrainerState,
    *,
    model: Any,
    tokenizer: Any,
    manifest: ModelManifest,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``out_dir/checkpoints/step-<N>`` atomically, drop old ones, return its path.

    ``rng``: the generator states to keep (default this process's; a run of several
    processes adds every rank's under ``"ranks"``). ``extra`` maps names in ``STATE_FILES``
    to what a recipe keeps in them (a DP run's accountant and noise generator,
    ``privacy.PRIVACY_STATE``), written in the same step.
    """
    import torch

    dest = Path(out_dir) / "checkpoints" / f"step-{state.step}"
    with atomic_directory(dest) as tmp:
        write_model_folder(tmp, model, tokenizer, manifest)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng if rng is not None else rng_state(), tmp / "rng_state.pt")
        for name, value in (extra or {}).items():
            assert name in STATE_FILES, name  # only files a checkpoint loader lets pass
            torch.save(value, tmp / name)
        (tmp / STATE).write_text(json.dumps(state.__dict__, indent=2), encoding="utf-8")
    prune_checkpoints(dest.parent, keep=KEEP_CHECKPOINTS)
    return dest


def list_checkpoints(folder: Path) -> list[Path]:
    """Finished checkpoints in ``folder``, oldest first."""
    if not Path(folder).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(folder).iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest finished checkpoint of a run's ``out_dir``, to pass as ``resume_from``."""
    found = list_checkpoints(Path(out_dir) / "checkpoints")
    return found[-1] if found else None


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path) -> tuple[TrainerState, dict[str, Any], dict[str, Any], dict]:
    """``(state, optimizer state, scheduler state, RNG state)`` of a checkpoint folder."""
    import torch

    path = Path(path)
    if not (path / STATE).is_file():
        raise InvalidRequestError(
            f"{path} is not a checkpoint (no {STATE}); resume from a folder under "
            "out_dir/checkpoints/.",
            param="resume_from",
        )
    state = TrainerState(**json.loads((path / STATE).read_text(encoding="utf-8")))
    # weights_only: these files hold tensors and plain containers only, and
    # refusing anything else keeps a tampered checkpoint from running code.
    optimizer = torch.load(path / "optimizer.pt", weights_only=True)
    scheduler = torch.load(path / "scheduler.pt", weights_only=True)
    rng = torch.load(path / "rng_state.pt", weights_only=True)
    return state, optimizer, scheduler, rng
