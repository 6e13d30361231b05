"""The shipped web-text-cleanup recipe on web pages (C4 text in boilerplate), through the real operators."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tailorml.data.recipe import load_recipe
from tailorml.data.runner import iter_output, run_pipeline
from tests import fixture_data

ROOT = Path(__file__).resolve().parents[2]


def test_web_recipe_turns_pages_into_clean_text(tmp_path: Path) -> None:
    pytest.importorskip("trafilatura")
    pages = tmp_path / "pages"
    pages.mkdir()
    for page in sorted(fixture_data.pages_dir().glob("*.html.gz"))[:10]:
        shutil.copy(page, pages / page.name)
    shutil.copy(pages / sorted(p.name for p in pages.iterdir())[0], pages / "copy-of-first.html.gz")
    recipe = load_recipe(ROOT / "recipes" / "web-text-cleanup.yaml")
    result = run_pipeline(recipe, [pages], tmp_path / "out", workers=1, shards=2, chunk=3)
    c = result.counts
    assert c["read"] == 11 and c["read"] == c["written"] + c["removed"]
    docs = iter_output(result)
    assert docs and all(len(d.fields["text"]) >= 200 and "<" not in d.fields["text"][:50]
                        for d in docs)  # fmt: skip
    # The pages' own boilerplate (cookie banner, sidebars, comments, share links) is gone.
    boilerplate = ("Accept all", "Popular now", "Related stories", "Example Daily",
                   "Thanks for posting", "Advertise with us")  # fmt: skip
    assert not any(b in d.fields["text"] for d in docs for b in boilerplate)
    removed = [json.loads(x) for f in result.removed_files for x in f.open()]
    assert any(r["op"] == "exact_dedup" for r in removed)  # the copied page
    assert {d.meta["lang"] for d in docs} == {"en"}
