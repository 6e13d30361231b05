"""The data report: ``report.json`` and a self-contained ``report.html``.

The HTML page is one file with inline CSS and inline SVG charts: the
platform runs offline, so no CDN, and a chart library would add megabytes of
JavaScript (plotly) or a heavy dependency (matplotlib) for a handful of bar
charts that are thirty lines of SVG. It shows the counts, the length
histogram before and after, label balance, languages, what each operator
removed (with reasons and examples) and what it changed (before/after, with
the edits highlighted, and what the operator recorded about each change:
``pii_redact``'s findings with their type, span and confidence). Everything
from the data is escaped: the page is served to tenants.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from tailorml.charts import CSS, bar_chart
from tailorml.charts import escape as _e
from tailorml.charts import short_number as _short
from tailorml.data.trace import LENGTH_EDGES
from tailorml.data.writers import dumps, write_text_atomic

SHOWN_EXAMPLES = 3


def _length_labels() -> list[str]:
    edges = LENGTH_EDGES + [None]
    return [
        f"{_short(a)}–{_short(b - 1)}" if b else f"≥{_short(a)}"
        for a, b in zip(edges, edges[1:], strict=False)
    ]


def _pair_chart(before: dict[str, int], after: dict[str, int], title: str) -> str:
    keys = sorted(set(before) | set(after), key=lambda k: -(before.get(k, 0) + after.get(k, 0)))
    keys = keys[:30]
    series = {"before": [before.get(k, 0) for k in keys], "after": [after.get(k, 0) for k in keys]}
    if not before:
        series.pop("before")
    return bar_chart(keys, series, title)


def _pre(value: Any) -> str:
    return f"<pre>{_e(json.dumps(value, ensure_ascii=False, indent=1))}</pre>"


def diff_html(before: Any, after: Any) -> str:
    """Before/after of a record with removed words struck red and added words green."""
    a = json.dumps(before, ensure_ascii=False, indent=1).split(" ")
    b = json.dumps(after, ensure_ascii=False, indent=1).split(" ")
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(_e(" ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{_e(' '.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{_e(' '.join(b[j1:j2]))}</ins>")
    return "<pre class='diff'>" + " ".join(out) + "</pre>"


def _flag_text(meta: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in meta.items())


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _rows_table(name: str, rows: list[dict[str, Any]]) -> str:
    """A list of dicts an operator recorded (``pii_found``: field, type, span, confidence)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(row.get(c, ''))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table class='found'><caption>{_e(name)}</caption><tr>{head}</tr>{body}</table>"


def _op_section(op: dict[str, Any]) -> str:
    head = (
        f"<h3>{_e(op['op'])} <span class='muted'>({_e(op['kind'])}, step {op['step']})</span>"
        f"</h3><p>in {op['docs_in']} · out {op['docs_out']} · removed {op['removed']} · "
        f"changed {op['changed']} · annotated {op['annotated']} · added {op['added']} · "
        f"{op['seconds']:.2f} s</p>"
    )
    body = []
    if op["reasons"]:
        rows = "".join(
            f"<tr><td>{_e(r)}</td><td>{n}</td></tr>"
            for r, n in sorted(op["reasons"].items(), key=lambda x: -x[1])
        )
        body.append(f"<table><tr><th>removal reason</th><th>records</th></tr>{rows}</table>")
    for ex in op["removed_examples"][:SHOWN_EXAMPLES]:
        body.append(
            f"<details><summary>removed {_e(ex['id'])}: {_e(ex['reason'])}</summary>"
            f"{_pre(ex['record'])}</details>"
        )
    for ex in op.get("flagged_examples", [])[:SHOWN_EXAMPLES]:
        body.append(
            f"<details><summary>flagged {_e(ex['id'])}: {_e(_flag_text(ex['meta']))}</summary>"
            f"{_pre(ex['record'])}</details>"
        )
    for ex in op["changed_examples"][:SHOWN_EXAMPLES]:
        recorded = ex.get("meta") or {}
        notes = {k: v for k, v in recorded.items() if not _is_rows(v)}
        note = f": {_e(_flag_text(notes))}" if notes else ""
        tables = "".join(_rows_table(k, v) for k, v in recorded.items() if _is_rows(v))
        body.append(
            f"<details open><summary>changed {_e(ex['id'])}{note}</summary>"
            f"{diff_html(ex['before'], ex['after'])}{tables}</details>"
        )
    return f"<section class='op'>{head}{''.join(body)}</section>"


def render_html(summary: dict[str, Any]) -> str:
    """The whole report page as one self-contained HTML string."""
    counts, before, after = summary["counts"], summary["before"], summary["after"]
    recipe = summary["recipe"]
    cards = "".join(f"<div class='card'>{_e(k)}<b>{v}</b></div>" for k, v in counts.items())
    removals = [o for o in summary["ops"] if o["removed"]]
    ops_chart = bar_chart(
        [o["op"] for o in summary["ops"]],
        {
            "removed": [o["removed"] for o in summary["ops"]],
            "changed": [o["changed"] for o in summary["ops"]],
            "added": [o["added"] for o in summary["ops"]],
        },
        "What each operator did",
    )
    stages = "".join(
        f"<tr><td>{_e(s['name'])}</td><td>{_e(s['kind'])}</td><td>"
        f"{_e(', '.join(s['ops']))}</td><td>{s['shards']}</td><td>{s['skipped']}"
        "</td></tr>"
        for s in summary["stages"]
    )
    sections = [
        f"<h1>Data report: {_e(recipe['name'])}</h1>",
        f"<p class='muted'>{_e(recipe.get('description', ''))}</p><div class='cards'>{cards}</div>",
        "<h2>Length (characters)</h2>",
        bar_chart(
            _length_labels(),
            {"before": before["length_bins"], "after": after["length_bins"]},
            "Records per length bin, before and after",
        ),
        "<h2>Labels</h2>",
        _pair_chart(before["labels"], after["labels"], "Label balance"),
        "<h2>Flags</h2>",
        _pair_chart(before.get("flags", {}), after.get("flags", {}), "Records flagged in meta"),
        "<h2>Languages</h2>",
        _pair_chart(before["languages"], after["languages"], "Languages (as detected)"),
        "<h2>Operators</h2>",
        ops_chart,
        "".join(_op_section(o) for o in summary["ops"]),
        "<h2>Run</h2><table><tr><th>stage</th><th>kind</th><th>operators</th><th>shards</th>"
        f"<th>resumed</th></tr>{stages}</table>",
        f"<p>Removed records ({sum(o['removed'] for o in removals)}) are in "
        f"<code>removed/</code>; cleaned records in <code>data/</code>. "
        f"{summary['seconds']} s.</p>",
        "<details><summary>recipe</summary>" + _pre(recipe) + "</details>",
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Data report: "
        f"{_e(recipe['name'])}</title><style>{CSS}</style></head><body>"
        + "".join(sections)
        + "</body></html>"
    )


def write_report(summary: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``output_dir``; return their paths."""
    json_path, html_path = Path(output_dir) / "report.json", Path(output_dir) / "report.html"
    write_text_atomic(json_path, dumps(summary))
    write_text_atomic(html_path, render_html(summary))
    return json_path, html_path
