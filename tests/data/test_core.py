"""Document.text on real records: the fast path for a lone ``text`` equals the generic walk."""

from __future__ import annotations

import json

from tailorml.data.core import Document, iter_texts
from tests.conftest import shared_dataset


def walked(doc: Document) -> str:
    return "\n".join(t for _, t in iter_texts(doc.fields))


def test_text_is_the_same_whatever_the_record_shape() -> None:
    c4 = shared_dataset("web_c4_sample", "c4_demo.jsonl").read_text(encoding="utf-8")
    chats = shared_dataset("chat_sharegpt", "sharegpt_zh_1K_format.jsonl").read_text("utf-8")
    records = [json.loads(line) for line in c4.splitlines()[:50]]  # text, timestamp, url
    records += [
        {"messages": [{"role": m["from"], "content": m["value"]} for m in r["conversations"]]}
        for r in map(json.loads, chats.splitlines()[:20])
    ]
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
