"""Text normalization: the ``normalize`` mapper and the canonical text forms other ops share.

``normalize`` repairs what scraping and careless exports do to text, each step
switchable: mojibake (ftfy), HTML entities, Unicode NFKC, control characters
and whitespace. The order matters: mojibake is repaired first, because its
damage often *is* C1 control characters (``â\\x80\\x99`` for ``’``) that the
control-character step would otherwise delete beyond repair.

The helpers below (``canonical_text``, ``is_cjk``, ``count_words``) are the one
definition of "the same text" and "a word" that exact dedup, near dedup,
the length and quality filters agree on.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any, ClassVar

import regex
from pydantic import BaseModel

from tailorml.data.core import PARAMS_CONFIG, Document, Mapper
from tailorml.registry import register

# Cc (exactly U+0000-U+001F and U+007F-U+009F) except tab, newline and carriage
# return, plus invisible format characters that only get in the way (BOM,
# zero-width space, soft hyphen). Zero-width joiners are kept: emoji
# sequences and some scripts need them.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\u200b\u00ad]")
# Whitespace other than a lone space or a newline: runs of two or more, or one
# tab / no-break space / ideographic space... (a lone space needs no work).
_HSPACE_RE = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
_SPACE_AROUND_NL_RE = re.compile(r" \n ?|\n ")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
# Characters without which ftfy has nothing to repair: UTF-8 read as Latin-1 or
# Windows-1252 always shows a lead byte as one of U+00C2-U+00F4; C1 controls,
# surrogates and terminal escapes are ftfy's other targets. Mojibake through
# rarer codecs (MacRoman, cp437) that shows none of these is left alone: the
# check spares most non-English text a slow pass that would change nothing.
_MOJIBAKE_HINT_RE = re.compile("[\u00c2-\u00f4\x80-\x9f\ud800-\udfff\x1b\ufffd]")
_ANY_SPACE_RE = re.compile(r"\s+")
_PUNCT_RE = regex.compile(r"[\p{P}\p{S}]+")
# Scripts written without spaces between words, where a character is the unit:
# every code point of Unicode's Han, Hiragana and Katakana scripts (what
# `regex`'s [\p{Han}\p{Hiragana}\p{Katakana}] matches; a test checks them code
# point by code point), spelled out for stdlib `re`, which has no \p{...} but
# scans several times faster.
_CJK_CLASS = (
    r"\u2e80-\u2e99\u2e9b-\u2ef3\u2f00-\u2fd5\u3005\u3007\u3021-\u3029\u3038-\u303b"
    r"\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fd-\u30ff\u31f0-\u31ff\u32d0-\u32fe"
    r"\u3300-\u3357\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufa6d\ufa70-\ufad9\uff66-\uff6f"
    r"\uff71-\uff9d\U00016fe2-\U00016fe3\U00016ff0-\U00016ff6\U0001aff0-\U0001aff3"
    r"\U0001aff5-\U0001affb\U0001affd-\U0001affe\U0001b000-\U0001b128\U0001b132"
    r"\U0001b150-\U0001b152\U0001b155\U0001b164-\U0001b168\U0001f200\U00020000-\U0002a6df"
    r"\U0002a700-\U0002b81e\U0002b820-\U0002cead\U0002ceb0-\U0002ebe0\U0002ebf0-\U0002ee5d"
    r"\U0002f800-\U0002fa1d\U00030000-\U0003134a\U00031350-\U00033479"
)
_CJK_CHAR_RE = re.compile(f"[{_CJK_CLASS}]")
_WORD_OR_CJK_RE = re.compile(rf"[{_CJK_CLASS}]|[^\s{_CJK_CLASS}]+")


def is_cjk(text: str, min_fraction: float = 0.3) -> bool:
    """Whether at least ``min_fraction`` of the non-space characters are Han or kana."""
    if text.isascii():
        return False
    cjk = len(_CJK_CHAR_RE.findall(text))
    if cjk == 0:
        return False
    letters = len(text) - text.count(" ") - text.count("\n")
    return letters > 0 and cjk >= min_fraction * letters


def count_words(text: str) -> int:
    """Whitespace-separated words, each Han or kana character counting as one word."""
    if text.isascii() or _CJK_CHAR_RE.search(text) is None:
        return len(text.split())
    return len(_WORD_OR_CJK_RE.findall(text))


def canonical_text(text: str, *, casefold: bool = True, strip_punctuation: bool = False) -> str:
    """The form two texts must share to count as exact duplicates.

    NFKC (full-width and compatibility forms), casefolded, punctuation
    optionally removed, whitespace runs collapsed to one space.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    if casefold:
        text = text.casefold()
    if strip_punctuation:
        text = _PUNCT_RE.sub(" ", text)
    return _ANY_SPACE_RE.sub(" ", text).strip()


def collapse_whitespace(text: str) -> str:
    """One space between words, no spaces at line ends, at most one blank line in a row."""
    # Substring tests (C speed) decide which regex passes are needed at all.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii() or "  " in text or "\t" in text or "\x0b" in text or "\x0c" in text:
        text = _HSPACE_RE.sub(" ", text)
    if " \n" in text or "\n " in text:
        text = _SPACE_AROUND_NL_RE.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES_RE.sub("\n\n", text)
    return text.strip()


def _strip_line_ends(text: str) -> str:
    return text.replace("\n", "").replace("\t", "").replace("\r", "")


class NormalizeParams(BaseModel):
    model_config = PARAMS_CONFIG

    fix_mojibake: bool = True
    """Repair text decoded with the wrong codec (``Ã©`` for ``é``), with ftfy."""
    unescape_html: bool = True
    """Turn HTML entities (``&amp;``, ``&#39;``) into the characters they stand for."""
    nfkc: bool = True
    """Unicode NFKC: full-width letters and digits, ligatures and other compatibility forms."""
    remove_control: bool = True
    """Delete control and invisible format characters (tab and newline are kept)."""
    normalize_whitespace: bool = True
    """Collapse runs of spaces, trim lines, keep at most one blank line between paragraphs."""


@register("data_op", "normalize")
class TextNormalizer(Mapper):
    """Clean the encoding and spacing of every free-text field of a record."""

    name: ClassVar[str] = "normalize"
    Params: ClassVar[type[BaseModel]] = NormalizeParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self._fix_text: Any = None

    def setup(self) -> None:
        if self.params.fix_mojibake and self._fix_text is None:
            import functools

            import ftfy

            # Only the encoding repairs: the other steps are ours and switchable,
            # and ftfy's uncurling of quotes or width folding would change text
            # the user did not ask to change.
            config = ftfy.TextFixerConfig(
                unescape_html=False,
                remove_terminal_escapes=True,
                fix_encoding=True,
                restore_byte_a0=True,
                replace_lossy_sequences=True,
                decode_inconsistent_utf8=True,
                fix_c1_controls=True,
                fix_latin_ligatures=False,
                fix_character_width=False,
                uncurl_quotes=False,
                fix_line_breaks=False,
                fix_surrogates=True,
                remove_control_chars=False,
                normalization=None,
                explain=False,
            )
            self._fix_text = functools.partial(ftfy.fix_text, config=config)

    def normalize(self, text: str) -> str:
        """Apply the enabled steps to one string."""
        p = self.params
        ascii_only = text.isascii()
        # ASCII text cannot hold mojibake nor need NFKC: skip the two costly steps.
        if p.fix_mojibake and not ascii_only and _MOJIBAKE_HINT_RE.search(text):
            if self._fix_text is None:
                self.setup()
            text = self._fix_text(text)
        if p.unescape_html and "&" in text:
            text = html.unescape(text)
            ascii_only = text.isascii()
        if p.nfkc and not ascii_only:
            text = unicodedata.normalize("NFKC", text)
        # Every character _CONTROL_RE removes is unprintable: printable text skips the pass.
        if p.remove_control and not _strip_line_ends(text).isprintable():
            text = _CONTROL_RE.sub("", text)
        if p.normalize_whitespace:
            text = collapse_whitespace(text)
        return text

    def map(self, doc: Document) -> Document:
        return doc.map_texts(self.normalize)
