"""Contract over every registered data operator of the text-cleaning, filter, dedup and PII modules.

Each is built from its default parameters (plus the one that has no default),
set up, and run on a handful of real records; it must answer with the types
its kind promises and keep the records' ids and order.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import tailorml.data.ops  # noqa: F401  (registers the operators)
from tailorml.data.core import Document, Filter, GlobalStep, Mapper, Operator, Verdict
from tailorml.registry import lookup, names
from tests import fixture_data

# The modules this contract covers (the other modules of the package have their own).
MODULES = {
    f"tailorml.data.ops.{m}"
    for m in (
        "normalize",
        "html",
        "filters",
        "langid",
        "quality",
        "pii",
        "dedup_exact",
        "dedup_minhash",
        "dedup_semantic",
        "dedup_decontaminate",
    )
}
OPS = [n for n in names("data_op") if lookup("data_op", n).__module__ in MODULES]


def required_params(name: str) -> dict:
    """The parameters without a default, per operator."""
    if name == "decontaminate":
        return {"path": str(fixture_data.spam_path("dev"))}
    return {}


@pytest.fixture(scope="module")
def records(
    c4: list[str], en_sentences: list[str], zh_reviews: list[str], presidio: list[dict]
) -> list[Document]:
    pii = next(r["full_text"] for r in presidio if len(r["spans"]) >= 2)
    return [
        Document("c4:0", {"text": c4[0]}),
        Document("c4:1", {"text": c4[1]}, {"source": "c4_demo.jsonl"}),
        Document("en:1", {"text": en_sentences[1], "label": "ai"}),
        Document("zh:0", {"text": zh_reviews[0], "label": "0"}),
        Document(
            "chat:0",
            {
                "messages": [
                    {"role": "user", "content": pii},
                    {"role": "assistant", "content": en_sentences[3]},
                ]
            },
        ),
        Document("c4:0-copy", {"text": c4[0]}),
    ]


def test_the_expected_operators_are_registered() -> None:
    assert set(OPS) == {
        "normalize",
        "html_to_text",
        "length",
        "blocklist",
        "language",
        "quality",
        "exact_dedup",
        "minhash_dedup",
        "semantic_dedup",
        "decontaminate",
        "pii_redact",
    }


@pytest.mark.parametrize("name", OPS)
def test_operator_contract(name: str, records: list[Document]) -> None:
    cls = lookup("data_op", name)
    assert issubclass(cls, Operator) and cls.name == name
    assert cls.Params.model_config.get("extra") == "forbid"
    assert cls.__doc__ and sys.modules[cls.__module__].__doc__
    op = cls(**required_params(name))
    op.setup()
    if isinstance(op, Mapper):
        for doc in records:
            out = op.map(doc)
            assert isinstance(out, Document) and out.id == doc.id
            assert isinstance(out.fields, dict) and isinstance(out.meta, dict)
    elif isinstance(op, Filter):
        for doc in records:
            verdict = op.keep(doc)
            assert isinstance(verdict, Verdict)
            assert verdict.keep or (isinstance(verdict.reason, str) and verdict.reason)
    else:
        assert isinstance(op, GlobalStep)

        def stream() -> Iterator[Document]:  # a one-shot iterator, as the runner gives
            yield from records

        results = list(op.run(stream()))
        assert [d.id for d, _ in results] == [d.id for d in records]
        assert all(isinstance(d, Document) and isinstance(v, Verdict) for d, v in results)
        if name in ("exact_dedup", "minhash_dedup", "semantic_dedup"):
            assert [d.id for d, v in results if not v.keep] == ["c4:0-copy"]


def test_importing_the_operators_loads_no_heavy_library() -> None:
    code = (
        "import sys, tailorml.data.ops; "
        "heavy = [m for m in ('torch', 'transformers', 'spacy', 'trafilatura', 'ftfy', 'py3langid') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
