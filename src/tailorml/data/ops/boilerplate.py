"""Placeholder and templated records: the ``boilerplate`` filter and the ``frequent_text`` step.

Review and support exports are full of text no customer wrote: the shop's
"默认好评" when a buyer left no review, "此用户没有填写评价", "This user
did not leave a review", "N/A", "无". ``boilerplate`` drops a record whose
whole text is such a placeholder, compared in a normal form (NFKC, so
full-width letters match; case folded; punctuation, symbols and spaces
removed), from a shipped English and Chinese list plus the recipe's
``phrases``; ``markers`` are longer placeholders that mark a record
wherever they occur in it ("系统默认好评" inside "评价方未及时做出评价,
系统默认好评!"). It streams: one set lookup a record.

``frequent_text`` finds what no list knows: the same text (after the same
normal form, digits masked so "加微信 12345 领红包" and "... 67890 ..."
agree) carried by more than ``max_share`` of the records, and at least
``min_count`` of them, is a template or spam campaign, and every copy is
dropped, not only the later ones as ``exact_dedup`` does. Short texts are
left alone (``min_chars``): "很好" a hundred times is a hundred customers.
It must count before it decides, so it is a global step; it keeps the
records of its stage in memory, as every non-streaming global step does.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from tailorml.data.core import PARAMS_CONFIG, Document, Filter, GlobalStep, Verdict
from tailorml.registry import register

_NOT_ALNUM_RE = re.compile(r"[\W_]+")
_DIGITS_RE = re.compile(r"\d+")

# Whole-record placeholders seen in review, survey and ticket exports (compared normalised).
DEFAULT_PHRASES = (
    # Chinese: shops' default reviews and "no content" placeholders.
    "默认好评",
    "系统默认好评",
    "默认评价",
    "此用户没有填写评价",
    "此用户没有填写评价内容",
    "此用户未填写评价内容",
    "该用户未填写评价",
    "该用户没有填写评价",
    "用户未填写评价",
    "用户未填写评价内容",
    "用户未及时评价",
    "评价方未及时做出评价",
    "买家未及时评价",
    "未填写评价",
    "没有填写评价",
    "暂无评价",
    "无评价",
    "暂无",
    "无",
    "空",
    "无内容",
    "暂无内容",
    "内容为空",
    "同上",
    "如题",
    "测试",
    "测试数据",
    # English.
    "this user did not leave a review",
    "the user did not leave a review",
    "this user has not left a review",
    "the customer did not leave a review",
    "this customer did not leave a review",
    "no review",
    "no review provided",
    "review not provided",
    "no review text",
    "no comment",
    "no comments",
    "no feedback",
    "no feedback provided",
    "no text",
    "no content",
    "no description",
    "no description available",
    "n/a",
    "na",
    "n.a.",
    "none",
    "nil",
    "null",
    "undefined",
    "nan",
    "empty",
    "test",
    "testing",
    "same as above",
    "see title",
    "as title",
    "lorem ipsum",
    "lorem ipsum dolor sit amet",
)
# Placeholders long and specific enough to mark a record wherever they occur in it.
DEFAULT_MARKERS = (
    "系统默认好评",
    "此用户没有填写评价",
    "此用户未填写评价",
    "该用户未填写评价",
    "用户未填写评价内容",
    "评价方未及时做出评价",
)
# No English markers by default: "did not leave a review" is also a sentence a chat or a
# ticket may hold; as a whole record it is in DEFAULT_PHRASES.


def normal_form(text: str, *, mask_digits: bool = False) -> str:
    """NFKC, case folded, without punctuation, symbols or spaces; digit runs as ``0`` if asked."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = _NOT_ALNUM_RE.sub("", text.casefold())
    return _DIGITS_RE.sub("0", text) if mask_digits else text


class BoilerplateParams(BaseModel):
    model_config = PARAMS_CONFIG

    phrases: list[str] = []
    """More whole-record placeholders (your shop's or survey tool's), compared normalised."""
    markers: list[str] = []
    """More placeholders that mark a record wherever they occur in it."""
    use_defaults: bool = True
    """Also use the shipped English and Chinese lists (``DEFAULT_PHRASES``, ``DEFAULT_MARKERS``)."""


@register("data_op", "boilerplate")
class BoilerplateFilter(Filter):
    """Drop placeholder records ("默认好评", "This user did not leave a review", "N/A", "无")."""

    name: ClassVar[str] = "boilerplate"
    Params: ClassVar[type[BaseModel]] = BoilerplateParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        p = self.params
        phrases = [*p.phrases, *(DEFAULT_PHRASES if p.use_defaults else ())]
        markers = [*p.markers, *(DEFAULT_MARKERS if p.use_defaults else ())]
        # A phrase that normalises to nothing ("-", "...") would match every symbol line:
        # those are the gibberish filter's.
        self._phrases = {f for f in map(normal_form, phrases) if f}
        self._markers = sorted({f for f in map(normal_form, markers) if f}, key=len)
        self._longest = max(map(len, self._phrases), default=0)

    def keep(self, doc: Document) -> Verdict:
        text = doc.text
        if not self._markers and len(text) > 4 * self._longest:
            return Verdict.ok()  # far longer than any phrase, even with punctuation
        form = normal_form(text)
        if form in self._phrases:
            return Verdict.drop(f"boilerplate: the whole record is the placeholder {form!r}")
        for marker in self._markers:
            if marker in form:
                return Verdict.drop(f"boilerplate: holds the placeholder {marker!r}")
        return Verdict.ok()


class FrequentTextParams(BaseModel):
    model_config = PARAMS_CONFIG

    max_share: float = Field(0.002, gt=0, le=1)
    """A text carried by more than this share of the records is a template (0.002 = 0.2 %)."""
    min_count: int = Field(10, ge=2)
    """... and by at least this many records (small sets have few copies of anything)."""
    min_chars: int = Field(10, ge=1)
    """Shorter texts (letters and digits) are common replies ("很好", "Great"), never templates."""
    mask_digits: bool = True
    """Count texts that differ only in their numbers (codes, prices, phone numbers) as one."""


@register("data_op", "frequent_text")
class FrequentTextFilter(GlobalStep):
    """Drop every copy of a text that a large share of the records repeat (templates, spam)."""

    name: ClassVar[str] = "frequent_text"
    Params: ClassVar[type[BaseModel]] = FrequentTextParams

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        p = self.params
        held: list[tuple[Document, str | None]] = []
        counts: Counter[str] = Counter()
        for doc in docs:
            form = normal_form(doc.text, mask_digits=p.mask_digits)
            key = form if len(form) >= p.min_chars else None
            if key is not None:
                counts[key] += 1
            held.append((doc, key))
        limit = p.max_share * len(held)
        frequent = {k for k, c in counts.items() if c >= p.min_count and c > limit}
        for doc, key in held:
            if key in frequent:
                share = counts[key] / len(held)
                yield (
                    doc,
                    Verdict.drop(
                        f"frequent_text: {counts[key]} records ({share:.2%}) carry this text"
                    ),
                )
            else:
                yield doc, Verdict.ok()
