"""Exact deduplication: ``exact_dedup`` drops records whose canonical text was seen before.

"The same text" is ``canonical_text``: NFKC, casefolded, whitespace runs
collapsed, punctuation optionally removed, so copies that differ only in
spacing, case or full-width forms are caught. Only a 128-bit xxh3 digest per
record is kept in memory (16 bytes, collisions ~2^-64 at a billion records),
so the step streams: each record is decided as it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from pydantic import BaseModel

from tailorml.data.core import PARAMS_CONFIG, Document, GlobalStep, Verdict
from tailorml.data.ops.normalize import canonical_text
from tailorml.registry import register


class ExactDedupParams(BaseModel):
    model_config = PARAMS_CONFIG

    casefold: bool = True
    """Ignore letter case."""
    strip_punctuation: bool = False
    """Ignore punctuation and symbols too (``Hello, world!`` == ``hello world``)."""
    fields: list[str] | None = None
    """Compare only these fields (joined); by default all free text of the record."""


def text_digest(text: str, params: ExactDedupParams | None = None) -> bytes:
    """The 16-byte digest two records share exactly when their canonical texts are equal."""
    import xxhash  # a small C extension, imported where used like every op dependency

    params = params or ExactDedupParams()
    canon = canonical_text(
        text, casefold=params.casefold, strip_punctuation=params.strip_punctuation
    )
    return xxhash.xxh3_128_digest(canon.encode("utf-8", "surrogatepass"))


@register("data_op", "exact_dedup")
class ExactDedup(GlobalStep):
    """Keep the first record of each canonical text; drop later copies naming the kept id."""

    name: ClassVar[str] = "exact_dedup"
    Params: ClassVar[type[BaseModel]] = ExactDedupParams

    def _text(self, doc: Document) -> str:
        fields = self.params.fields
        if fields is None:
            return doc.text
        return "\n".join(str(doc.fields.get(f, "")) for f in fields)

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        seen: dict[bytes, str] = {}
        params: Any = self.params
        for doc in docs:
            key = text_digest(self._text(doc), params)
            first = seen.get(key)
            if first is None:
                seen[key] = doc.id
                yield doc, Verdict.ok()
            else:
                yield doc, Verdict.drop(f"exact duplicate of {first}")
