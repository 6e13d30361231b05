"""Chinese person names with jieba's tagger, and what a redaction leaves in the trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorml.data.core import Document
from tailorml.data.ops.pii import PiiRedactor
from tailorml.data.ops.pii_names import find_cn_names

pytest.importorskip("jieba")

DEV = Path(__file__).resolve().parents[3] / "benchmarks" / "data" / "pii_heldout" / "dev.jsonl"


def names(text: str) -> list[str]:
    op = PiiRedactor(entities=["PERSON"])
    return [s.text for s in op.find(text)]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("联系人：王小明，电话见下", "王小明"),
        ("我叫李静，是这家店的老顾客", "李静"),
        ("感谢欧阳娜娜的耐心帮助", "欧阳娜娜"),
        ("张伟经理说明天再来", "张伟"),
    ],
)
def test_chinese_names_are_found(text: str, name: str) -> None:
    assert names(text) == [name]


@pytest.mark.parametrize(
    "text",
    ["这张卡可以用吗", "谢谢，服务很好", "请把这个地址加入白名单", "老顾客了，阳光很好"],
)
def test_words_the_dictionary_mistags_are_kept(text: str) -> None:
    assert names(text) == []
    # They are found, but doubtful: only a context word would lift them.
    assert all(c < 0.5 for _, _, c in find_cn_names(text))


def test_names_on_the_dev_split() -> None:
    if not DEV.exists():
        pytest.skip("the held-out dev split is absent")
    rows = [json.loads(line) for line in DEV.open(encoding="utf-8")]
    rows = [r for r in rows if r["lang"] == "zh"]
    op = PiiRedactor(entities=["PERSON"])
    tp = fp = fn = 0
    for r in rows:
        gold = [(s["start"], s["end"]) for s in r["spans"] if s["type"] == "PERSON"]
        found = [(s.start, s.end) for s in op.find(r["text"])]
        tp += sum(any(s < ge and gs < e for gs, ge in gold) for s, e in found)
        fp += sum(not any(s < ge and gs < e for gs, ge in gold) for s, e in found)
        fn += sum(not any(s < ge and gs < e for s, e in found) for gs, ge in gold)
    # Measured on the dev split: 59 of 60 names, 1 false alarm (谷歌, Google).
    assert tp / (tp + fn) >= 0.95 and tp / (tp + fp) >= 0.9, (tp, fp, fn)


def test_each_finding_is_in_the_record_meta_with_type_span_and_confidence() -> None:
    text = "我叫李静，手机13812345678，邮箱li.jing@example.com。"
    doc = Document("r", {"messages": [{"role": "user", "content": text}]})
    out = PiiRedactor(entities=["PERSON", "PHONE", "EMAIL"]).map(doc)
    found = out.meta["pii_found"]
    assert [f["type"] for f in found] == ["PERSON", "PHONE", "EMAIL"]
    for f in found:
        assert f["field"] == "messages[0].content"
        assert set(f) == {"field", "type", "start", "end", "confidence"}
        assert 0.5 <= f["confidence"] <= 1.0
        # The span points into the original text; the value itself is not kept.
        assert text[f["start"] : f["end"]] in ("李静", "13812345678", "li.jing@example.com")
    assert out.meta["pii"] == {"PERSON": 1, "PHONE": 1, "EMAIL": 1}
    assert out.fields["messages"][0]["content"] == "我叫<PERSON>，手机<PHONE>，邮箱<EMAIL>。"
