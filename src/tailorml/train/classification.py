"""The classification task: a sequence-classification head on an encoder.

Labels are the sorted distinct label strings of the training records; the
model config carries ``id2label``/``label2id`` so a saved model names its
classes. The validation split is stratified so every class keeps its share
(a random split of a small, skewed set can leave a class out entirely).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tailorml.errors import InvalidRequestError
from tailorml.records import ClassificationRecord
from tailorml.registry import register
from tailorml.train.tasks import BatchScore, Example, TrainTask

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tailorml.records import Record


@register("task", "classification")
class ClassificationTask(TrainTask):
    """Fine-tune an encoder to predict one label per text."""

    name = "classification"
    architecture = "encoder"
    record_type = ClassificationRecord
    peft_task_type = "SEQ_CLS"
    # BERT-like models call their head "classifier", decoders "score".
    head_modules = frozenset({"classifier", "score"})
    default_method = "full"
    default_batch_size = 16  # inputs are short
    base_learning_rates = {"lora": 2e-4, "full": 5e-5}

    def labels(self, records: list[Record]) -> list[str]:
        found = sorted({r.label for r in records if isinstance(r, ClassificationRecord)})
        if len(found) < 2:
            raise InvalidRequestError(
                f"A classifier needs at least two labels; the training file has only {found}. "
                "Add examples of the other classes.",
                param="training_file",
            )
        return found

    def load_model(self, path: Path, labels: list[str] | None) -> PreTrainedModel:
        import torch
        from transformers import AutoModelForSequenceClassification

        from tailorml.models.safety import check_model_folder
        from tailorml.train.checkpoints import STATE_FILES

        assert labels is not None
        check_model_folder(path, allowed=STATE_FILES)
        return AutoModelForSequenceClassification.from_pretrained(
            path,
            trust_remote_code=False,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            dtype=torch.float32,
        )

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        records: list[Record],
        labels: list[str] | None,
        max_length: int,
    ) -> tuple[list[Example], list[str]]:
        assert labels is not None
        index = {label: i for i, label in enumerate(labels)}
        examples: list[Example] = []
        skipped: list[str] = []
        if not records:
            # A set too small to hold out a validation record splits into (all, []); a fast
            # tokenizer called on an empty batch raises IndexError instead of returning [].
            return examples, skipped
        texts = [r.text for r in records if isinstance(r, ClassificationRecord)]
        # The overflow rows say which texts were cut (only the first row of each is kept).
        out = tokenizer(
            texts, truncation=True, max_length=max_length, return_overflowing_tokens=True
        )
        owners = out.get("overflow_to_sample_mapping") or list(range(len(texts)))
        encoded: list[list[int]] = [[] for _ in texts]
        cut = [False] * len(texts)
        for row, owner in enumerate(owners):
            if encoded[owner]:
                cut[owner] = True
            else:
                encoded[owner] = list(out["input_ids"][row])
        for i, (record, ids) in enumerate(zip(records, encoded, strict=True)):
            assert isinstance(record, ClassificationRecord)
            if record.label not in index:
                # Only validation records can get here: the labels come from training.
                skipped.append(f"record {i + 1}: label {record.label!r} is not in the training set")
                continue
            examples.append(Example(ids, index[record.label], record=i, truncated=cut[i]))
        return examples, skipped

    def score(self, model: Any, batch: dict[str, torch.Tensor]) -> BatchScore:
        """Cross-entropy of the head's logits (one row per text: small, unlike a decoder's)."""
        import torch

        labels = batch["labels"]
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        predicted = logits.argmax(-1)
        correct = int((predicted == labels).sum())
        return BatchScore(loss, int(labels.shape[0]), correct, predicted.tolist(), labels.tolist())

    def split(
        self, records: list[Record], fraction: float, seed: int
    ) -> tuple[list[Record], list[Record]]:
        """Stratified, seeded split; a class keeps at least one training record."""
        by_label: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(records):
            by_label[r.label].append(i)  # type: ignore[union-attr]
        rng = np.random.default_rng(seed)
        held: set[int] = set()
        for label in sorted(by_label):
            members = by_label[label]
            n_valid = min(round(len(members) * fraction), len(members) - 1)
            if n_valid > 0:
                held.update(rng.permutation(members)[:n_valid].tolist())
        return (
            [r for i, r in enumerate(records) if i not in held],
            [r for i, r in enumerate(records) if i in held],
        )
