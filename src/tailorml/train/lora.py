"""LoRA through peft: which modules get adapters, wrapping, and restoring a checkpoint.

peft knows default target modules for most architectures; for Llama-family
decoders it picks only ``q_proj`` and ``v_proj``, and we adapt all four
attention projections instead, which is the usual choice for instruction
tuning (QLoRA and most LoRA recipes) and costs few extra parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError

ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]
# Model types whose attention is built of the four projections above.
LLAMA_LIKE = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo", "olmo2"}
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def default_target_modules(model_type: str) -> list[str] | None:
    """Our default LoRA targets for ``model_type``; None lets peft choose."""
    return list(ATTENTION_PROJECTIONS) if model_type in LLAMA_LIKE else None


def wrap_with_lora(
    model: Any,
    *,
    task_type: str,
    r: int,
    alpha: int,
    dropout: float,
    target_modules: list[str] | None,
) -> Any:
    """``model`` with fresh LoRA adapters; only the adapters (and a new head) train."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = target_modules or default_target_modules(model.config.model_type)
    config = LoraConfig(
        task_type=TaskType[task_type],
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
    )
    return get_peft_model(model, config)


def load_adapter_weights(model: Any, folder: Path) -> None:
    """Overwrite the adapters (and a trained head) of ``model`` with those saved in ``folder``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(model, load_file(Path(folder) / ADAPTER_WEIGHTS))
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        # A checkpoint written with other LoRA settings; resuming from it would
        # silently train a different model.
        raise InvalidRequestError(
            f"The adapter in {folder} does not fit this model ({unexpected[:3]} ...); resume "
            "with the LoRA settings the checkpoint was written with.",
            param="resume_from",
        )
