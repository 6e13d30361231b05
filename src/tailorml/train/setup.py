"""What a run trains: the model (full, or the base with fresh or restored LoRA adapters) and
its optimizer. The recipe (``tailorml.train.loop``) calls these from its setup steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailorml.models.sources import MaterializedModel
from tailorml.train.spec import TrainSpec
from tailorml.train.tasks import TrainTask

HEAD_LR_FACTOR = 20.0


def build_model(
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


def make_optimizer(model: Any, spec: TrainSpec, head_modules: frozenset[str]) -> Any:
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
        ],
        # One kernel over all parameters instead of a loop of small ops: on a CPU the
        # optimizer step of a full fine-tune is memory-bound, and this is a third of a step.
        fused=True,
    )
