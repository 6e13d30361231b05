"""Phone numbers: a permissive pattern proposes, Google's libphonenumber (``phonenumbers``) decides.

A regular expression cannot know that ``+81 3-1234-5678`` is a Tokyo number
and ``2023 0517`` is not a number at all; libphonenumber holds every
region's numbering plan. Each candidate is parsed and scored:

- with a country code (``+`` or ``00``) and valid for it: 0.9;
- valid in the default region (a recipe parameter, ``CN`` unless set): 0.8,
  or 0.7 as a bare run of 9 or more digits;
- valid in one of the other listed regions (a foreign number written
  without its code): 0.6, or 0.5 as a bare run of 9 or more digits;
- a bare run of fewer than 9 digits, valid or not: 0.3-0.4, and any other
  number no numbering plan allocates: 0.3-0.4, so these need a context word
  ("电话", "phone", +0.2) to reach the 0.5 threshold. Test data and forms
  hold many such numbers next to a label.

Dates, year ranges, dotted quads and dotted version-like numbers are ruled
out before parsing. Parsing costs tens of microseconds, so results are
cached per candidate string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

# The regions tried for numbers written without a country code, after the
# default: the largest economies and the Chinese-speaking regions.
DEFAULT_REGIONS = (
    "CN", "US", "GB", "JP", "DE", "FR", "HK", "TW", "SG", "KR", "IN", "AU", "CA", "IT", "ES", "NL",
)  # fmt: skip

# An optional country code, an optional (0) or (area), digit groups separated
# by one space, dot or hyphen (or one run of digits), an optional extension.
# The look-behind names ASCII classes, not \w: in Python \w includes CJK, and
# "电话13812345678" must match.
PHONE_RE = re.compile(
    r"(?<![A-Za-z0-9_+.#@/-])(?<!\d:)(?<!\d,)"
    r"(?:(?:\+|00)\d{1,3}(?:[ .-]?\(0\))?[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?"
    r"(?:\d{1,5}(?:[ .-]\d{1,8}){1,6}|\d{6,15})"
    r"(?: ?(?:x|ext\.?|转|分机) ?\d{1,5})?"
    r"(?![A-Za-z0-9_]|[-.:/,]\d)"
)
_NOT_A_PHONE_RE = re.compile(
    r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./]\d\d?"  # 2021-03-04
    r"|^\d\d?[-./]\d\d?[-./](?:19|20)?\d\d$"  # 04/03/2021
    r"|^(?:1[89]|20)\d\d(?: ?[-/] ?| )(?:1[89]|20)\d\d$"  # 1997-2005, 2019 2020
    r"|^(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])$"  # 20230517
    r"|(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![.\d])"  # a dotted quad: an address or a version
    r"|\.\d(?:[. ]|$)"  # a one-digit dotted group: 10.0.19045.2965, 1.2.30.4.5, odds 2.5 1.62
)
# Two plain groups of digits ("370 3911") are as often a house number and a
# street number: such a candidate is dropped when a word (not a phone label)
# follows it or an address word precedes it.
_ADDRESS_AFTER_RE = re.compile(
    r" +(?!(?:office|fax|mobile|home|work|cell|tel|phone)\b)[^\W\d]", re.IGNORECASE
)
_ADDRESS_BEFORE_RE = re.compile(r"(?:apt|suite|unit|box|no|ste|room|#)\.? *$", re.IGNORECASE)
_EXTENSION_RE = re.compile(r" ?(?:x|ext\.?|转|分机) ?\d{1,5}$")


_phonenumbers: Any = None


def _lib() -> Any:
    # Imported on first use: its metadata costs about 40 ms, which an import of
    # the operator package (every operator registers on import) should not pay.
    global _phonenumbers
    if _phonenumbers is None:
        import phonenumbers

        _phonenumbers = phonenumbers
    return _phonenumbers


def supported_regions() -> frozenset[str]:
    """The region codes libphonenumber knows."""
    return frozenset(_lib().SUPPORTED_REGIONS)


@lru_cache(maxsize=65536)
def phone_confidence(raw: str, region: str, regions: tuple[str, ...]) -> float:
    """How surely ``raw`` (a candidate without its extension) is a phone number; 0 when not."""
    phonenumbers = _lib()
    bare = raw.isdigit()
    if raw.startswith(("+", "00")):
        try:
            num = phonenumbers.parse("+" + raw[2:] if raw.startswith("00") else raw, None)
        except phonenumbers.NumberParseException:
            return 0.0
        if phonenumbers.is_valid_number(num):
            return 0.9
        # "+" says phone; "00" may start an account number ("A/C No. 0063...").
        return 0.5 if raw[0] == "+" and phonenumbers.is_possible_number(num) else 0.0
    # A bare run shorter than 9 digits is a count, a code or a local number far
    # more often than a phone: only a context word makes it count.
    short = bare and len(raw) < 9
    for i, r in enumerate((region, *(x for x in regions if x != region))):
        try:
            num = phonenumbers.parse(raw, r)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            if short:
                return 0.4 if i == 0 else 0.3
            if i == 0:
                return 0.7 if bare else 0.8
            return 0.5 if bare else 0.6
    return 0.3 if bare else 0.4


def find_phone(
    text: str, lo: int, hi: int, region: str = "CN", regions: tuple[str, ...] = DEFAULT_REGIONS
) -> Iterator[tuple[int, int, float]]:
    """``(start, end, confidence)`` of phone-number candidates in ``text[lo:hi]``."""
    for m in PHONE_RE.finditer(text, lo, hi):
        raw = m.group()
        body = _EXTENSION_RE.sub("", raw)
        n = sum(c.isdigit() for c in body)
        if not 7 <= n <= 15 or _NOT_A_PHONE_RE.search(body):
            continue
        start, end = m.span()
        if (
            raw[0] not in "0("  # a trunk prefix or an area code: no house number starts so
            and raw.count(" ") == 1
            and raw.replace(" ", "").isdigit()
            and (
                _ADDRESS_AFTER_RE.match(text, end)
                or _ADDRESS_BEFORE_RE.search(text, max(0, start - 8), start)
            )
        ):
            continue
        confidence = phone_confidence(body, region, regions)
        if confidence:
            yield start, end, confidence
