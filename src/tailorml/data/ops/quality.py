"""The ``quality`` filter: Gopher's heuristic rules for web documents (Rae et al. 2021, appendix A).

It is for web documents (crawled pages of hundreds of words), not for short
records: at its defaults it drops every record under 50 words, which is
most reviews, questions, titles and chat turns. For those use
``repetition``, ``gibberish`` and ``boilerplate``, as the shipped
classification and chat recipes do.

Each rule is a threshold parameter (``None`` switches it off) and a dropped
record's reason names the rule and the value that failed it, e.g.
``quality: symbol_word_ratio 0.153 > 0.1``. Defaults are the paper's. Cheap
rules run first; the n-gram repetition rules, the costly part, run last and
hash word ids with numpy instead of building n-gram strings.

Chinese and Japanese text (``is_cjk``) has no spaces between words, so a
"word" is a character there: word counts use characters, the stop-word rule
counts common function characters (的, 了, 是 ...), and the rules calibrated
on English words only (mean word length, alphabetic words, n-gram
repetition) are skipped rather than misapplied.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from tailorml.data.core import PARAMS_CONFIG, Document, Filter, Verdict
from tailorml.data.ops.normalize import count_words, is_cjk
from tailorml.registry import register

# Gopher's stop words: a document of real English prose uses at least two.
GOPHER_STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
# The most frequent function characters of written Chinese, playing the same role.
CJK_STOP_CHARS = ("的", "了", "是", "在", "和", "有", "不", "我", "这", "也", "就", "都")
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’«»„…–—·"
_BULLETS = ("•", "●", "▪", "‣", "◦", "-", "*", "·")
_HAS_LETTER_RE = re.compile(r"[^\W\d_]")
_PARAGRAPH_RE = re.compile(r"\n\s*\n")
# Odd 64-bit multipliers for the polynomial n-gram hash of word ids.
_NGRAM_MULTIPLIERS = np.random.default_rng(0x60_9E).integers(1, 2**63, 16, dtype=np.uint64) | 1


class QualityParams(BaseModel):
    model_config = PARAMS_CONFIG

    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_word_ratio: float | None = 0.1
    """``#`` and ellipses per word."""
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    """Share of words holding at least one letter."""
    min_stop_words: int | None = 2
    stop_words: list[str] | None = None
    """Replace Gopher's English stop words (the, be, to, of, and, that, have, with)."""
    max_dup_line_ratio: float | None = 0.3
    max_dup_paragraph_ratio: float | None = 0.3
    max_dup_line_char_ratio: float | None = 0.2
    max_dup_paragraph_char_ratio: float | None = 0.2
    max_top_ngram_char_ratio: dict[int, float] = {2: 0.20, 3: 0.18, 4: 0.16}
    """n -> the most frequent n-gram's share of the word characters."""
    max_dup_ngram_char_ratio: dict[int, float] = {
        5: 0.15,
        6: 0.14,
        7: 0.13,
        8: 0.12,
        9: 0.11,
        10: 0.10,
    }
    """n -> share of word characters inside n-grams that occurred before."""
    cjk_aware: bool = True
    """Treat Chinese/Japanese text by characters (see the module docstring); off applies all rules."""


def _duplicate_share(items: list[str]) -> tuple[int, int]:
    """How many items repeat an earlier one, and how many characters those repeats hold."""
    seen: set[str] = set()
    dup_items = dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items, dup_chars


def _ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit hash per n-gram of word ids (wrapping arithmetic is the point)."""
    m = len(ids) - n + 1
    h = ids[:m] * _NGRAM_MULTIPLIERS[0]
    for k in range(1, n):
        h = h + ids[k : k + m] * _NGRAM_MULTIPLIERS[k]
    return h


def _groups(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stable sort order of ``h`` and where each run of equal values starts in it.

    One argsort serves both the most-frequent and the repeated n-gram
    measures (``np.unique`` would sort again for each output it returns).
    """
    order = np.argsort(h, kind="stable")
    sorted_h = h[order]
    starts = np.empty(len(h), bool)
    starts[:1] = True
    np.not_equal(sorted_h[1:], sorted_h[:-1], out=starts[1:])
    return order, np.flatnonzero(starts)


def repetition_ratios(
    words: list[str],
    top_ns: list[int],
    dup_ns: list[int],
    dup_limits: dict[int, float] | None = None,
) -> dict[str, float]:
    """Gopher's n-gram repetition measures of a word list, as shares of its characters.

    ``top_<n>``: characters of the most frequent n-gram times its count (0 if
    it occurs once). ``dup_<n>``: characters of words covered by an n-gram
    seen earlier in the text. Coverage can only shrink as n grows (a repeated
    10-gram is made of repeated 5-grams), so given ``dup_limits`` the longer
    n-grams are skipped once the coverage is under all their limits; their
    keys are then absent.
    """
    out: dict[str, float] = {}
    vocab: defaultdict[str, int] = defaultdict()
    vocab.default_factory = vocab.__len__  # a new word gets the next id
    ids = np.fromiter(map(vocab.__getitem__, words), np.uint64, len(words))
    lens = np.fromiter(map(len, words), np.int64, len(words))
    total = int(lens.sum()) or 1
    csum = np.concatenate(([0], np.cumsum(lens)))
    for n in top_ns:
        if len(words) <= n:
            continue
        order, first = _groups(_ngram_hashes(ids, n))
        counts = np.diff(np.append(first, len(order)))
        best = int(counts.argmax())
        if counts[best] > 1:
            start = order[first[best]]  # the n-gram's first occurrence
            out[f"top_{n}"] = float(csum[start + n] - csum[start]) * counts[best] / total
    for n in sorted(dup_ns):
        if len(words) <= n:
            continue
        order, first = _groups(_ngram_hashes(ids, n))
        repeat = np.ones(len(order), bool)
        repeat[first] = False
        dup_starts = order[repeat]  # every occurrence but the first of each n-gram
        if len(dup_starts) == 0:
            # No repeated n-gram means no repeated longer one either.
            out.update({f"dup_{m}": 0.0 for m in dup_ns if m >= n})
            break
        cover = np.zeros(len(words) + 1, np.int64)
        np.add.at(cover, dup_starts, 1)
        np.add.at(cover, dup_starts + n, -1)
        covered = np.cumsum(cover[:-1]) > 0
        out[f"dup_{n}"] = value = float(lens[covered].sum()) / total
        longer = [limit for m, limit in (dup_limits or {}).items() if m > n]
        if longer and value <= min(longer):
            break
    return out


@register("data_op", "quality")
class GopherQualityFilter(Filter):
    """For web documents (50+ words): drop pages Gopher's rules flag as lists, spam or junk.

    Not for short records (reviews, questions, chat): use ``repetition``,
    ``gibberish`` and ``boilerplate`` there.
    """

    name: ClassVar[str] = "quality"
    Params: ClassVar[type[BaseModel]] = QualityParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        words = self.params.stop_words
        self._stop = frozenset(w.lower() for w in words) if words else GOPHER_STOP_WORDS

    def keep(self, doc: Document) -> Verdict:
        reason = self.check(doc.text)
        return Verdict.drop(reason) if reason else Verdict.ok()

    def check(self, text: str) -> str | None:
        """The first failed rule with its value, or None when the text passes them all."""
        p = self.params
        cjk = p.cjk_aware and is_cjk(text)
        tokens = text.split()
        n_words = count_words(text) if cjk else len(tokens)
        if p.min_words is not None and n_words < p.min_words:
            return f"quality: words {n_words} < {p.min_words}"
        if p.max_words is not None and n_words > p.max_words:
            return f"quality: words {n_words} > {p.max_words}"
        if n_words == 0:
            return None  # nothing more to judge; min_words decides about empty text
        words = [w for w in [t.strip(_PUNCT) for t in tokens] if w]
        if not cjk and words:
            mean_len = sum(map(len, words)) / len(words)
            if p.min_mean_word_length is not None and mean_len < p.min_mean_word_length:
                return f"quality: mean_word_length {mean_len:.2f} < {p.min_mean_word_length}"
            if p.max_mean_word_length is not None and mean_len > p.max_mean_word_length:
                return f"quality: mean_word_length {mean_len:.2f} > {p.max_mean_word_length}"
        if p.max_symbol_word_ratio is not None:
            symbols = text.count("#") + text.count("...") + text.count("…")
            ratio = symbols / n_words
            if ratio > p.max_symbol_word_ratio:
                return f"quality: symbol_word_ratio {ratio:.3f} > {p.max_symbol_word_ratio}"
        lines = [line.strip() for line in text.split("\n")]
        lines = [line for line in lines if line]
        if lines:
            if p.max_bullet_lines_ratio is not None:
                ratio = sum(line.startswith(_BULLETS) for line in lines) / len(lines)
                if ratio > p.max_bullet_lines_ratio:
                    return f"quality: bullet_lines_ratio {ratio:.3f} > {p.max_bullet_lines_ratio}"
            if p.max_ellipsis_lines_ratio is not None:
                ratio = sum(line.endswith(("...", "…")) for line in lines) / len(lines)
                if ratio > p.max_ellipsis_lines_ratio:
                    return (
                        f"quality: ellipsis_lines_ratio {ratio:.3f} > {p.max_ellipsis_lines_ratio}"
                    )
        if not cjk and p.min_alpha_words_ratio is not None:
            # Most tokens are all letters (one C call each); only the rest need the regex.
            others = list(itertools.filterfalse(str.isalpha, tokens))
            alpha = len(tokens) - len(others) + sum(map(bool, map(_HAS_LETTER_RE.search, others)))
            ratio = alpha / len(tokens)
            if ratio < p.min_alpha_words_ratio:
                return f"quality: alpha_words_ratio {ratio:.3f} < {p.min_alpha_words_ratio}"
        if p.min_stop_words is not None:
            if cjk:
                found = sum(text.count(c) for c in CJK_STOP_CHARS)
            else:
                found = sum(map(self._stop.__contains__, map(str.lower, words)))
            if found < p.min_stop_words:
                return f"quality: stop_words {found} < {p.min_stop_words}"
        return self._check_repetition(text, lines, words, cjk)

    def _check_repetition(
        self, text: str, lines: list[str], words: list[str], cjk: bool
    ) -> str | None:
        p = self.params
        total_chars = len(text) or 1
        dup_lines, dup_line_chars = _duplicate_share(lines)
        if lines and p.max_dup_line_ratio is not None:
            ratio = dup_lines / len(lines)
            if ratio > p.max_dup_line_ratio:
                return f"quality: dup_line_ratio {ratio:.3f} > {p.max_dup_line_ratio}"
        if p.max_dup_line_char_ratio is not None:
            ratio = dup_line_chars / total_chars
            if ratio > p.max_dup_line_char_ratio:
                return f"quality: dup_line_char_ratio {ratio:.3f} > {p.max_dup_line_char_ratio}"
        paragraphs = [q.strip() for q in _PARAGRAPH_RE.split(text) if q.strip()]
        dup_paras, dup_para_chars = _duplicate_share(paragraphs)
        if paragraphs and p.max_dup_paragraph_ratio is not None:
            ratio = dup_paras / len(paragraphs)
            if ratio > p.max_dup_paragraph_ratio:
                return f"quality: dup_paragraph_ratio {ratio:.3f} > {p.max_dup_paragraph_ratio}"
        if p.max_dup_paragraph_char_ratio is not None:
            ratio = dup_para_chars / total_chars
            if ratio > p.max_dup_paragraph_char_ratio:
                return (
                    f"quality: dup_paragraph_char_ratio {ratio:.3f} "
                    f"> {p.max_dup_paragraph_char_ratio}"
                )
        if cjk or not words:
            return None
        tops, dups = p.max_top_ngram_char_ratio, p.max_dup_ngram_char_ratio
        ratios = repetition_ratios(words, sorted(tops), sorted(dups), dups)
        for n, limit in sorted(tops.items()):
            value = ratios.get(f"top_{n}", 0.0)
            if value > limit:
                return f"quality: top_{n}gram_char_ratio {value:.3f} > {limit}"
        for n, limit in sorted(dups.items()):
            value = ratios.get(f"dup_{n}", 0.0)
            if value > limit:
                return f"quality: dup_{n}gram_char_ratio {value:.3f} > {limit}"
        return None
