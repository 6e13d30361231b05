r"""The patterns and checksums that recognise each kind of personal data and secret.

Each finder ``find_<type>(text, lo, hi)`` yields ``(start, end, confidence)``
for what it finds in ``text[lo:hi]`` (the patterns' look-behinds still see
the text before ``lo``). A pattern proposes, a validity rule disposes: Luhn
and the issuer's lengths for card numbers, ISO 7064 MOD 11-2 and a real
birth date for Chinese resident IDs, ISO 13616 mod-97 for IBANs, SSA rules
for US SSNs, octet ranges for IPv4, the stdlib ``ipaddress`` parser for
IPv6 and Shannon entropy for secrets assigned to ``key=``-like names; what
fails its check is not reported at all. These rules are short and fixed by
the standards, so they are written here rather than pulled from a library
per format (phones, which need every region's numbering plan, use one:
``pii_phone``).

Boundaries are ASCII character classes, never ``\b`` or ``\w`` in Unicode
mode: Python counts CJK characters as word characters, so in
"投诉信发到name@example.com了" or "key是sk-..." a ``\b`` pattern sees no
boundary and either misses the address or swallows the Chinese around it.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterator

Spans = Iterator[tuple[int, int, float]]

EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9_%+-][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9-])"
)
URL_CREDENTIALS_RE = re.compile(
    r"(?<![A-Za-z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*://([^\s:/@]+:[^\s/@]+)@"
)
# A provider key may be glued to the word that names it ("tokenghp_...",
# "keyAKIA..."), as mixed Chinese/English is often written; otherwise no
# ASCII letter or digit may touch its start ("task-management" is no "sk-" key).
_KEY_START = r"(?:(?<![A-Za-z0-9_-])|(?<=key)|(?<=token)|(?<=secret)|(?<=KEY)|(?<=TOKEN))"
_KEY_END = r"(?![A-Za-z0-9_-])"
# Provider key formats, each with a literal that must occur for it to be tried.
SECRET_RES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (
        ("AKIA", "ASIA", "AGPA", "AIDA", "AROA"),
        re.compile(_KEY_START + r"(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}" + _KEY_END),
    ),
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(_KEY_START + r"gh[pousr]_[A-Za-z0-9]{36}" + _KEY_END),
    ),
    (("github_pat_",), re.compile(_KEY_START + r"github_pat_[A-Za-z0-9_]{82}" + _KEY_END)),
    (
        ("sk-",),
        re.compile(_KEY_START + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    ),  # OpenAI
    (("xox",), re.compile(_KEY_START + r"xox[abposr]-[A-Za-z0-9-]{10,}")),  # Slack
    (("AIza",), re.compile(_KEY_START + r"AIza[0-9A-Za-z_-]{35}" + _KEY_END)),  # Google
    (("_live_",), re.compile(_KEY_START + r"(?:sk|rk)_live_[0-9a-zA-Z]{20,}" + _KEY_END)),  # Stripe
    (
        ("PRIVATE KEY",),
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----"),
    ),
)
_SECRET_ANCHORS = tuple(a for anchors, _ in SECRET_RES for a in anchors)
# Cheap pre-checks before the assignment pattern runs; the Chinese names
# (密钥 秘钥 令牌 口令 密码) all hold 密, 秘 or 令, one scan each.
SECRET_NAMES = ("key", "secret", "token", "passw", "pwd", "auth", "密", "秘钥", "令")
# Matched on lowercased text (case-insensitive alternations scan 4x slower).
# An English name needs ``=``, ``:`` or 是/为 before the value; a Chinese one
# may be glued to it ("密钥3f9a..."). re.ASCII keeps \w from eating the CJK.
_ASSIGNED_SECRET_RE = re.compile(
    r"(?:(?:api[_-]?key|secret|token|passw(?:or)?d|pwd|access[_-]?key|auth)[\w-]*"
    r"""["']?\s*(?:[:=：]|是|为)|(?:密钥|秘钥|令牌|口令|密码)(?:[:=：]|是|为)?)\s*["']?"""
    r"([a-z0-9_\-/+=.~]{16,})",
    re.ASCII,
)
_IBAN_RE = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?"
    r"(?![A-Za-z0-9])"
)
_CARD_RE = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){11,18}(?![\d-])")
_CN_ID_RE = re.compile(
    r"(?<!\d)[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
    r"(?![\dA-Za-z])"
)
_SSN_RE = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
# Not after a digit or dot (a longer dotted number) nor after "v" (v5.11.69.107).
_IPV4_RE = re.compile(
    r"(?<![\d.vV_])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?!\d|\.\d)"
)
_IPV6_RE = re.compile(
    r"(?<![A-Za-z0-9_:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![A-Za-z0-9_:])"
)


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


def birth_date_ok(number: str) -> bool:
    """Characters 7-14 of a resident ID are a real date (GB 11643)."""
    try:
        datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return True


def card_brand_ok(digits: str) -> bool:
    """The number has a length its issuer uses (ISO/IEC 7812 prefixes as the networks publish them).

    An 18-digit number starting with 4 is no Visa card, however its Luhn sum falls.
    """
    n, p2, p4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # American Express
    # JCB's published range is 3528-3589; the rest of 35 is issued as test numbers and by
    # generators (Faker), so all of 35 is taken.
    if p2 in (62, 65, 35) or p4 == 6011 or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19  # UnionPay, Discover, JCB
    if p2 in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19  # Diners Club
    if p2 in (50, 56, 57, 58) or digits[0] == "6":
        return 12 <= n <= 19  # Maestro
    return p4 in (1800, 2131) and n in (15, 16)  # old JCB


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
# Base confidences: a checksum or a provider format is strong evidence; an
# address shape alone, or a 3-2-4 digit pattern, is weaker.
CONFIDENCE = {
    "EMAIL": 0.95,
    "URL_CREDENTIALS": 0.95,
    "API_KEY": 0.95,
    "ASSIGNED_SECRET": 0.7,
    "IBAN": 0.95,
    "CREDIT_CARD": 0.8,
    "CN_ID": 0.9,
    "US_SSN": 0.7,
    "IPV4": 0.7,
    "IPV6": 0.85,
}


def find_email(text: str, lo: int, hi: int) -> Spans:
    for m in EMAIL_RE.finditer(text, lo, hi):
        # "https://user:pass@host" holds credentials, not an address "pass@host".
        if not _URL_USER_BEFORE_RE.search(text, max(0, m.start() - 256), m.start()):
            yield m.start(), m.end(), CONFIDENCE["EMAIL"]


def find_url_credentials(text: str, lo: int, hi: int) -> Spans:
    for m in URL_CREDENTIALS_RE.finditer(text, lo, hi):
        yield m.start(1), m.end(1), CONFIDENCE["URL_CREDENTIALS"]


def find_api_key(text: str, lo: int, hi: int) -> Spans:
    if any(map(text.__contains__, _SECRET_ANCHORS)):
        for anchors, pattern in SECRET_RES:
            if any(map(text.__contains__, anchors)):
                for m in pattern.finditer(text, lo, hi):
                    yield m.start(), m.end(), CONFIDENCE["API_KEY"]
    low = text.lower()
    if len(low) != len(text) or not any(map(low.__contains__, SECRET_NAMES)):
        return  # (lower() changed the length only for rare letters like 'İ': skip, not misalign)
    for m in _ASSIGNED_SECRET_RE.finditer(low, lo, hi):
        start, end = m.span(1)
        value = text[start:end]
        if shannon_entropy(value) >= 3.5 and any(c.isdigit() for c in value):
            yield start, end, CONFIDENCE["ASSIGNED_SECRET"]


def find_iban(text: str, lo: int, hi: int) -> Spans:
    for m in _IBAN_RE.finditer(text, lo, hi):
        raw = m.group()
        # The optional last group may have eaten the next word ("... 19 and"): retry without it.
        while raw:
            if iban_ok(raw):
                yield m.start(), m.start() + len(raw), CONFIDENCE["IBAN"]
                break
            raw = raw.rsplit(" ", 1)[0] if " " in raw else ""


def _id_shaped(digits: str) -> bool:
    """18 digits whose 7th-14th are a birth date: a resident ID (maybe mistyped), not a card."""
    return len(digits) == 18 and digits[6:8] in ("19", "20") and birth_date_ok(digits)


def find_credit_card(text: str, lo: int, hi: int) -> Spans:
    for m in _CARD_RE.finditer(text, lo, hi):
        digits = m.group().replace(" ", "").replace("-", "")
        if card_brand_ok(digits) and luhn_ok(digits) and not _id_shaped(digits):
            yield m.start(), m.end(), CONFIDENCE["CREDIT_CARD"]


def find_cn_id(text: str, lo: int, hi: int) -> Spans:
    for m in _CN_ID_RE.finditer(text, lo, hi):
        if cn_id_ok(m.group()) and birth_date_ok(m.group()):
            yield m.start(), m.end(), CONFIDENCE["CN_ID"]


def find_us_ssn(text: str, lo: int, hi: int) -> Spans:
    for m in _SSN_RE.finditer(text, lo, hi):
        area, group, serial = m.groups()
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            yield m.start(), m.end(), CONFIDENCE["US_SSN"]


def find_ipv4(text: str, lo: int, hi: int) -> Spans:
    # The pattern admits only octets 0-255 and no longer dotted number; what
    # follows a version word is lowered by the context rules.
    for m in _IPV4_RE.finditer(text, lo, hi):
        yield m.start(), m.end(), CONFIDENCE["IPV4"]


def find_ipv6(text: str, lo: int, hi: int) -> Spans:
    for m in _IPV6_RE.finditer(text, lo, hi):
        raw = m.group()
        if raw.count(":") < 2 or len(raw) < 6:
            continue
        try:
            ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        yield m.start(), m.end(), CONFIDENCE["IPV6"]
