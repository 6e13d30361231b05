"""What a run writes for its user names files relatively, never by a server path.

The platform hands these files (records, report, removed records) and the
events to tenants, and runs pipelines over files under its own data folder:
an absolute path in any of them tells a tenant how the server is laid out
(DESIGN.md, "The trust boundary"). ``RunResult`` keeps full paths for the
Python caller.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorml.data.limits import ReadLimits
from tailorml.data.recipe import load_recipe
from tailorml.data.runner import run_pipeline
from tailorml.executors import ShardFailedError

ROWS = [
    "the quick brown fox jumps over the lazy dog",
    "a sentence that names a secret word to block",
    "the quick brown fox jumps over the lazy dog",  # an exact duplicate
    "short",
]


def _inputs(root: Path) -> Path:
    folder = root / "uploads" / "tenant-a"
    (folder / "batch1").mkdir(parents=True)
    lines = [json.dumps({"text": t, "label": str(i % 2)}) for i, t in enumerate(ROWS)]
    lines.insert(2, '{"text": "broken')  # a line that does not parse
    lines.append(json.dumps({"text": "x" * 5000}))  # over the record cap below
    (folder / "batch1" / "a.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "b.jsonl").write_text(json.dumps({"text": "another fine record here"}) + "\n")
    return folder


def _texts(paths: list[Path]) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)


def test_no_absolute_path_in_records_report_removed_records_or_events(tmp_path: Path) -> None:
    folder = _inputs(tmp_path)
    words = tmp_path / "server" / "lists" / "words.txt"
    words.parent.mkdir(parents=True)
    words.write_text("secret\n")
    recipe = load_recipe(
        "name: paths\nsteps:\n  - op: normalize\n  - op: blocklist\n"
        f"    path: {words}\n  - op: exact_dedup\n  - op: length\n    min: 10\n"
    )
    events: list[dict] = []
    result = run_pipeline(recipe, [folder], tmp_path / "out", workers=1, shards=2, chunk=2,
                          progress=events.append, limits=ReadLimits(max_record_bytes=4096))  # fmt: skip
    secret = str(tmp_path)
    written = {
        "records": _texts(result.output_files),
        "report.json": result.report_json.read_text(),
        "report.html": result.report_html.read_text(),
        "removed": _texts(result.removed_files),
        "events": json.dumps(events),
    }
    for what, text in written.items():
        assert secret not in text, f"{what} names a server path"
    assert result.output_files[0].is_absolute()  # the Python caller keeps full paths

    records = [json.loads(line) for line in written["records"].splitlines() if line]
    sources = {r["_meta"]["source"] for r in records}
    assert sources == {"batch1/a.jsonl", "b.jsonl"}
    report = json.loads(written["report.json"])
    assert report["inputs"] == ["b.jsonl", "batch1/a.jsonl"]
    assert report["outputs"] == ["data/part-00000.jsonl", "data/part-00001.jsonl"]
    assert all(p.startswith("removed/") for p in report["removed_files"])
    assert report["recipe"]["steps"][1]["path"] == "words.txt"  # the list, by name
    assert events[-1] == {"type": "done", "report": "report.html", "counts": result.counts}

    removed = [json.loads(line) for line in written["removed"].splitlines() if line]
    by_op: dict[str, list[dict]] = {}
    for row in removed:
        by_op.setdefault(row["op"], []).append(row)
    assert {r["meta"]["line"] for r in by_op["read"]} == {3, 6}
    assert any("record limit" in r["reason"] for r in by_op["read"])
    assert by_op["blocklist"] and by_op["exact_dedup"] and by_op["length"]
    assert result.counts["read"] == 7 and result.counts["written"] == 2


def test_errors_a_run_raises_name_files_by_name(tmp_path: Path) -> None:
    folder = _inputs(tmp_path)
    missing = tmp_path / "server" / "nope.txt"
    recipe = load_recipe(f"name: e\nsteps:\n  - op: blocklist\n    path: {missing}\n")
    with pytest.raises(ShardFailedError) as err:
        run_pipeline(recipe, [folder], tmp_path / "out", workers=1, shards=1)
    assert "'nope.txt' does not exist" in err.value.message
    assert str(tmp_path) not in err.value.message
    with pytest.raises(Exception) as err2:  # noqa: PT011 - the message is what is checked
        run_pipeline(recipe, [tmp_path / "absent.jsonl"], tmp_path / "out2", workers=1)
    assert "absent.jsonl" in str(err2.value) and str(tmp_path) not in str(err2.value)
