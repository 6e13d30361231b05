"""The patterns and checksums that recognise each kind of personal data and secret.

Each finder ``find_<type>(text, lo, hi)`` yields ``(start, end)`` spans found
in ``text[lo:hi]`` (the patterns' look-behinds still see the text before
``lo``). A pattern proposes, a validity rule disposes: Luhn for card
numbers, ISO 7064 MOD 11-2 for Chinese resident IDs, ISO 13616 mod-97 for
IBANs, SSA rules for US SSNs, the stdlib ``ipaddress`` parser for IPv6 and
Shannon entropy for secrets assigned to ``key=``-like names. These rules are
short and fixed by the standards, so they are written here rather than
pulled from a library per format.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterator

Spans = Iterator[tuple[int, int]]

EMAIL_RE = re.compile(r"[\w.%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b")
URL_CREDENTIALS_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://([^\s:/@]+:[^\s/@]+)@")
# Provider key formats, each with a literal that must occur for it to be tried.
SECRET_RES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (
        ("AKIA", "ASIA", "AGPA", "AIDA", "AROA"),
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
    ),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b")),
    (("github_pat_",), re.compile(r"\bgithub_pat_\w{82}\b")),
    (("sk-",), re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),  # OpenAI
    (("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),  # Slack
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),  # Google
    (("_live_",), re.compile(r"\b(?:sk|rk)_live_[0-9a-zA-Z]{20,}\b")),  # Stripe
    (
        ("PRIVATE KEY",),
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----"),
    ),
)
_SECRET_ANCHORS = tuple(a for anchors, _ in SECRET_RES for a in anchors)
SECRET_NAMES = ("key", "secret", "token", "passw", "pwd", "auth")
# Matched on lowercased text (case-insensitive alternations scan 4x slower).
_ASSIGNED_SECRET_RE = re.compile(
    r"(?:api[_-]?key|secret|token|passw(?:or)?d|pwd|access[_-]?key|auth)[\w-]*"
    r"""["']?\s*[:=]\s*["']?([a-z0-9_\-/+=.~]{16,})"""
)
_IBAN_RE = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?\b")
_CARD_RE = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){11,18}(?![\d-])")
_CN_ID_RE = re.compile(
    r"(?<!\d)[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
    r"(?![\dA-Za-z])"
)
_SSN_RE = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
_IPV4_RE = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?!\d|\.\d)"
)
_IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# Phone numbers: an optional +country code, an optional (0) or (area), then
# digit groups separated by one space, dot or hyphen, or one run of digits,
# and an optional extension. Digit count (7-15, E.164's limit), dates and
# year ranges are checked after.
_PHONE_RE = re.compile(
    r"(?<![\w+.:/-])(?<!\d,)(?:\+\d{1,3}[ .-]?)?(?:\(0\) ?)?(?:\(\d{1,4}\)[ .-]?)?"
    r"(?:\d{2,5}(?:[ .-]\d{2,8}){1,5}|\d{7,15})(?: ?(?:x|ext\.?) ?\d{1,5})?"
    r"(?!\w|[-.:/,]\d)"
)
_CN_MOBILE_RE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
_NOT_A_PHONE_RE = re.compile(
    r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./]\d\d?"  # 2021-03-04
    r"|^\d\d?[-./]\d\d?[-./](?:19|20)?\d\d$"  # 04/03/2021
    r"|^(?:1[89]|20)\d\d ?[-/] ?(?:1[89]|20)\d\d$"  # 1997-2005
)
# Two plain groups of digits ("370 3911") are as often a house number and a
# street number: such a candidate is dropped when a word (not a phone label)
# follows it or an address word precedes it.
_ADDRESS_AFTER_RE = re.compile(
    r" +(?!(?:office|fax|mobile|home|work|cell|tel|phone)\b)[^\W\d]", re.IGNORECASE
)
_ADDRESS_BEFORE_RE = re.compile(r"(?:apt|suite|unit|box|no|ste|room|#)\.? *$", re.IGNORECASE)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def cn_id_ok(number: str) -> bool:
    """ISO 7064 MOD 11-2 check character of an 18-character Chinese resident ID."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(number[:17], weights, strict=True))
    return "10X98765432"[total % 11] == number[17].upper()


def iban_ok(iban: str) -> bool:
    """ISO 13616 check digits: the rearranged number is 1 modulo 97."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s.isalnum():
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def shannon_entropy(s: str) -> float:
    """Bits per character of ``s`` by its own character frequencies."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


_URL_USER_BEFORE_RE = re.compile(r"://[^\s/@:]+:$")


def find_email(text: str, lo: int, hi: int) -> Spans:
    for m in EMAIL_RE.finditer(text, lo, hi):
        # "https://user:pass@host" holds credentials, not an address "pass@host".
        if not _URL_USER_BEFORE_RE.search(text, max(0, m.start() - 256), m.start()):
            yield m.span()


def find_url_credentials(text: str, lo: int, hi: int) -> Spans:
    for m in URL_CREDENTIALS_RE.finditer(text, lo, hi):
        yield m.span(1)


def find_api_key(text: str, lo: int, hi: int) -> Spans:
    if any(map(text.__contains__, _SECRET_ANCHORS)):
        for anchors, pattern in SECRET_RES:
            if any(map(text.__contains__, anchors)):
                for m in pattern.finditer(text, lo, hi):
                    yield m.span()
    low = text.lower()
    if len(low) != len(text) or not any(map(low.__contains__, SECRET_NAMES)):
        return  # (lower() changed the length only for rare letters like 'İ': skip, not misalign)
    for m in _ASSIGNED_SECRET_RE.finditer(low, lo, hi):
        start, end = m.span(1)
        value = text[start:end]
        if shannon_entropy(value) >= 3.5 and any(c.isdigit() for c in value):
            yield start, end


def find_iban(text: str, lo: int, hi: int) -> Spans:
    for m in _IBAN_RE.finditer(text, lo, hi):
        raw = m.group()
        # The optional last group may have eaten the next word ("... 19 and"): retry without it.
        while raw:
            if iban_ok(raw):
                yield m.start(), m.start() + len(raw)
                break
            raw = raw.rsplit(" ", 1)[0] if " " in raw else ""


def find_credit_card(text: str, lo: int, hi: int) -> Spans:
    for m in _CARD_RE.finditer(text, lo, hi):
        digits = m.group().replace(" ", "").replace("-", "")
        # Issuer prefixes (Visa 4, Mastercard 2/5, Amex/Diners/JCB 3, Discover/UnionPay/
        # Maestro 6, old JCB 1800/2131) rule out many Luhn-valid order numbers.
        if (digits[0] in "23456" or digits.startswith("1800")) and luhn_ok(digits):
            yield m.span()


def find_cn_id(text: str, lo: int, hi: int) -> Spans:
    for m in _CN_ID_RE.finditer(text, lo, hi):
        if cn_id_ok(m.group()):
            yield m.span()


def find_us_ssn(text: str, lo: int, hi: int) -> Spans:
    for m in _SSN_RE.finditer(text, lo, hi):
        area, group, serial = m.groups()
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            yield m.span()


def find_ipv4(text: str, lo: int, hi: int) -> Spans:
    for m in _IPV4_RE.finditer(text, lo, hi):
        yield m.span()


def find_ipv6(text: str, lo: int, hi: int) -> Spans:
    for m in _IPV6_RE.finditer(text, lo, hi):
        raw = m.group()
        if raw.count(":") < 2 or len(raw) < 6:
            continue
        try:
            ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        yield m.span()


def find_phone(text: str, lo: int, hi: int) -> Spans:
    for m in _CN_MOBILE_RE.finditer(text, lo, hi):
        yield m.span()
    for m in _PHONE_RE.finditer(text, lo, hi):
        raw = m.group()
        body = raw.split("x")[0].split("ext")[0]
        n = sum(c.isdigit() for c in body)
        if not 7 <= n <= 15 or _NOT_A_PHONE_RE.search(raw):
            continue
        # A bare run of digits is a phone number only when long enough to be one;
        # shorter runs are counts, years and codes far more often.
        if raw.isdigit() and not 9 <= n <= 12:
            continue
        start, end = m.span()
        if (
            raw.count(" ") == 1
            and raw.replace(" ", "").isdigit()
            and (
                _ADDRESS_AFTER_RE.match(text, end)
                or _ADDRESS_BEFORE_RE.search(text, max(0, start - 8), start)
            )
        ):
            continue
        yield start, end
