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
  vowel ("sdfkjh", "dckc"; ``y`` counts as a vowel: "rhythm"; "http" is
  no mash), six consonants in a row, under 20 % vowels in ten letters or
  more ("strengths" has nine), many letter pairs English words seldom
  have ("aqyxjfzd"; lower-case tokens only, so names such as "XMLHack"
  pass), or when its case or its letters and digits alternate at random
  ("aSdFgH", "x7Yq2Lp9"; not "SpaceShipOne" or "iPhone12"). Chinese and
  Japanese characters count as letters but are never mash, so a line of
  CJK text is kept however it reads, and a Chinese review holding one odd
  identifier keeps its low share. Acronyms in capitals (HTTP, NSFW) are
  not mash.

Both are a few regular-expression passes and a loop over the ASCII tokens,
about 15-30 us for a one-line review (100 characters) on a 2-core CPU.
"""

from __future__ import annotations

import functools
import re
from typing import ClassVar

from pydantic import BaseModel, Field

from tailorml.data.core import PARAMS_CONFIG, Document, Filter, Verdict
from tailorml.registry import register

_ALNUM_RE = re.compile(r"[^\W_]+")
_SYMBOL_RE = re.compile(r"[^\w\s]|_")
_RUN_RE = re.compile(r"(.)\1+", re.DOTALL)
_ASCII_TOKEN_RE = re.compile(r"[A-Za-z0-9]+")
_VOWELS = frozenset("aeiouy")
# Words of four letters or more with no vowel that are not mash.
_VOWELLESS_WORDS = frozenset(["http", "https", "html", "xhtml", "nbsp", "hmmm", "shhh", "psst"])
_LOWER_RUN_RE = re.compile(r"[a-z]+")
_CONSONANT_RUN_RE = re.compile(r"[b-df-hj-np-tv-xz]{6,}")
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEY_AT = {c: (row, col) for row, keys in enumerate(_ROWS) for col, c in enumerate(keys)}
# Plain words never reach the slow checks: tokens this short are not judged.
MIN_TOKEN = 4
# Letter pairs English words are made of: the 300 most frequent pairs in the words of
# CPython 3.11's standard-library docstrings (a corpus no benchmark here uses), plus the
# pairs everyday English has and docstrings rarely do ("enjoy", "buy", "film", "walk",
# "just", "yes"). Random letters fall outside it about half the time, English words
# seldom (SST-2 dev: none of 5,613 words of six letters or more at 0.4).
_COMMON_PAIRS = frozenset(
    "aa ab ac ad af ag ah ai aj ak al am an ap ar as at au av aw ax ay az ba bb bc be bi "
    "bj bl bo br bs bu by ca cc ce ch ci ck cl co cr cs ct cu cy da dd de dg di dl dn do "
    "dr ds dt du dy ea eb ec ed ee ef eg eh ei ej ek el em en eo ep eq er es et ev ew ex "
    "ey ez fa fe ff fi fl fo fr ft fu fy ga ge gg gh gi gl gm gn go gr gs gt gu ha he hi "
    "hm hn ho hr hs ht hy ia ib ic id ie if ig ii ij ik il im in io ip iq ir is it iv ix "
    "iz ja je ji jo ju ka ke ki kl kn ko kr ks ku kw ky la lc ld le lf lg li lk ll lm lo "
    "lp ls lt lu lv ly ma mb me mi mm mn mo mp ms mu na nc nd ne nf ng ni nj nk nl nn no "
    "np ns nt nu nv ny oa ob oc od oe of og oh oi oj ok ol om on oo op or os ot ou ov ow "
    "ox oy pa pe ph pi pl po pp pr ps pt pu py qu ra rb rc rd re rf rg rh ri rk rl rm rn "
    "ro rp rr rs rt ru rv rw ry sa sc se sf sh si sk sl sm sn so sp sq ss st su sw sy ta "
    "tc te th ti tl to tp tr ts tt tu tw ty tz ua ub uc ud ue ug uh ui uj ul um un uo up "
    "ur us ut uy va ve vi vo wa wd we wh wi wk wl wn wo wr ws wy xa xc xe xi xp xt ya yb "
    "yc yd ye yi yl ym yn yo yp yr ys yt yw za ze zi zo zy zz".split()
)


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


@functools.lru_cache(maxsize=1 << 16)  # words repeat across records: most tokens are cached
def is_mash(token: str) -> bool:
    """Whether an ASCII token looks typed at random on a keyboard (see the module docstring)."""
    if len(token) < MIN_TOKEN:
        return False
    letters = [c for c in token if c.isalpha()]
    digits = len(token) - len(letters)
    if digits and letters:
        # Letters and digits alternating many times: "a8f7g6", "x7Yq2Lp9" (not "mp3", "T480s").
        kinds = [c.isdigit() for c in token]
        switches = sum(a != b for a, b in zip(kinds, kinds[1:], strict=False))
        # ... or fewer in a long token of both cases: "ULeA9LPJ" (not "iPhone12", one switch).
        both_cases = any(c.isupper() for c in letters) and any(c.islower() for c in letters)
        if switches >= 4 or (switches >= 2 and both_cases and len(token) >= 8):
            return True
    if len(letters) < MIN_TOKEN:
        return False
    word = "".join(letters)
    if word.isupper():
        return False  # an acronym or a shouted word, not mash
    cases = [c.isupper() for c in word]
    if len(word) >= 6 and sum(a != b for a, b in zip(cases, cases[1:], strict=False)) >= 4:
        # "aSdFgH", not words run together ("SpaceShipOne"), "iPhone", "YouTube", "LaTeX".
        if max(map(len, _LOWER_RUN_RE.findall(word)), default=0) <= 2:
            return True
    lower = word.lower()
    vowels = sum(c in _VOWELS for c in lower)
    if vowels == 0:
        return lower not in _VOWELLESS_WORDS
    if _CONSONANT_RUN_RE.search(lower) or (len(lower) >= 10 and vowels < 0.2 * len(lower)):
        return True
    if row_run_share(lower) > 0.8:
        return True
    if len(lower) < 6 or sum(cases[1:]) > 0:
        return False  # rare pairs in "XMLHack" or "McDonald" are names, not mash
    pairs = [a + b for a, b in zip(lower, lower[1:], strict=False)]
    return sum(p not in _COMMON_PAIRS for p in pairs) >= 0.4 * len(pairs)


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
    alnum = sum(map(len, _ALNUM_RE.findall(text)))
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
