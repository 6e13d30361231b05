"""API8 security misconfiguration: a tenant's recipe text is parsed as text, strictly.

Seen: a recipe *name* such as ``../../../../some/file`` made the server load
that YAML file and echo its keys back in validation errors. ``load_recipe``
is the operator's door (a one-line string ending in .yaml is a path);
``parse_recipe_text`` is the tenant's: it never touches the file system,
refuses YAML anchors and aliases (a "billion laughs" recipe of a few hundred
bytes expands into gigabytes once validated or dumped) and explicit tags,
caps the text's size and nesting, and lists every resource parameter so the
platform can check them.
"""

from __future__ import annotations

import builtins
import pathlib
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tailorml.data.recipe import RecipeError, discover_ops, parse_recipe_text

LAUGHS = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
name: laughs
steps:
  - op: blocklist
    words: *h
"""


@pytest.fixture
def no_file_access(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to open, read or probe a file while it is active fails the test."""
    discover_ops()  # importing the operators reads the package, which is not the point
    tried: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        tried.append(repr(args[:1]))
        raise AssertionError(f"file system touched: {args[:1]}")

    monkeypatch.setattr(builtins, "open", refuse)
    for name in ("open", "read_text", "read_bytes", "is_file", "exists", "stat"):
        monkeypatch.setattr(pathlib.Path, name, refuse)
    return tried


@pytest.mark.parametrize(
    "text", ["../../../../etc/passwd.yaml", "/etc/hostname", "recipes/pii-safe.yaml"]
)
def test_api8_a_recipe_that_names_a_file_is_never_read(
    text: str, no_file_access: list[str]
) -> None:
    with pytest.raises(RecipeError) as err:
        parse_recipe_text(text, max_bytes=65536, allow_aliases=False)
    assert no_file_access == []
    assert "A recipe is a mapping" in err.value.message


def test_api8_a_server_yaml_file_is_not_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "operator.yaml"
    secret.write_text("name: x\nadmin_key: sk-operator-0123456789\nsteps: [{op: normalize}]\n")
    with pytest.raises(RecipeError) as err:
        parse_recipe_text(str(secret), allow_aliases=False)
    assert "admin_key" not in err.value.message and "sk-operator" not in err.value.message


def test_api8_yaml_aliases_are_refused_before_they_expand() -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(RecipeError, match="anchor or alias") as err:
            parse_recipe_text(LAUGHS, max_bytes=65536, allow_aliases=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0 and peak < 5 * 1024**2
    assert "line 2" in err.value.message  # where, so the author can write the value out


@pytest.mark.parametrize(
    "value",
    [
        "!!python/object/apply:os.system ['id']",
        "!!binary aGVsbG8=",
        "!custom thing",
        "!!set {a, b}",
    ],
)
def test_api8_explicit_yaml_tags_are_refused(value: str) -> None:
    text = f"name: tags\nsteps:\n  - op: blocklist\n    words: [{value}]\n"
    with pytest.raises(RecipeError, match="YAML tag"):
        parse_recipe_text(text, allow_aliases=False)


def test_api8_plain_tags_and_plain_yaml_still_parse() -> None:
    text = "name: ok\nsteps:\n  - op: length\n    min: !!int 3\n    max: 400\n"
    assert parse_recipe_text(text, allow_aliases=False).steps[0].params.min == 3


def test_api8_oversized_and_deeply_nested_text_is_refused() -> None:
    big = "name: big\nsteps:\n  - op: blocklist\n    words: [" + "w, " * 50000 + "]\n"
    with pytest.raises(RecipeError, match="over 65536 bytes"):
        parse_recipe_text(big, max_bytes=65536)
    deep = "name: deep\nsteps: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(RecipeError, match="nesting deeper"):
        parse_recipe_text(deep)  # a clear error, not a RecursionError, aliases allowed or not


def test_api8_every_server_resource_the_recipe_names_is_listed() -> None:
    text = (
        "name: probe\nsteps:\n  - op: blocklist\n    path: /proc/self/environ\n"
        "  - op: decontaminate\n    path: /etc/passwd\n    ngram: 1\n"
        "  - op: label_quality\n    encoder: /srv/models/other-tenant\n  - op: semantic_dedup\n"
    )
    uses = parse_recipe_text(text, allow_aliases=False).resources()
    assert [(u.op, u.param, u.kind, u.explicit) for u in uses] == [
        ("blocklist", "path", "file", True),
        ("decontaminate", "path", "file", True),
        ("label_quality", "encoder", "model", True),
        ("semantic_dedup", "model", "model", False),
    ]
