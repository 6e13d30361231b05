"""The embedding task: fine-tune an encoder for retrieval on (anchor, positive[, negative]) pairs.

The loss is the multiple-negatives ranking loss of sentence-transformers
(``MultipleNegativesRankingLoss``, van den Oord et al.'s InfoNCE): each
anchor is scored against every positive in the batch and every negative
given, by cosine similarity times ``SCALE``, and the cross-entropy asks for
its own positive to score highest. The other rows' positives are free
negatives, so a larger batch is a harder task; a hard negative per record
(``"negative"``) makes it harder still where it counts.

Embeddings are pooled exactly as the server pools them for
``/v1/embeddings`` (``tailorml.serve.encoder_batching``): the mean of the
last hidden states over the attention mask, L2-normalised. That is how
sentence-transformers pools MiniLM, so the base model's embeddings start
out as good as the library's and training improves the vectors the server
returns, not some other head's.

Validation reports the same loss and ``valid_accuracy``: the share of
anchors whose nearest candidate in their batch is their own positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailorml.records import EmbeddingPairRecord
from tailorml.registry import register
from tailorml.train.tasks import BatchScore, TrainTask

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tailorml.records import Record

SCALE = 20.0  # sentence-transformers' default: cosines in [-1, 1] become logits in [-20, 20]


@dataclass(slots=True)
class PairExample:
    """One encoded pair: token ids of the anchor, the positive and an optional negative."""

    anchor: list[int]
    positive: list[int]
    negative: list[int] | None = None
    record: int = -1  # its record's index in the list it was encoded from
    truncated: bool = False  # a text was cut at max_length

    @property
    def length(self) -> int:
        """The longest of its texts: what it pads its batch's rows to."""
        return max(len(self.anchor), len(self.positive), len(self.negative or ()))

    @property
    def trained_tokens(self) -> int:
        """Every token of its texts passes through the model and the loss."""
        return len(self.anchor) + len(self.positive) + len(self.negative or ())


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the unmasked positions, L2-normalised (the server's pooling)."""
    import torch

    keep = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)


def ranking_loss(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    same_text: torch.Tensor | None = None,
    scale: float = SCALE,
) -> tuple[torch.Tensor, int]:
    """Multiple-negatives ranking loss and hits of unit ``anchors`` (B x d) against
    ``candidates`` (the B positives, then any negatives).

    ``same_text`` (B x candidates, bool) marks other rows' candidates identical to a row's
    own positive: they are not negatives, so they are left out of that row's softmax
    (sentence-transformers avoids them by sampling batches without duplicates).
    """
    import torch

    scores = anchors @ candidates.T * scale
    if same_text is not None:
        scores = scores.masked_fill(same_text, float("-inf"))
    target = torch.arange(anchors.shape[0], device=anchors.device)
    loss = torch.nn.functional.cross_entropy(scores.float(), target)
    correct = int((scores.argmax(-1) == target).sum())
    return loss, correct


@register("task", "embedding")
class EmbeddingTask(TrainTask):
    """Fine-tune an encoder's pooled embeddings so each anchor retrieves its positive."""

    name = "embedding"
    architecture = "encoder"
    record_type = EmbeddingPairRecord
    example_type = PairExample
    peft_task_type = "FEATURE_EXTRACTION"
    default_method = "full"
    # In-batch negatives: a larger batch gives each anchor more to tell apart.
    default_batch_size = 32
    # sentence-transformers' default for a full fine-tune; the usual LoRA rate.
    base_learning_rates = {"lora": 2e-4, "full": 2e-5}

    def load_model(self, path: Path, labels: list[str] | None) -> PreTrainedModel:
        import torch
        from transformers import AutoModel

        from tailorml.models.safety import check_model_folder
        from tailorml.train.checkpoints import STATE_FILES

        check_model_folder(path, allowed=STATE_FILES)
        # The bare encoder: the saved folder is what the server loads for /v1/embeddings.
        return AutoModel.from_pretrained(path, trust_remote_code=False, dtype=torch.float32)

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        records: list[Record],
        labels: list[str] | None,
        max_length: int,
    ) -> tuple[list[PairExample], list[str]]:  # type: ignore[override]
        pairs = [r for r in records if isinstance(r, EmbeddingPairRecord)]
        if not pairs:
            return [], []
        texts = [r.anchor for r in pairs] + [r.positive for r in pairs]
        texts += [r.negative for r in pairs if r.negative is not None]
        full = tokenizer(texts, truncation=False)["input_ids"]
        cut = [ids[: max_length - 1] + ids[-1:] if len(ids) > max_length else ids for ids in full]
        n = len(pairs)
        examples, negatives = [], iter(range(2 * n, len(texts)))
        for i, record in enumerate(pairs):
            rows = [i, n + i] + ([next(negatives)] if record.negative is not None else [])
            ids = [list(cut[row]) for row in rows]
            examples.append(
                PairExample(
                    ids[0],
                    ids[1],
                    ids[2] if len(ids) > 2 else None,
                    record=i,
                    truncated=any(len(full[row]) > max_length for row in rows),
                )
            )
        return examples, []

    def collate(self, examples: list[Any], pad_id: int) -> dict[str, torch.Tensor]:
        """Anchors, positives and the negatives given, each padded; and which candidates
        repeat a row's own positive (``same_text``, see ``ranking_loss``)."""
        import torch

        negatives = [e.negative for e in examples if e.negative is not None]
        batch = {
            **_padded("anchor", [e.anchor for e in examples], pad_id),
            **_padded("positive", [e.positive for e in examples], pad_id),
        }
        if negatives:
            batch |= _padded("negative", negatives, pad_id)
        candidates = [tuple(e.positive) for e in examples] + [tuple(n) for n in negatives]
        same = torch.zeros((len(examples), len(candidates)), dtype=torch.bool)
        for row, e in enumerate(examples):
            own = tuple(e.positive)
            for col, text in enumerate(candidates):
                same[row, col] = col != row and text == own
        batch["same_text"] = same
        return batch

    def score(self, model: Any, batch: dict[str, torch.Tensor]) -> BatchScore:
        import torch

        def embed(part: str) -> torch.Tensor:
            mask = batch[f"{part}_attention_mask"]
            out = model(input_ids=batch[f"{part}_input_ids"], attention_mask=mask)
            return pool(out.last_hidden_state, mask)

        anchors = embed("anchor")
        candidates = [embed("positive")]
        if "negative_input_ids" in batch:
            candidates.append(embed("negative"))
        loss, correct = ranking_loss(anchors, torch.cat(candidates), batch["same_text"])
        return BatchScore(loss, int(anchors.shape[0]), correct)


def _padded(part: str, rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return {f"{part}_input_ids": ids, f"{part}_attention_mask": mask}
