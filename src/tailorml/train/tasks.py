"""What a training task is: everything about training that differs from one task to another.

The training loop (``tailorml.train.loop``) is the same for every task; a
task supplies the parts that differ:

- its example type (``Example`` holds one sequence; a task whose examples
  hold a pair or a triple defines its own, with ``length`` and
  ``trained_tokens``, which is all the loop reads of an example);
- how it loads a model, encodes records and collates a batch (padded, or
  for decoders packed: several sequences in one row);
- its loss, computed by the task from the model's hidden states (a decoder
  computes logits only where a token is trained, see ``sft.py``);
- its metrics (``BatchScore.correct`` for accuracy, ``BatchScore.sums`` for others);
- anything it computes from the model once before training (``before_training``: DPO's
  reference log-probabilities), which checkpoints keep so a resumed run has it too;
- its defaults: method, batch size and base learning rates
  (``tailorml.train.hyperparams`` reads them for "auto" values).

Tasks register as ``register("task", name)`` beside their code
(``classification.py``, ``embedding.py``, ``sft.py``, ``preference.py``); ``load_task(name)`` returns an
instance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np

from tailorml.errors import InvalidRequestError
from tailorml.registry import lookup, names

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tailorml.records import Record
    from tailorml.train.spec import TrainSpec

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips


class TrainExample(Protocol):
    """What the loop reads of an encoded example (a task's collator reads the rest)."""

    @property
    def length(self) -> int:
        """Tokens the example puts into a batch (for length bucketing)."""
        ...

    @property
    def trained_tokens(self) -> int: ...


@dataclass(slots=True)
class Example:
    """One encoded record: token ids and either token labels or a class id."""

    input_ids: list[int]
    target: list[int] | int
    record: int = -1  # its record's index in the list it was encoded from
    truncated: bool = False  # cut at max_length (its end is not trained)

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def trained_tokens(self) -> int:
        """Tokens that carry a label (what OpenAI bills as trained tokens, per epoch)."""
        if isinstance(self.target, int):
            return len(self.input_ids)
        return sum(1 for t in self.target if t != IGNORE_INDEX)


@dataclass(slots=True)
class BatchScore:
    """The loss of one batch, the weight to average it with, and (classification) hits.

    ``sums`` holds further metrics as sums over the batch's ``weight`` items; validation
    reports each as ``valid_<name>``, its mean over all items (DPO's reward margin).
    """

    loss: torch.Tensor
    weight: int
    correct: int | None = None
    # Classifiers: each item's predicted and true class, for metrics named in the spec.
    predicted: list[int] | None = None
    targets: list[int] | None = None
    sums: dict[str, float] = field(default_factory=dict)


class TrainTask:
    """Base of the registered tasks; subclasses fill in the class attributes and methods."""

    name: ClassVar[str]
    architecture: ClassVar[str]
    record_type: ClassVar[type]
    example_type: ClassVar[type] = Example
    peft_task_type: ClassVar[str]  # a peft.TaskType name
    # Modules the task adds on top of the base (a classifier head). They start
    # random, so they train with a larger learning rate (see loop._optimizer).
    head_modules: ClassVar[frozenset[str]] = frozenset()
    # What OpenAI's "supervised" method means for this task, and the "auto" defaults.
    default_method: ClassVar[Literal["full", "lora"]]
    default_batch_size: ClassVar[int] = 8
    base_learning_rates: ClassVar[dict[str, float]]  # by method, for a multiplier of 1.0

    def labels(self, records: list[Record]) -> list[str] | None:
        """The sorted class names a classifier predicts, or None for generative tasks."""
        return None

    def load_model(self, path: Path, labels: list[str] | None) -> PreTrainedModel:
        raise NotImplementedError

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        records: list[Record],
        labels: list[str] | None,
        max_length: int,
    ) -> tuple[list[Example], list[str]]:
        """Encode records; return the examples and a reason for each record left out."""
        raise NotImplementedError

    def collate(self, examples: list[Any], pad_id: int) -> dict[str, torch.Tensor]:
        """Pad a batch to its longest example (right padding, with an attention mask)."""
        return pad_batch(examples, pad_id)

    def score(self, model: Any, batch: dict[str, torch.Tensor]) -> BatchScore:
        """The batch's loss (a mean over its ``weight`` items) and, if any, its hits."""
        raise NotImplementedError

    def loss_weight(self, examples: list[Any]) -> int:
        """The items ``score``'s loss is a mean over (examples here; a decoder's trained
        tokens), known before scoring so accumulated micro-batches can be weighted."""
        return len(examples)

    def before_training(
        self,
        spec: TrainSpec,
        model: Any,
        train: list[Any],
        valid: list[Any],
        *,
        collate: Callable[[list[Any], int], dict[str, Any]],
        pad_id: int,
        should_stop: Callable[[], bool],
        saved: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Run once the model is ready, before the base is validated: compute what the task
        needs from the untrained model for its ``train`` and ``valid`` examples. The result
        is kept in every checkpoint; a resumed run passes it back as ``saved`` instead of
        recomputing it from a model that has trained since. Most tasks need nothing."""
        return {}

    def method(self, requested: str) -> Literal["full", "lora"]:
        """``full`` or ``lora`` as asked; OpenAI's ``supervised`` means the task's default."""
        if requested in ("full", "lora"):
            return requested  # type: ignore[return-value]
        return self.default_method

    def split(
        self, records: list[Record], fraction: float, seed: int
    ) -> tuple[list[Record], list[Record]]:
        """Hold out about ``fraction`` of the records for validation, seeded.

        Returns ``(train, [])`` when the set is too small to spare a record.
        """
        n_valid = round(len(records) * fraction)
        if n_valid < 1 or len(records) - n_valid < 1:
            return list(records), []
        order = np.random.default_rng(seed).permutation(len(records))
        held = set(order[:n_valid].tolist())
        return (
            [r for i, r in enumerate(records) if i not in held],
            [r for i, r in enumerate(records) if i in held],
        )

    def check_records(self, records: list[Record], what: str) -> None:
        """Refuse records of another task, naming the first one."""
        for i, record in enumerate(records):
            if not isinstance(record, self.record_type):
                raise InvalidRequestError(
                    f"{what} record {i + 1} is a {record.task} record, but the job's task is "
                    f"{self.name}; upload a {self.name} file or change the task.",
                    param=what,
                )


def pad_batch(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (a class id per row, or a
    label per token, ``IGNORE_INDEX`` on padding)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[row, : len(e.input_ids)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if isinstance(examples[0].target, int):
        batch["labels"] = torch.tensor([e.target for e in examples], dtype=torch.long)
    else:
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for row, e in enumerate(examples):
            labels[row, : len(e.target)] = torch.tensor(e.target)
        batch["labels"] = labels
    return batch


def load_task(name: str) -> TrainTask:
    """An instance of the task registered as ``name``."""
    # The built-in tasks register when their modules are imported.
    from tailorml.train import classification, embedding, preference, sft  # noqa: F401

    if name not in names("task"):
        raise InvalidRequestError(
            f"TailorML cannot train the task {name!r} yet; choose one of: "
            f"{', '.join(names('task'))}.",
            param="task",
        )
    return lookup("task", name)()
