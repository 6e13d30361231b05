"""Classification evaluation: baselines a fine-tune must beat, and a trained model's accuracy.

Two baselines bracket what fine-tuning adds: always answering the most
frequent training label, and a nearest-centroid classifier on the frozen
base model's sentence embeddings (mean-pooled and normalized, as
sentence-transformers computes them for MiniLM), which is what a tenant
gets with no training at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError
from tailorml.models.manifest import read_manifest
from tailorml.models.sources import MaterializedModel
from tailorml.records import ClassificationRecord, Record

BATCH_SIZE = 32
MAX_LENGTH = 256  # sentence-transformers' limit for MiniLM; longer texts add little


def _classification(records: list[Record], what: str) -> list[ClassificationRecord]:
    out = [r for r in records if isinstance(r, ClassificationRecord)]
    if len(out) != len(records) or not out:
        raise InvalidRequestError(f"{what} must be a non-empty list of classification records.")
    return out


def _encoded_batches(tokenizer: Any, texts: list[str], max_length: int) -> Iterator[Any]:
    """``texts`` tokenized ``BATCH_SIZE`` at a time, truncated and padded, as tensors."""
    for start in range(0, len(texts), BATCH_SIZE):
        yield tokenizer(
            texts[start : start + BATCH_SIZE],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )


def embed_texts(model: Any, tokenizer: Any, texts: list[str], max_length: int = MAX_LENGTH) -> Any:
    """Mean-pooled, L2-normalized embeddings of ``texts`` (a float tensor, one row per text)."""
    import torch

    rows = []
    model.eval()
    with torch.no_grad():
        for enc in _encoded_batches(tokenizer, texts, max_length):
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(rows)


def nearest_centroids(
    base: MaterializedModel, train: list[ClassificationRecord], texts: list[str], labels: list[str]
) -> list[int]:
    """The label index of each text by the nearest class centroid of the frozen base's
    embeddings of ``train`` (what a tenant gets with no training)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    model = AutoModel.from_pretrained(base.path, dtype=torch.float32)
    known = [r for r in train if r.label in labels]
    train_emb = embed_texts(model, tokenizer, [r.text for r in known])
    label_ids = torch.tensor([labels.index(r.label) for r in known])
    present = [i for i in range(len(labels)) if bool((label_ids == i).any())]
    centroids = torch.stack([train_emb[label_ids == i].mean(0) for i in present])
    centroids = torch.nn.functional.normalize(centroids, dim=-1)
    nearest = (embed_texts(model, tokenizer, texts) @ centroids.T).argmax(-1)
    return [present[int(i)] for i in nearest]


def baseline_accuracies(
    base: MaterializedModel, train_records: list[Record], test_records: list[Record]
) -> dict[str, Any]:
    """Accuracy on ``test_records`` of the majority label and of frozen-embedding nearest centroids."""
    train = _classification(train_records, "train_records")
    test = _classification(test_records, "test_records")
    majority_label = Counter(r.label for r in train).most_common(1)[0][0]
    majority = sum(r.label == majority_label for r in test) / len(test)
    labels = sorted({r.label for r in train})
    predicted = nearest_centroids(base, train, [r.text for r in test], labels)
    centroid = sum(labels[p] == r.label for p, r in zip(predicted, test, strict=True)) / len(test)
    return {
        "majority_label": majority_label,
        "majority_accuracy": majority,
        "nearest_centroid_accuracy": centroid,
        "n_test": len(test),
    }


def load_classifier(model_dir: Path) -> tuple[Any, Any, list[str]]:
    """``(model, tokenizer, labels)`` of a classifier folder (one with a ``ModelManifest``)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    manifest = read_manifest(model_dir)
    if manifest.task != "classification" or not manifest.labels:
        raise InvalidRequestError(f"{model_dir} holds a {manifest.task} model, not a classifier.")
    labels = list(manifest.labels)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if manifest.is_lora:
        from peft import PeftModel

        base = AutoModelForSequenceClassification.from_pretrained(
            manifest.base_folder(model_dir), num_labels=len(labels), dtype=torch.float32
        )
        model = PeftModel.from_pretrained(base, model_dir)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    return model, tokenizer, labels


def predict_proba(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> Any:
    """Class probabilities of each text (a float tensor, one row per text), without gradients."""
    import torch

    rows = []
    with torch.no_grad():
        for enc in _encoded_batches(tokenizer, texts, max_length):
            rows.append(torch.softmax(model(**enc).logits.float(), dim=-1))
    return torch.cat(rows)


def predict_labels(
    model: Any, tokenizer: Any, labels: list[str], texts: list[str], max_length: int
) -> list[str]:
    """The predicted label of each text, in batches, without gradients."""
    probs = predict_proba(model, tokenizer, texts, max_length)
    return [labels[int(i)] for i in probs.argmax(-1)]


def accuracy(model_dir: Path, records: list[Record]) -> float:
    """The share of ``records`` a trained classifier labels correctly."""
    test = _classification(records, "records")
    model, tokenizer, labels = load_classifier(Path(model_dir))
    max_length = read_manifest(model_dir).max_length or MAX_LENGTH
    predicted = predict_labels(model, tokenizer, labels, [r.text for r in test], max_length)
    return sum(p == r.label for p, r in zip(predicted, test, strict=True)) / len(test)
