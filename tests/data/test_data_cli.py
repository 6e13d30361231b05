"""``tailor data``: run with progress and a report path, ops, check with every error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailorml.data.cli import app

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
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
    src = DATA / "web_c4_sample" / "c4_demo.jsonl"
    if not src.is_file():
        pytest.skip(f"shared datasets not found at {src} (see shared/datasets/README.md)")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsteps:\n  - op: normalize\n  - op: length\n    min: 1000\n")
    out = tmp_path / "out"
    args = ["run", str(recipe), "--input", str(src), "--output", str(out), "--workers", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "read 300" in result.output and str(out / "report.html") in result.output
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
