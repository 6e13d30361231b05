"""IncrementalDecoder and StopStringCutter on real text with the real SmolLM2 tokenizer."""

from __future__ import annotations

import pytest

from tailorml.serve.textstream import IncrementalDecoder, StopStringCutter
from tailorml.serve.tokenizer import HFTokenizer
from tests import fixture_data

from .conftest import TinyModels, questions, sentences


@pytest.fixture(scope="module")
def tokenizer(tiny: TinyModels):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny.decoder)


def replies(lang: str, n: int) -> list[str]:
    """The first answer of the first ``n`` chatterbot conversations of a language."""
    return [conv[1] for conv in fixture_data.conversations(lang) if len(conv) > 1][:n]


def stream_text(tokenizer, ids: list[int]) -> list[str]:
    decoder = IncrementalDecoder(HFTokenizer(tokenizer))
    pieces = [decoder.push(i) for i in ids]
    return pieces + [decoder.flush()]


def test_pieces_join_to_the_whole_for_chinese_russian_and_english(tokenizer) -> None:
    # Chinese and Cyrillic characters span several byte-level tokens: a
    # token-by-token decode would emit U+FFFD halves.
    texts = replies("chinese", 5) + replies("russian", 5) + questions(5)
    assert any(ord(c) > 0x4E00 for c in texts[0]) and any("а" <= c <= "я" for c in texts[5])
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        pieces = stream_text(tokenizer, ids)
        assert "".join(pieces) == tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        assert "".join(pieces) == text
        assert not any("\ufffd" in p for p in pieces)


def test_special_tokens_are_skipped(tokenizer) -> None:
    ids = tokenizer("<|im_start|>assistant\nHello<|im_end|>", add_special_tokens=False)["input_ids"]
    assert "".join(stream_text(tokenizer, ids)) == "assistant\nHello"


def feed(cutter: StopStringCutter, text: str, size: int) -> str:
    out = ""
    for i in range(0, len(text), size):
        out += cutter.push(text[i : i + size])
        if cutter.stopped:
            return out
    return out + cutter.flush()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_stop_string_cuts_before_it_whatever_the_piece_size(size: int) -> None:
    text = sentences(2)[1]  # "Artificial Intelligence is the branch of engineering and science ..."
    stop = "science"
    cutter = StopStringCutter([stop, "never appears"])
    assert feed(cutter, text, size) == text[: text.index(stop)]
    assert cutter.stopped


@pytest.mark.parametrize("size", [1, 4])
def test_held_back_prefix_is_released_when_no_stop_follows(size: int) -> None:
    text = sentences(2)[1]
    cutter = StopStringCutter(["machines!"])  # "machines" occurs, "machines!" does not
    pieces = []
    for i in range(0, len(text), size):
        piece = cutter.push(text[i : i + size])
        pieces.append(piece)
        assert text.startswith("".join(pieces))
    assert "".join(pieces) + cutter.flush() == text
    assert not cutter.stopped


def test_no_partial_stop_text_is_ever_shown() -> None:
    # A C4 page's first two paragraphs, the stop string a newline and the second one's start.
    first, second = fixture_data.c4_docs()[0].split("\n")[:2]
    text = f"{first}\n{second}"
    cutter = StopStringCutter(["\n" + second[:6]])
    shown = ""
    for ch in text:
        shown += cutter.push(ch)
        # the visible text never ends with the start of the stop string
        assert not shown.endswith("\n")
        if cutter.stopped:
            break
    assert shown == first
