"""Document.text on real records: the fast path for a lone ``text`` equals the generic walk."""

from __future__ import annotations

import json

from tailorml.data.core import Document, iter_texts
from tests import fixture_data


def walked(doc: Document) -> str:
    return "\n".join(t for _, t in iter_texts(doc.fields))


def test_text_is_the_same_whatever_the_record_shape() -> None:
    c4 = fixture_data.c4_path().read_text(encoding="utf-8")
    records = [json.loads(line) for line in c4.splitlines()[:50]]  # {"text": ...}
    records += [{"messages": m} for m in fixture_data.chat_messages("chinese", 20)]
    records += [{"conversations": [{"from": "human", "value": s} for s in conv]}
                for conv in fixture_data.conversations("russian")[:5]]  # fmt: skip
    text = records[0]["text"]
    records += [
        {"id": 1, "text": text, "label": "pos"},  # the fast path
        {"text": text, "prompt": "Summarize:"},  # two text fields: joined
        {"text": text, "meta": {"content": "nested"}},  # nested free text: walked
        {"text": text, "tags": ["a", {"content": "in a list"}]},
        {"text": 5, "completion": "not a string text"},
    ]
    for i, fields in enumerate(records):
        doc = Document(str(i), fields)
        assert doc.text == walked(doc)
    assert Document("x", records[-4]).text == f"{text}\nSummarize:"
    assert Document("x", records[-3]).text.endswith("\nnested")
