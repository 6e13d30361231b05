"""``tailor data``: run with progress and a report path, ops, check with every error."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tailorml.data.cli import app
from tests import fixture_data

runner = CliRunner()


def test_check_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - op: lenght\n  - op: augment\n    alpha: 3\n")
    result = runner.invoke(app, ["check", str(bad)])
    assert result.exit_code == 1
    assert (
        "unknown operator 'lenght'" in result.output and "steps[1] (augment).alpha" in result.output
    )
    assert "Traceback" not in result.output


def test_check_accepts_a_shipped_recipe() -> None:
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "classification-augment.yaml"
    result = runner.invoke(app, ["check", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "[global]: label_quality" in result.output


def test_ops_lists_operators_with_params() -> None:
    result = runner.invoke(app, ["ops"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "label_quality" in result.output and "base_url*" in result.output


def test_run_prints_counts_and_the_report(tmp_path: Path) -> None:
    src = fixture_data.c4_path()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsteps:\n  - op: normalize\n  - op: length\n    min: 1000\n")
    out = tmp_path / "out"
    args = ["run", str(recipe), "--input", str(src), "--output", str(out), "--workers", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "read 200" in result.output and str(out / "report.html") in result.output
    assert (out / "report.html").is_file()
    missing = runner.invoke(app, [*args[:3], str(tmp_path / "nope.jsonl"), *args[4:]])
    assert missing.exit_code == 1 and "no such file" in missing.output


def test_ops_marks_resource_parameters() -> None:
    result = runner.invoke(app, ["ops"], env={"COLUMNS": "200"})
    assert "path=None [file]" in result.output and "tokenizer* [model]" in result.output


def test_run_takes_the_operators_record_limit(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "' + "y" * 5000 + '"}\n{"text": "short one"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsteps:\n  - op: normalize\n")
    args = ["run", str(recipe), "-i", str(src), "-o", str(tmp_path / "out"), "--workers", "1"]
    result = runner.invoke(app, [*args, "--max-record-mib", "0.004"])
    assert result.exit_code == 0, result.output
    assert "read 2, wrote 1, removed 1" in result.output


def _reviews() -> Path:
    """1,634 Chinese reviews, TSV ``label`` and ``text``."""
    return fixture_data.reviews_path()


def test_check_warns_when_a_recipe_removes_much_of_a_sample(tmp_path: Path) -> None:
    """Gopher's web rules on Chinese reviews: the warning names them before a full run."""
    recipe = tmp_path / "web.yaml"
    recipe.write_text("name: web\nsteps:\n  - op: normalize\n  - op: quality\n")
    result = runner.invoke(app, ["check", str(recipe), str(_reviews()), "--sample", "200"])
    assert result.exit_code == 0, result.output
    assert "sample: 200 records" in result.output
    assert "warning: the recipe removes" in result.output and "most by quality" in result.output
    assert "quality: words N < N" in result.output  # the reason that removed most
    strict = runner.invoke(
        app, ["check", str(recipe), str(_reviews()), "--sample", "200", "--strict"]
    )
    assert strict.exit_code == 1 and "warning" in strict.output


def test_check_is_quiet_for_short_text_filters_on_reviews(tmp_path: Path) -> None:
    recipe = tmp_path / "short.yaml"
    recipe.write_text(
        "name: short\nsteps:\n  - op: normalize\n"
        "  - op: boilerplate\n  - op: repetition\n  - op: gibberish\n  - op: exact_dedup\n"
    )
    src = tmp_path / "mixed.jsonl"
    junk = ["默认好评", "好好好好好好好好", "asdfghjkl", "！！！！！！"]
    rows = [{"text": t} for t in junk] + [
        {"text": f"第{i}天：房间干净，早餐丰富"} for i in range(16)
    ]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    result = runner.invoke(app, ["check", str(recipe), str(src)])
    assert result.exit_code == 0, result.output
    assert "sample: 20 records, 4 removed (20.0%)" in result.output
    assert "warning" not in result.output  # 20 % is the limit, not over it
    lower = runner.invoke(app, ["check", str(recipe), str(src), "--max-removed", "0.1"])
    assert "warning: the recipe removes 20.0%" in lower.output
    for op in ("boilerplate", "repetition", "gibberish"):
        assert f"  {op}: " in lower.output
    quiet = runner.invoke(app, ["check", str(recipe), str(_reviews()), "--sample", "300"])
    assert quiet.exit_code == 0 and "warning" not in quiet.output, quiet.output
