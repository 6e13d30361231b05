"""Recipes: every shipped recipe parses, and a bad recipe reports every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailorml.data.core import GlobalStep
from tailorml.data.recipe import RecipeError, load_recipe, op_catalog
from tailorml.data.runner import plan_stages

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))
DATA_RECIPES = [p for p in RECIPES if "steps:" in p.read_text()]


def test_recipes_are_shipped() -> None:
    names = {p.stem for p in DATA_RECIPES}
    wanted = {"classification-cleanup", "chat-sft-cleanup", "web-text-cleanup", "pii-safe"}
    assert wanted <= names


@pytest.mark.parametrize("path", DATA_RECIPES, ids=[p.stem for p in DATA_RECIPES])
def test_shipped_recipe_parses(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.name == path.stem and recipe.steps
    stages = plan_stages(recipe.steps)
    globals_ = [s for s in recipe.steps if issubclass(s.cls, GlobalStep)]
    assert len([s for s in stages if s.kind == "global"]) == len(globals_)


def test_every_problem_is_reported_at_once() -> None:
    text = """
name: broken
colour: blue
steps:
  - op: normalise
  - op: length
    min: -x
    maximum: 3
  - op: label_quality
    action: delete
  - just a string
"""
    with pytest.raises(RecipeError) as err:
        load_recipe(text)
    problems = err.value.problems
    assert len(problems) == 6, problems
    joined = "\n".join(problems)
    assert "colour" in joined
    assert "steps[0].op: unknown operator 'normalise'" in joined and "normalize" in joined
    assert "steps[1] (length).min" in joined
    assert "steps[1] (length).maximum: unknown parameter" in joined
    assert "steps[2] (label_quality).action" in joined
    assert "steps[3]" in joined
    assert err.value.to_openai()["error"]["code"] == "invalid_recipe"


def test_yaml_syntax_error_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe("name: x\nsteps: [\n")
    with pytest.raises(RecipeError, match="No recipe file"):
        load_recipe(tmp_path / "nope.yaml")


def test_recipe_round_trips_through_its_canonical_form() -> None:
    recipe = load_recipe("name: r\nread: {format: tsv}\nsteps:\n  - op: augment\n    seed: 3\n")
    assert recipe.to_dict() == {
        "name": "r",
        "read": {"format": "tsv"},
        "steps": [{"op": "augment", "seed": 3}],
    }


def test_catalog_lists_params_of_every_operator() -> None:
    catalog = {op["name"]: op for op in op_catalog()}
    assert {"augment", "paraphrase", "label_quality", "chat_roles", "chat_length"} <= set(catalog)
    assert catalog["label_quality"]["kind"] == "GlobalStep"
    assert any(p["name"] == "action" for p in catalog["label_quality"]["params"])
    assert any(p["name"] == "base_url" and p["required"] for p in catalog["paraphrase"]["params"])
