"""Recipes: every shipped recipe parses, and a bad recipe reports every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailorml.data.core import GlobalStep
from tailorml.data.recipe import (
    RecipeError,
    ResourceUse,
    load_recipe,
    op_catalog,
    parse_recipe_text,
)
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


TENANT = """
name: tenant-recipe
steps:
  - op: normalize
  - op: blocklist
    path: file-abc123
  - op: semantic_dedup
  - op: length
    unit: tokens
    tokenizer: smollm2-135m-instruct
"""


def test_parse_recipe_text_reads_text_only() -> None:
    recipe = parse_recipe_text(TENANT, max_bytes=4096, allow_aliases=False)
    assert [s.op for s in recipe.steps] == ["normalize", "blocklist", "semantic_dedup", "length"]
    with pytest.raises(RecipeError, match="A recipe is a mapping"):
        parse_recipe_text("recipes/pii-safe.yaml")  # a path is only a string here


def test_resources_list_explicit_values_and_defaults() -> None:
    uses = {(u.step, u.param): u for u in parse_recipe_text(TENANT).resources()}
    assert set(uses) == {(1, "path"), (2, "model"), (3, "tokenizer")}
    assert uses[1, "path"] == ResourceUse(1, "blocklist", "path", "file", "file-abc123", True)
    assert (uses[2, "model"].value, uses[2, "model"].explicit) == ("minilm-l6", False)
    assert uses[3, "tokenizer"].kind == "model" and uses[3, "tokenizer"].explicit


def test_with_params_validates_and_leaves_the_original_alone() -> None:
    recipe = parse_recipe_text(TENANT)
    bound = recipe.with_params({1: {"path": "/srv/tailor/files/abc123"}, 2: {"threshold": 0.9}})
    assert bound.steps[1].params.path == "/srv/tailor/files/abc123"
    assert bound.steps[2].params.threshold == 0.9 and bound.steps[2].params.model == "minilm-l6"
    assert bound.steps[3].params.unit == "tokens"  # untouched steps keep what they set
    assert recipe.steps[1].params.path == "file-abc123"
    with pytest.raises(RecipeError) as err:
        recipe.with_params({1: {"paht": "x"}, 2: {"threshold": 7}, 9: {}})
    assert len(err.value.problems) == 3
    # Reports show a server path by its last part only.
    assert bound.shown_dict()["steps"][1]["path"] == "abc123"
    assert bound.to_dict()["steps"][1]["path"] == "/srv/tailor/files/abc123"


def test_a_recipe_dumps_to_yaml_that_parses_back() -> None:
    recipe = parse_recipe_text(TENANT + "read: {format: jsonl, rename: {body: text}}\n")
    again = parse_recipe_text(recipe.to_yaml(), allow_aliases=False)
    assert again.to_dict() == recipe.to_dict()
    assert load_recipe(recipe.to_yaml()).to_dict() == recipe.to_dict()
