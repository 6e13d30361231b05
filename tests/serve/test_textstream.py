"""IncrementalDecoder and StopStringCutter on real text with the real SmolLM2 tokenizer."""

from __future__ import annotations

import json

import pytest

from tailorml.serve.textstream import IncrementalDecoder, StopStringCutter
from tailorml.serve.tokenizer import HFTokenizer

from .conftest import TinyModels, alpaca_instructions, dataset


@pytest.fixture(scope="module")
def tokenizer(tiny: TinyModels):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny.decoder)


def sharegpt_replies(n: int) -> list[str]:
    lines = dataset("chat_sharegpt", "sharegpt_zh_1K_format.jsonl").read_text(encoding="utf-8")
    replies = []
    for line in lines.splitlines()[:n]:
        turns = json.loads(line)["conversations"]
        replies.append(next(t["value"] for t in turns if t["from"] == "gpt"))
    return replies


def stream_text(tokenizer, ids: list[int]) -> list[str]:
    decoder = IncrementalDecoder(HFTokenizer(tokenizer))
    pieces = [decoder.push(i) for i in ids]
    return pieces + [decoder.flush()]


def test_pieces_join_to_the_whole_for_chinese_russian_and_english(tokenizer) -> None:
    # Chinese and Cyrillic characters span several byte-level tokens: a
    # token-by-token decode would emit U+FFFD halves.
    texts = sharegpt_replies(5) + alpaca_instructions(5)
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
    text = alpaca_instructions(1)[0]  # "Are the two sentences below grammatically correct? ..."
    stop = "grammatically"
    cutter = StopStringCutter([stop, "never appears"])
    assert feed(cutter, text, size) == text[: text.index(stop)]
    assert cutter.stopped


@pytest.mark.parametrize("size", [1, 4])
def test_held_back_prefix_is_released_when_no_stop_follows(size: int) -> None:
    text = alpaca_instructions(1)[0]
    cutter = StopStringCutter(["sentences!"])  # "sentences" occurs, "sentences!" does not
    pieces = []
    for i in range(0, len(text), size):
        piece = cutter.push(text[i : i + size])
        pieces.append(piece)
        assert text.startswith("".join(pieces))
    assert "".join(pieces) + cutter.flush() == text
    assert not cutter.stopped


def test_no_partial_stop_text_is_ever_shown() -> None:
    lines = dataset("instruct_alpaca_en", "alpaca_5000.jsonl").read_text(encoding="utf-8")
    text = json.loads(lines.splitlines()[3])["input"]  # "Dear Bob,\n\nI am writing to remind..."
    cutter = StopStringCutter(["\n\nI am"])
    shown = ""
    for ch in text:
        shown += cutter.push(ch)
        # the visible text never ends with the start of the stop string
        assert not shown.endswith("\n")
        if cutter.stopped:
            break
    assert shown == "Dear Bob,"
