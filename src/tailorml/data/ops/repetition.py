"""The ``repetition`` filter: short records that are one character, phrase or sentence repeated.

Customer data (reviews, questions, support replies) holds records such as
"好好好好好好好好", "great great great great" or one sentence pasted three
times. Gopher's ``quality`` rules cannot see them: they are calibrated on
web documents of hundreds of words and skip records under 50 words. Three
measures, each a share of the record and each switchable (``None``):

- ``char_repeat``: the share of the record's letters and digits (spaces and
  punctuation removed, case folded) that lie inside a character n-gram seen
  earlier in it. A record made of one unit repeated k times scores
  ``1 - 1/k`` whatever the unit (a character, a syllable such as "ha", a
  phrase such as "非常不错的"), so a limit of 0.5 keeps a doubled word
  ("不错不错", "good good") and drops three copies and more. Space-separated
  text counts a run of one letter as three ("sooooo good" is not a
  repetition; "aaaaaaaa" still is). A Chinese
  character carries about as much as an English word, so n is smaller for
  Chinese/Japanese text than for space-separated text; a short record uses
  n up to half its length, so "哈哈哈哈" is measured too.
- ``word_repeat`` (space-separated text only): the same share over words
  and word n-grams, which sees "very good very good very good" whatever
  the punctuation between the words.
- ``sentence_repeat``: the share of the characters in sentences of at least
  ``min_sentence_chars`` that repeat an earlier sentence; it catches a
  pasted sentence beside other text, which the n-gram shares dilute, and a
  sentence written twice with no stop between the copies.

All three are a pass or two over the record's characters with a set of slices,
about 30-40 us for a one-line review (100 characters) on a 2-core CPU; nothing is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from tailorml.data.core import PARAMS_CONFIG, Document, Filter, Verdict
from tailorml.data.ops.normalize import is_cjk
from tailorml.registry import register

# Letters and digits of any script (stdlib \w is Unicode-aware; "_" is punctuation here).
_ALNUM_RE = re.compile(r"[^\W_]+")
_SENTENCE_END_RE = re.compile(r"[.!?;。！？；…\n]+")
# Space-separated writing stretches a word ("sooooo good"): runs of one letter count as three.
_LONG_RUN_RE = re.compile(r"(.)\1{3,}")


def repeated_share(units: Sequence[Any], n: int) -> float:
    """The share of ``units`` inside an n-gram that occurred earlier in the sequence.

    ``units`` is a string (characters) or a list (words). ``n`` shrinks to
    half the length for short sequences, so a four-character record is
    measured with bigrams rather than not at all.
    """
    total = len(units)
    if total < 2:
        return 0.0
    n = max(1, min(n, total // 2))
    if isinstance(units, str):
        grams: Any = (units[i : i + n] for i in range(total - n + 1))
    else:
        grams = zip(*(units[k:] for k in range(n)), strict=False)
    seen: set[Any] = set()
    covered = until = 0
    for i, gram in enumerate(grams):
        if gram in seen:
            # Overlapping repeats ("aaaa") cover each unit once.
            covered += i + n - max(i, until)
            until = i + n
        else:
            seen.add(gram)
    return covered / total


def may_repeat_over(units: Sequence[Any], n: int, limit: float) -> bool:
    """False when ``repeated_share(units, n)`` cannot exceed ``limit``: a quick test first.

    Each repeated n-gram covers at most n more units, so few repeats bound
    the share; the list and set are built at C speed, the exact walk is not.
    """
    total = len(units)
    if total < 2:
        return False
    n = max(1, min(n, total // 2))
    if isinstance(units, str):
        grams: list[Any] = [units[i : i + n] for i in range(total - n + 1)]
    else:
        grams = list(zip(*(units[k:] for k in range(n)), strict=False))
    return (len(grams) - len(set(grams))) * n > limit * total


def repeated_sentence_share(text: str, min_chars: int, min_doubled: int) -> float:
    """The share of sentence characters in sentences (of ``min_chars`` or more) seen before.

    A record that is one text of ``min_doubled`` letters or more written twice
    with no stop between the copies counts as one sentence repeated (0.5).
    """
    sentences = ["".join(_ALNUM_RE.findall(s)) for s in _SENTENCE_END_RE.split(text.casefold())]
    sentences = [s for s in sentences if s]
    letters = "".join(sentences)
    half = len(letters) // 2
    if half >= min_doubled and letters[:half] == letters[half:]:
        return 0.5  # pasted twice: where the copies meet, no sentence may end
    if len(sentences) < 2:
        return 0.0
    seen: set[str] = set()
    repeated = 0
    for sentence in sentences:
        if sentence in seen:
            repeated += len(sentence)
        elif len(sentence) >= min_chars:
            seen.add(sentence)
    return repeated / sum(map(len, sentences))


class RepetitionParams(BaseModel):
    model_config = PARAMS_CONFIG

    max_char_repeat: float | None = Field(0.5, ge=0, le=1)
    """Space-separated text: most of its letters that may lie inside repeated character n-grams."""
    char_ngram: int = Field(8, ge=1)
    """Space-separated text: the character n-gram length (spaces removed)."""
    max_char_repeat_cjk: float | None = Field(0.5, ge=0, le=1)
    """Chinese/Japanese text: the same limit, over its characters."""
    char_ngram_cjk: int = Field(3, ge=1)
    """Chinese/Japanese text: the character n-gram length (a character is about a word)."""
    max_word_repeat: float | None = Field(0.5, ge=0, le=1)
    """Space-separated text: most of its words that may lie inside repeated word n-grams."""
    word_ngram: int = Field(3, ge=1)
    """The word n-gram length."""
    max_sentence_repeat: float | None = Field(0.4, ge=0, le=1)
    """Most of the sentence characters that may repeat an earlier sentence."""
    min_sentence_chars: int = Field(5, ge=1)
    """Shorter sentences ("不错！不错！", "Yes. Yes.") never count as repeats; a text written
    twice without a stop counts from twice this many letters (once this many in CJK)."""
    min_chars: int = Field(3, ge=1)
    """Records with fewer letters and digits than this are not judged."""


@register("data_op", "repetition")
class RepetitionFilter(Filter):
    """Drop short records that are one character, phrase or sentence repeated (CJK-aware)."""

    name: ClassVar[str] = "repetition"
    Params: ClassVar[type[BaseModel]] = RepetitionParams

    def keep(self, doc: Document) -> Verdict:
        reason = self.check(doc.text)
        return Verdict.drop(reason) if reason else Verdict.ok()

    def check(self, text: str) -> str | None:
        """The first measure over its limit, with its value; None when the record passes."""
        p = self.params
        folded = text.casefold()
        letters = "".join(_ALNUM_RE.findall(folded))
        if len(letters) < p.min_chars:
            return None
        cjk = is_cjk(text)
        limit, n = (
            (p.max_char_repeat_cjk, p.char_ngram_cjk) if cjk else (p.max_char_repeat, p.char_ngram)
        )
        if limit is not None:
            chars = letters if cjk else _LONG_RUN_RE.sub(r"\1\1\1", letters)
            if may_repeat_over(chars, n, limit) and (value := repeated_share(chars, n)) > limit:
                return f"repetition: char_repeat {value:.2f} > {limit}"
        if not cjk and p.max_word_repeat is not None:
            words = _ALNUM_RE.findall(folded)
            limit = p.max_word_repeat
            if len(words) >= 3 and may_repeat_over(words, p.word_ngram, limit):
                value = repeated_share(words, p.word_ngram)
                if value > limit:
                    return f"repetition: word_repeat {value:.2f} > {limit}"
        if p.max_sentence_repeat is not None:
            doubled = p.min_sentence_chars * (1 if cjk else 2)
            value = repeated_sentence_share(text, p.min_sentence_chars, doubled)
            if value > p.max_sentence_repeat:
                return f"repetition: sentence_repeat {value:.2f} > {p.max_sentence_repeat}"
        return None
