"""language on real Chinese (ChnSentiCorp) and English (SST-2) text, offline."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tailorml.data.core import Document
from tailorml.data.ops.langid import LanguageFilter, identify_language


def test_chinese_and_english_are_told_apart(zh_reviews: list[str], sst2: list[str]) -> None:
    f = LanguageFilter(languages=["zh", "en"], min_score=0.5)
    zh = [Document(f"zh:{i}", {"text": t}) for i, t in enumerate(zh_reviews[:300])]
    en = [Document(f"en:{i}", {"text": t}) for i, t in enumerate(sst2[:300])]
    zh_kept = sum(f.keep(d).keep for d in zh)
    en_kept = sum(f.keep(d).keep for d in en)
    # Measured on all of dev: 1,198 of 1,200 reviews kept as zh; 842 of 872 sentences as en
    # (the rest are short phrases such as "good" whose best guess is unsure).
    assert zh_kept >= 295 and en_kept >= 280
    assert sum(d.meta["lang"] == "zh" for d in zh) >= 298
    assert sum(d.meta["lang"] == "en" for d in en) >= 295
    assert all(0.0 <= d.meta["lang_score"] <= 1.0 for d in zh + en)


def test_languages_outside_the_list_are_dropped_with_the_reason(zh_reviews: list[str]) -> None:
    f = LanguageFilter(languages=["en"])
    v = f.keep(doc := Document("zh:0", {"text": zh_reviews[0]}))
    assert not v.keep and v.reason.startswith("language: zh (") and "not in ['en']" in v.reason
    assert doc.meta["lang"] == "zh"


def test_min_score_and_annotate_only(sst2: list[str]) -> None:
    short = min(sst2, key=len)  # a two-word phrase
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
