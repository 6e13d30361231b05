"""Metrics over predictions: classification (with calibration) and generated text.

Pure functions of labels, predictions and texts, so the training loop (per
evaluation step), the evaluation report and the benchmarks compute a
figure the same way. scikit-learn scores classification, sacrebleu BLEU and
chrF (the field's reference implementations), Google's ``rouge-score``
ROUGE-L. Calibration (ECE) is a dozen lines with no library that does it on
plain arrays without pulling a framework, so it is written here.

Metrics a job can ask for at every evaluation step register as
``register("metric", name)``: a function of ``(targets, predicted,
labels)`` giving a float.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tailorml.errors import InvalidRequestError
from tailorml.registry import lookup, names, register

ECE_BINS = 10  # equal-width confidence bins, as Guo et al. (2017) report ECE
# CJK ideographs, kana and hangul: scripts written without spaces, scored per character.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def classification_metrics(
    targets: Sequence[int],
    predicted: Sequence[int],
    labels: Sequence[str],
    confidences: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, the confusion matrix and,
    with the predicted class's probability per item, ECE and the reliability bins.

    ``targets`` and ``predicted`` are indices into ``labels``; the confusion matrix's rows
    are the true classes and its columns the predicted ones.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if len(targets) != len(predicted) or not targets:
        raise InvalidRequestError("targets and predicted must be non-empty and of equal length.")
    index = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        targets, predicted, labels=index, zero_division=0
    )
    correct = [int(t == p) for t, p in zip(targets, predicted, strict=True)]
    out: dict[str, Any] = {
        "n": len(targets),
        "accuracy": sum(correct) / len(correct),
        "macro_f1": float(sum(f1) / len(f1)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(targets, predicted, labels=index).tolist(),
    }
    if confidences is not None:
        out.update(calibration(list(confidences), correct))
    return out


def calibration(confidences: list[float], correct: list[int], bins: int = ECE_BINS) -> dict:
    """Expected calibration error and the reliability diagram's bins.

    ECE is the support-weighted mean gap between each bin's mean confidence
    and its accuracy: 0 for a model whose 80 %-sure answers are right 80 %
    of the time.
    """
    edges = [i / bins for i in range(bins + 1)]
    rows, ece = [], 0.0
    for lo, hi in zip(edges, edges[1:], strict=False):
        members = [i for i, c in enumerate(confidences) if (lo < c <= hi) or (lo == 0 and c == 0)]
        if not members:
            rows.append({"low": lo, "high": hi, "count": 0, "confidence": None, "accuracy": None})
            continue
        conf = sum(confidences[i] for i in members) / len(members)
        acc = sum(correct[i] for i in members) / len(members)
        ece += len(members) / len(confidences) * abs(conf - acc)
        rows.append(
            {"low": lo, "high": hi, "count": len(members), "confidence": conf, "accuracy": acc}
        )
    return {"ece": ece, "reliability": rows}


class _ScriptTokenizer:
    """rouge-score's tokenizer drops every non-ASCII character, so Chinese text scores 0:
    words for spaced scripts and one token per character for unspaced ones."""

    _word = re.compile(r"\w+", re.UNICODE)

    def tokenize(self, text: str) -> list[str]:
        out: list[str] = []
        for word in self._word.findall(text.lower()):
            if _UNSPACED.search(word):
                out += [ch for ch in word]
            else:
                out.append(word)
        return out


def generation_metrics(references: Sequence[str], outputs: Sequence[str]) -> dict[str, float]:
    """Exact match, BLEU and chrF (sacrebleu, corpus level) and mean ROUGE-L F1 of outputs
    against their references (each 0-100 as the field reports them, exact match 0-1)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(references) != len(outputs) or not references:
        raise InvalidRequestError("references and outputs must be non-empty and of equal length.")
    refs, hyps = list(references), list(outputs)
    unspaced = any(_UNSPACED.search(r) for r in refs)
    # sacrebleu's "zh" tokenizer splits CJK characters, as BLEU is reported for Chinese.
    bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh" if unspaced else "13a")
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_ScriptTokenizer())
    rouge = [scorer.score(r, h)["rougeL"].fmeasure for r, h in zip(refs, hyps, strict=True)]
    return {
        "n": len(refs),
        "exact_match": sum(r.strip() == h.strip() for r, h in zip(refs, hyps, strict=True))
        / len(refs),
        "bleu": float(bleu.score),
        "chrf": float(chrf.score),
        "rouge_l": 100 * sum(rouge) / len(rouge),
    }


# Metrics a job can name for every evaluation step (``method.training.metrics``).


@register("metric", "accuracy")
def _accuracy(targets: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> float:
    return sum(t == p for t, p in zip(targets, predicted, strict=True)) / len(targets)


@register("metric", "macro_f1")
def _macro_f1(targets: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(
        f1_score(
            targets, predicted, labels=list(range(len(labels))), average="macro", zero_division=0
        )
    )


@register("metric", "weighted_f1")
def _weighted_f1(targets: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(
        f1_score(
            targets, predicted, labels=list(range(len(labels))), average="weighted", zero_division=0
        )
    )


@register("metric", "balanced_accuracy")
def _balanced(targets: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> float:
    """The mean recall over the classes that occur (robust to a skewed label mix)."""
    from sklearn.metrics import recall_score

    present = sorted(set(targets))
    return float(recall_score(targets, predicted, labels=present, average="macro", zero_division=0))


def check_metric_names(requested: Sequence[str]) -> None:
    """Refuse metric names nobody registered, listing the ones there are."""
    unknown = [m for m in requested if m not in names("metric")]
    if unknown:
        raise InvalidRequestError(
            f"Unknown metric(s) {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(names('metric'))}.",
            param="method.training.metrics",
        )


def step_metrics(
    requested: Sequence[str],
    targets: Sequence[int],
    predicted: Sequence[int],
    labels: Sequence[str],
) -> dict[str, float]:
    """``{"valid_<name>": value}`` for each requested metric."""
    check_metric_names(requested)
    return {f"valid_{m}": lookup("metric", m)(targets, predicted, labels) for m in requested}
