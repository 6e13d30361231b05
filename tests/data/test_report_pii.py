"""What pii_redact found reaches the run's trace and report, without the values found."""

from __future__ import annotations

import json
from pathlib import Path

from tailorml.data.recipe import load_recipe
from tailorml.data.runner import run_pipeline

EMAIL = "zhang.wei@example.com"
PHONE = "13812345678"
CARD = "4111 1111 1111 1111"
ROWS = [
    {"text": f"投诉信已经发到{EMAIL}了，有事打我手机{PHONE}。"},
    {"text": f"card number {CARD} <script>alert(1)</script>"},
    {"text": "这家酒店的早餐很好吃，下次还来。"},  # nothing to find: no change
]
RECIPE = "name: audit\nsteps:\n  - op: pii_redact\n"


def _run(tmp_path: Path) -> tuple[dict, str]:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS))
    result = run_pipeline(load_recipe(RECIPE), [src], tmp_path / "out", workers=1)
    report = json.loads(result.report_json.read_text(encoding="utf-8"))
    return report, result.report_html.read_text(encoding="utf-8")


def test_changed_examples_carry_each_finding_without_its_value(tmp_path: Path) -> None:
    report, _ = _run(tmp_path)
    (op,) = [o for o in report["ops"] if o["op"] == "pii_redact"]
    assert op["changed"] == 2 and len(op["changed_examples"]) == 2
    planted = {EMAIL: "EMAIL", PHONE: "PHONE", CARD: "CREDIT_CARD"}
    seen = set()
    for ex in op["changed_examples"]:
        found = ex["meta"]["pii_found"]
        assert found and sum(ex["meta"]["pii"].values()) == len(found)
        for f in found:
            assert set(f) == {"field", "type", "start", "end", "confidence"}
            assert 0.5 <= f["confidence"] <= 1.0
            # The span points into the text the operator saw: the audit can find it there.
            value = ex["before"][f["field"]][f["start"] : f["end"]]
            assert planted[value] == f["type"]
            seen.add(value)
        # What the operator recorded never repeats what it removed.
        assert not any(v in json.dumps(ex["meta"], ensure_ascii=False) for v in planted)
    assert seen == set(planted)


def test_the_html_report_lists_the_findings_escaped(tmp_path: Path) -> None:
    _, page = _run(tmp_path)
    assert "<caption>pii_found</caption>" in page
    for heading in ("field", "type", "start", "end", "confidence"):
        assert f"<th>{heading}</th>" in page
    for etype in ("EMAIL", "PHONE", "CREDIT_CARD"):
        assert f"<td>{etype}</td>" in page
    # Record text is escaped: neither the tenant's markup nor a placeholder is live HTML.
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<EMAIL>" not in page and "&lt;EMAIL&gt;" in page
