"""Contract over every registered operator: parameters that name server resources are marked.

The platform decides what a tenant may set from these marks (DESIGN.md, "The
trust boundary"), so a new operator whose ``model`` or ``path`` parameter
is left unmarked would hand tenants the server's files. The check goes by
name: any field whose name holds a word that usually names a resource must
carry a kind, and ``op_catalog`` (what ``tailor data ops`` and the API show)
must show it.
"""

from __future__ import annotations

import re

import pytest

from tailorml.data.core import resource_params
from tailorml.data.readers import ReadOptions
from tailorml.data.recipe import discover_ops, op_catalog, op_class
from tailorml.registry import names

discover_ops()
OPS = names("data_op")
RESOURCE_WORDS = re.compile(
    r"(^|_)(path|paths|file|files|dir|folder|url|uri|endpoint|model|encoder|tokenizer|"
    r"env|key|token|secret|host|port|package)(_|$)"
)
# Field names that match a word above but hold no resource, with the reason.
NOT_RESOURCES: dict[tuple[str, str], str] = {
    ("paraphrase", "model"): "a model name at the (guarded) endpoint, sent there; none of ours",
}
EXPECTED = {
    ("blocklist", "path"): "file",
    ("decontaminate", "path"): "file",
    ("semantic_dedup", "model"): "model",
    ("label_quality", "encoder"): "model",
    ("length", "tokenizer"): "model",
    ("chat_length", "tokenizer"): "model",
    ("chat_truncate", "tokenizer"): "model",
    ("pii_redact", "spacy_model"): "package",
}


@pytest.mark.parametrize("name", OPS)
def test_resource_like_parameters_are_marked(name: str) -> None:
    marked = resource_params(op_class(name).Params)
    for field in op_class(name).Params.model_fields:
        if RESOURCE_WORDS.search(field) and (name, field) not in NOT_RESOURCES:
            assert field in marked, f"{name}.{field} names a resource: mark it with resource()"


def test_the_known_resources_have_their_kind() -> None:
    found = {(op, p): k for op in OPS for p, k in resource_params(op_class(op).Params).items()}
    assert EXPECTED.items() <= found.items()


def test_catalog_shows_the_kind_and_the_field_docstrings() -> None:
    catalog = {op["name"]: {p["name"]: p for p in op["params"]} for op in op_catalog()}
    for (op, param), kind in EXPECTED.items():
        assert catalog[op][param]["resource"] == kind
        assert catalog[op][param]["description"], f"{op}.{param} lost its description"
    assert catalog["length"]["unit"]["resource"] is None
    # Attribute docstrings below a field are its description (shown by `tailor data ops`).
    assert "evaluation file" in catalog["decontaminate"]["path"]["description"]


def test_reader_options_name_no_resource() -> None:
    """``read:`` is written by tenants and has no resource: a new one must be marked or moved."""
    assert not any(RESOURCE_WORDS.search(f) for f in ReadOptions.model_fields)
    assert resource_params(ReadOptions) == {}


def test_html_output_format_is_a_closed_choice() -> None:
    from pydantic import ValidationError

    cls = op_class("html_to_text").Params
    assert cls(output_format="markdown").output_format == "markdown"
    with pytest.raises(ValidationError):
        cls(output_format="xml")
