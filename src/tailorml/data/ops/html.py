"""HTML to text: keep a web page's main text, drop its navigation, ads and footers.

The extraction itself is trafilatura's (the best-scoring open-source extractor
on the ScrapingHub article-extraction benchmark); this module maps its switches
to recipe parameters and adds ``extraction_scores``, the token-level
precision / recall / F1 that benchmark uses, so a tenant can measure the
trade-off of ``favor_precision`` / ``favor_recall`` on their own pages.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Literal

import regex
from pydantic import BaseModel, model_validator

from tailorml.data.core import PARAMS_CONFIG, Document, Mapper
from tailorml.registry import register

_TOKEN_RE = regex.compile(r"\w+")


def extraction_scores(pred: str, gold: str) -> tuple[float, float, float]:
    """Token precision, recall and F1 of an extracted text against the gold text.

    Tokens are casefolded ``\\w+`` runs compared as bags (multisets), as in the
    ScrapingHub article-extraction benchmark. An empty side scores 1.0 when the
    other is empty too, 0.0 otherwise.
    """
    p_tokens = Counter(_TOKEN_RE.findall(pred.casefold()))
    g_tokens = Counter(_TOKEN_RE.findall(gold.casefold()))
    n_pred, n_gold = sum(p_tokens.values()), sum(g_tokens.values())
    if n_pred == 0 or n_gold == 0:
        both_empty = float(n_pred == n_gold)
        return both_empty, both_empty, both_empty
    overlap = sum((p_tokens & g_tokens).values())
    precision, recall = overlap / n_pred, overlap / n_gold
    f1 = 0.0 if overlap == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


class HtmlToTextParams(BaseModel):
    model_config = PARAMS_CONFIG

    field: str = "text"
    """The record field holding the raw HTML."""
    target: str = "text"
    """The field to write the extracted text to (the same field by default)."""
    favor_precision: bool = False
    """Leave out doubtful parts: less boilerplate, some article text lost."""
    favor_recall: bool = False
    """Keep doubtful parts: more article text, more boilerplate."""
    include_tables: bool = True
    include_comments: bool = False
    """Keep the page's reader comments below the article."""
    include_links: bool = False
    """Keep link targets (Markdown style)."""
    output_format: Literal["txt", "markdown", "html"] = "txt"
    """trafilatura's output: ``txt``, ``markdown`` (keeps headings and lists) or ``html``."""
    fast: bool = False
    """Skip the fallback extractors (readability, jusText): about twice as fast, lower recall."""
    deduplicate: bool = False
    """Drop paragraphs repeated within the page."""

    @model_validator(mode="after")
    def _one_bias(self) -> HtmlToTextParams:
        if self.favor_precision and self.favor_recall:
            raise ValueError("set favor_precision or favor_recall, not both")
        return self


@register("data_op", "html_to_text")
class HtmlToTextMapper(Mapper):
    """Replace a record's HTML by its main text; ``meta["html_extracted"]`` says if any was found.

    A page with no recognisable main text gets an empty string rather than
    its raw HTML, so a later length filter drops it with a visible reason.
    A field without any tag is plain text already and is kept as it is.
    """

    name: ClassVar[str] = "html_to_text"
    Params: ClassVar[type[BaseModel]] = HtmlToTextParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self._extract: Any = None

    def setup(self) -> None:
        if self._extract is not None:
            return
        import functools

        import trafilatura

        p = self.params
        self._extract = functools.partial(
            trafilatura.extract,
            output_format=p.output_format,
            favor_precision=p.favor_precision,
            favor_recall=p.favor_recall,
            include_tables=p.include_tables,
            include_comments=p.include_comments,
            include_links=p.include_links,
            fast=p.fast,
            deduplicate=p.deduplicate,
            with_metadata=False,
        )

    def extract(self, page: str) -> str | None:
        """The main text of one HTML page, or None if trafilatura found none.

        Text without any tag is returned as it is: it is not HTML, and a recipe
        that mixes plain text and pages should not lose the plain text.
        """
        if "<" not in page:
            return page
        if self._extract is None:
            self.setup()
        return self._extract(page)

    def map(self, doc: Document) -> Document:
        page = doc.fields.get(self.params.field)
        if not isinstance(page, str):
            return doc
        is_html = "<" in page
        text = self.extract(page) if is_html else page
        fields = dict(doc.fields)
        fields[self.params.target] = text or ""
        meta = dict(doc.meta)
        meta["html_extracted"] = is_html and bool(text)
        return Document(doc.id, fields, meta)
