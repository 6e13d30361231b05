"""Finding personal data and secrets in text: ``detect_pii`` and the ``Span`` it returns.

Speed is the design constraint: Python's ``re`` scans 10-20 MB/s per pattern
and most text holds no PII, so no pattern scans a whole text when a cheaper
scan can rule it out. One fast scan (about 140 MB/s) finds the runs of
digits; the number-shaped patterns (cards, IDs, IBANs, SSNs, IPv4, phones)
run only in windows around them. E-mail patterns run only around an ``@``,
IPv6 only around ``hex:hex``, provider keys only when their literal prefix
occurs. Phones are validated with libphonenumber (``pii_phone``).

Every finding has a confidence: the finder's (a checksum or a valid phone
number scores higher than a bare shape), moved up or down by context words
in Chinese and English (``pii_context``). Findings under ``min_confidence``
are dropped; the rest are resolved by a fixed priority (an e-mail beats the
phone number inside it), then by length.

Presidio was considered: it runs patterns of the same kind behind a spaCy
pipeline applied to every text, and its default engine downloads a spaCy
model at run time (shared/BASELINES.md), which this platform cannot do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from tailorml.data.ops import pii_patterns as pat
from tailorml.data.ops.pii_context import adjust
from tailorml.data.ops.pii_phone import DEFAULT_REGIONS, find_phone

# Every type detected here, in priority order for overlaps.
ENTITY_TYPES = (
    "URL_CREDENTIALS",
    "EMAIL",
    "API_KEY",
    "IBAN",
    "CN_ID",  # before cards: an ID's date and check character are the stronger evidence
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "PHONE",
)
_PRIORITY = {t: i for i, t in enumerate(ENTITY_TYPES)}
# Number-shaped types: finder, and the fewest digits an entity of the type holds
# (a window with fewer digits is not searched for it).
_NUMERIC: dict[str, tuple[Callable[[str, int, int], pat.Spans], int]] = {
    "IBAN": (pat.find_iban, 6),
    "CREDIT_CARD": (pat.find_credit_card, 12),
    "CN_ID": (pat.find_cn_id, 17),
    "US_SSN": (pat.find_us_ssn, 9),
    "IP_ADDRESS": (pat.find_ipv4, 4),
    "PHONE": (find_phone, 7),
}
MIN_CONFIDENCE = 0.5
_DIGIT_RUN_RE = re.compile(r"\d[\d .()+/-]*")
_HEX = frozenset("0123456789abcdefABCDEF:")
# How far around an anchor an entity may reach: an IBAN is at most 42
# characters with spaces; an e-mail's local part rarely exceeds 64.
_NUMERIC_MARGIN = 42
_EMAIL_BEFORE, _EMAIL_AFTER = 64, 255


@dataclass(slots=True, frozen=True)
class Span:
    """One finding: ``text[start:end]`` is an entity of ``type``, with ``confidence`` in [0, 1]."""

    start: int
    end: int
    type: str
    text: str
    confidence: float = 1.0


def _merge(ranges: Iterable[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Clip ranges to ``[0, n]`` and merge the overlapping ones (input sorted by start)."""
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        lo, hi = max(0, lo), min(n, hi)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _numeric_windows(text: str) -> list[tuple[int, int, int]]:
    """``(lo, hi, digits)``: merged windows around runs of digits, with their digit count."""
    m = _NUMERIC_MARGIN
    out: list[tuple[int, int, int]] = []
    for run in _DIGIT_RUN_RE.finditer(text):
        lo, hi = run.start() - m, run.end() + m
        digits = sum(map(str.isdigit, run.group()))
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], hi, out[-1][2] + digits)
        else:
            out.append((max(0, lo), hi, digits))
    return out


def _char_windows(text: str, char: str, before: int, after: int) -> Iterator[tuple[int, int]]:
    i = text.find(char)
    while i >= 0:
        yield i - before, i + after
        i = text.find(char, i + 1)


def _ipv6_windows(text: str) -> list[tuple[int, int]]:
    # A colon between two hex digits or colons: "fe80::1", "2001:db8:". Times
    # ("10:30") pass this too; the parser rejects them.
    anchors = (
        (i - 40, i + 40)
        for i, _ in _char_windows(text, ":", 0, 0)
        if 0 < i < len(text) - 1 and text[i - 1] in _HEX and text[i + 1] in _HEX
    )
    return _merge(anchors, len(text))


def _candidates(
    text: str, wanted: frozenset[str], region: str, regions: tuple[str, ...]
) -> Iterator[tuple[int, int, str, float]]:
    n = len(text)
    if "@" in text:
        if "EMAIL" in wanted:
            for lo, hi in _merge(_char_windows(text, "@", _EMAIL_BEFORE, _EMAIL_AFTER), n):
                yield from ((s, e, "EMAIL", c) for s, e, c in pat.find_email(text, lo, hi))
        if "URL_CREDENTIALS" in wanted and "://" in text:
            found = pat.find_url_credentials(text, 0, n)
            yield from ((s, e, "URL_CREDENTIALS", c) for s, e, c in found)
    if "API_KEY" in wanted:
        yield from ((s, e, "API_KEY", c) for s, e, c in pat.find_api_key(text, 0, n))
    numeric = [(t, f, k) for t, (f, k) in _NUMERIC.items() if t in wanted]
    if numeric:
        phone = partial(find_phone, region=region, regions=regions)
        for lo, hi, digits in _numeric_windows(text):
            for etype, find, min_digits in numeric:
                if digits >= min_digits:
                    finder = phone if etype == "PHONE" else find
                    found = finder(text, lo, min(hi, n))
                    yield from ((s, e, etype, c) for s, e, c in found)
    if "IP_ADDRESS" in wanted and ":" in text:
        for lo, hi in _ipv6_windows(text):
            yield from ((s, e, "IP_ADDRESS", c) for s, e, c in pat.find_ipv6(text, lo, hi))


def detect_pii(
    text: str,
    entities: Iterable[str] | None = None,
    *,
    region: str = "CN",
    regions: tuple[str, ...] = DEFAULT_REGIONS,
    min_confidence: float = MIN_CONFIDENCE,
) -> list[Span]:
    """Every entity of the given types (default: all of ``ENTITY_TYPES``), non-overlapping, in order.

    ``region`` is the default region of phone numbers written without a
    country code; ``regions`` are the others tried for them. Types this
    module does not detect (``PERSON`` needs a tagger, see
    ``pii.PiiRedactor``) are ignored here.
    """
    wanted = frozenset(ENTITY_TYPES if entities is None else entities)
    found = []
    for start, end, etype, confidence in set(_candidates(text, wanted, region, regions)):
        confidence = adjust(text, start, end, etype, confidence)
        if confidence >= min_confidence:
            found.append((start, end, etype, confidence))
    if not found:
        return []
    found.sort(key=lambda f: (_PRIORITY[f[2]], f[0] - f[1], f[0]))
    taken: list[tuple[int, int, str, float]] = []
    for cand in found:
        start, end = cand[0], cand[1]
        if all(end <= t[0] or start >= t[1] for t in taken):
            taken.append(cand)
    taken.sort()
    return [Span(s, e, t, text[s:e], c) for s, e, t, c in taken]
