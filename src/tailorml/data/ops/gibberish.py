"""The ``gibberish`` filter: keyboard mash and symbol lines in short records.

Two measures, each a share of the record and each switchable (``None``):

- ``symbol_ratio``: the share of the non-space characters that are neither
  letters nor digits of any script, counted after a run of one character
  is collapsed to one ("好！！！！！！" counts as "好！"), so an emphatic
  review stays while "！！！！！！", "#$%^&*()" and "～～～～" go.
- ``mash_ratio``: the share of the record's letters and digits that sit in
  keyboard-mash tokens. Mash is looked for in ASCII tokens only, where a
  keyboard layout makes it: a token is mash when most of its letters run
  along a keyboard row ("asdfgh", "qwerqwer", "poiuy"), when it has no
  vowel ("sdfkjh"; ``y`` counts as a vowel: "rhythm"), six consonants in a
  row, under 20 % vowels in ten letters or more ("strengths" has nine), or when its case or letters and digits
  alternate at random ("aSdFgH", "x7Yq2Lp9"). Chinese and Japanese
  characters count as letters but are never mash, so a line of CJK text
  is kept however it reads, and a Chinese review holding one odd
  identifier keeps its low share. Acronyms in capitals (HTTP, NSFW) are
  not mash.

Both are a few regular-expression passes and a loop over the ASCII tokens,
about 3-10 us for a one-line review.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import BaseModel, Field

from tailorml.data.core import PARAMS_CONFIG, Document, Filter, Verdict
from tailorml.registry import register

_ALNUM_RE = re.compile(r"[^\W_]")
_SYMBOL_RE = re.compile(r"[^\w\s]|_")
_RUN_RE = re.compile(r"(.)\1+", re.DOTALL)
_ASCII_TOKEN_RE = re.compile(r"[A-Za-z0-9]+")
_VOWELS = frozenset("aeiouy")
_CONSONANT_RUN_RE = re.compile(r"[b-df-hj-np-tv-xz]{6,}")
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEY_AT = {c: (row, col) for row, keys in enumerate(_ROWS) for col, c in enumerate(keys)}
# Plain words never reach the slow checks: tokens this short are not judged.
MIN_TOKEN = 4


def row_run_share(word: str) -> float:
    """The share of a lower-case word's letters in runs of 3+ neighbouring keys along one row.

    A run keeps its direction: "asdf" and "poiu" are runs, "were" is a run
    of three ("wer") and a stray letter, so it scores 0.75.
    """
    covered = 0
    run = 1
    step = 0
    for prev, cur in zip(word, word[1:], strict=False):
        a, b = _KEY_AT.get(prev), _KEY_AT.get(cur)
        move = b[1] - a[1] if a and b and a[0] == b[0] else 0
        if move in (1, -1) and (run == 1 or move == step):
            run += 1
            step = move
            continue
        if run >= 3:
            covered += run
        run, step = 1, 0
        if move in (1, -1):  # this pair starts a new run in the other direction
            run, step = 2, move
    if run >= 3:
        covered += run
    # A turning letter ends one run and starts the next: count it once.
    return min(covered, len(word)) / len(word)


def is_mash(token: str) -> bool:
    """Whether an ASCII token looks typed at random on a keyboard (see the module docstring)."""
    if len(token) < MIN_TOKEN:
        return False
    letters = [c for c in token if c.isalpha()]
    digits = len(token) - len(letters)
    if digits and letters:
        # Letters and digits alternating many times: "a8f7g6", "x7Yq2Lp9" (not "mp3", "T480s").
        kinds = [c.isdigit() for c in token]
        if sum(a != b for a, b in zip(kinds, kinds[1:], strict=False)) >= 4:
            return True
    if len(letters) < MIN_TOKEN:
        return False
    word = "".join(letters)
    if word.isupper():
        return False  # an acronym or a shouted word, not mash
    cases = [c.isupper() for c in word]
    if len(word) >= 6 and sum(a != b for a, b in zip(cases, cases[1:], strict=False)) >= 4:
        return True  # "aSdFgH" (not "iPhone", "McDonald", "YouTube", "LaTeX")
    lower = word.lower()
    vowels = sum(c in _VOWELS for c in lower)
    if vowels == 0 and len(lower) >= 5:
        return True
    if _CONSONANT_RUN_RE.search(lower) or (len(lower) >= 10 and vowels < 0.2 * len(lower)):
        return True
    return row_run_share(lower) > 0.8


def symbol_ratio(text: str) -> float:
    """Non-letter, non-digit share of the non-space characters, one-character runs collapsed."""
    if _SYMBOL_RE.search(text) is None:
        return 0.0
    squeezed = "".join(_RUN_RE.sub(r"\1", text).split())
    if not squeezed:
        return 0.0
    return len(_SYMBOL_RE.findall(squeezed)) / len(squeezed)


def mash_ratio(text: str) -> float:
    """The share of the letters and digits (any script) that are in keyboard-mash tokens."""
    alnum = len(_ALNUM_RE.findall(text))
    if alnum == 0:
        return 0.0
    mash = sum(len(t) for t in _ASCII_TOKEN_RE.findall(text) if is_mash(t))
    return mash / alnum


class GibberishParams(BaseModel):
    model_config = PARAMS_CONFIG

    max_symbol_ratio: float | None = Field(0.5, ge=0, le=1)
    """Most of the non-space characters that may be symbols or punctuation (runs count once)."""
    max_mash_ratio: float | None = Field(0.5, ge=0, le=1)
    """Most of the letters and digits that may be in keyboard-mash tokens."""
    min_chars: int = Field(1, ge=1)
    """Records with fewer non-space characters than this are not judged."""


@register("data_op", "gibberish")
class GibberishFilter(Filter):
    """Drop keyboard mash ("asdfgh", "aSdF8g") and symbol lines ("！！！！", "#$%&"); CJK-aware."""

    name: ClassVar[str] = "gibberish"
    Params: ClassVar[type[BaseModel]] = GibberishParams

    def keep(self, doc: Document) -> Verdict:
        reason = self.check(doc.text)
        return Verdict.drop(reason) if reason else Verdict.ok()

    def check(self, text: str) -> str | None:
        """The first measure over its limit, with its value; None when the record passes."""
        p = self.params
        if len(text) - text.count(" ") < p.min_chars or not text.strip():
            return None
        if p.max_symbol_ratio is not None:
            value = symbol_ratio(text)
            if value > p.max_symbol_ratio:
                return f"gibberish: symbol_ratio {value:.2f} > {p.max_symbol_ratio}"
        if p.max_mash_ratio is not None:
            value = mash_ratio(text)
            if value > p.max_mash_ratio:
                return f"gibberish: mash_ratio {value:.2f} > {p.max_mash_ratio}"
        return None
