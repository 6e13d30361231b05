"""Metrics over predictions: each figure against a hand count or a property that pins it."""

from __future__ import annotations

import pytest

from tailorml.errors import InvalidRequestError
from tailorml.eval.metrics import (
    calibration,
    check_metric_names,
    classification_metrics,
    generation_metrics,
    step_metrics,
)


def test_classification_figures_match_a_hand_count() -> None:
    labels = ["ham", "spam", "other"]
    targets = [0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 1, 1, 0, 2]
    m = classification_metrics(targets, predicted, labels)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # ham: precision 2/3, recall 2/3; spam: 1/2, 1/2; other: 1, 1.
    assert m["per_class"]["ham"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["spam"]["recall"] == pytest.approx(1 / 2)
    assert m["per_class"]["other"]["support"] == 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]  # rows: true class
    assert "ece" not in m  # no confidences given


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy() -> None:
    # Four answers at 0.9 confidence, three right: gap 0.15 over the whole set.
    found = calibration([0.9, 0.9, 0.9, 0.9], [1, 1, 1, 0])
    assert found["ece"] == pytest.approx(0.15)
    filled = [b for b in found["reliability"] if b["count"]]
    assert len(filled) == 1 and filled[0]["accuracy"] == pytest.approx(0.75)
    assert calibration([0.6, 0.6, 0.95, 0.95], [1, 0, 1, 1])["ece"] == pytest.approx(
        0.5 * 0.1 + 0.5 * 0.05
    )


def test_generation_figures_are_100_for_identical_text_and_lower_otherwise() -> None:
    refs = ["The invoice was sent on Monday.", "Please reset my password."]
    same = generation_metrics(refs, refs)
    assert same["exact_match"] == 1.0
    assert same["bleu"] == pytest.approx(100.0)
    assert same["chrf"] == pytest.approx(100.0)
    assert same["rouge_l"] == pytest.approx(100.0)
    other = generation_metrics(refs, ["The invoice went out on Monday.", "No idea."])
    assert other["exact_match"] == 0.0
    assert 0 < other["rouge_l"] < 100 and 0 < other["chrf"] < 100


def test_rouge_scores_chinese_by_character() -> None:
    """rouge-score's own tokenizer keeps only ASCII, which scores every Chinese answer 0."""
    found = generation_metrics(["酒店的服务很好"], ["酒店服务很好"])
    assert 70 < found["rouge_l"] < 100
    assert found["bleu"] > 0


def test_step_metrics_by_name_and_unknown_names_refused() -> None:
    got = step_metrics(["macro_f1", "accuracy"], [0, 1, 1], [0, 1, 0], ["a", "b"])
    assert got["valid_accuracy"] == pytest.approx(2 / 3)
    assert got["valid_macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    with pytest.raises(InvalidRequestError, match="'f2'.*choose from.*macro_f1"):
        check_metric_names(["f2"])
