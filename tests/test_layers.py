"""The import contract of DESIGN.md's "Layers": dependencies point inward only.

Every module under src/tailorml is parsed (never imported, so no torch is
needed) and every ``import`` in it is collected, function-level ones
included: a lazy import is still a dependency. The rules:

- the libraries (``data``, ``train``, ``eval``, ``serve``), ``executors`` and
  ``models`` never import ``platform``, ``console`` or ``cli``;
- ``data``, ``train``, ``eval`` and ``serve`` do not import one another,
  except that ``train`` may use ``eval`` and ``data`` the ``executors``;
- all of them may import ``models`` and the core (``registry``, ``errors``,
  ``records``, ``net``, ``charts``); ``models`` imports none of the libraries.

A genuine exception goes into ``KNOWN_EXCEPTIONS`` with its reason; an
exception that no longer occurs fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tailorml"

LIBRARIES = {"data", "train", "eval", "serve"}
CORE = {"registry", "errors", "records", "net", "charts"}
UPPER = {"platform", "console", "cli"}
# What each package below the platform may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "data": CORE | {"models", "executors"},
    "train": CORE | {"models", "eval"},
    "eval": CORE | {"models"},
    "serve": CORE | {"models"},
    "executors": CORE | {"models"},
    "models": CORE,
}
# (importing module, imported module) -> why it is allowed anyway.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every ``tailorml.*`` module ``path`` imports, at any depth of the file."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from tailorml import train`` names the subpackage, not tailorml itself.
            if target == "tailorml":
                found.update(f"tailorml.{alias.name}" for alias in node.names)
            else:
                found.add(target)
    return {name for name in found if name.startswith("tailorml.")}


def layer(module: str) -> str:
    """``tailorml.data.ops.chat`` -> ``data``; ``tailorml.cli`` -> ``cli``."""
    return module.split(".")[1]


def violations() -> set[tuple[str, str]]:
    found = set()
    for path in sorted(SRC.rglob("*.py")):
        source = module_name(path)
        if source == "tailorml" or layer(source) not in ALLOWED:
            continue
        for target in imported_modules(path):
            own, other = layer(source), layer(target)
            if other != own and other not in ALLOWED[own]:
                found.add((source, target))
    return found


def test_every_package_below_the_platform_is_covered() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages - UPPER <= set(ALLOWED), "add the new package to ALLOWED with its rule"


def test_the_scan_sees_function_level_imports() -> None:
    # runner.py imports the report writer inside a function, to keep imports light.
    assert "tailorml.data.report" in imported_modules(SRC / "data" / "runner.py")


def test_libraries_import_only_inward() -> None:
    found = violations()
    unexpected = sorted(found - set(KNOWN_EXCEPTIONS))
    assert not unexpected, "imports against DESIGN.md's layers:\n" + "\n".join(
        f"  {source} imports {target}" for source, target in unexpected
    )
    stale = sorted(set(KNOWN_EXCEPTIONS) - found)
    assert not stale, f"no longer needed, remove from KNOWN_EXCEPTIONS: {stale}"


def test_nothing_below_the_platform_imports_it() -> None:
    upward = sorted((s, t) for s, t in violations() if layer(t) in UPPER)
    assert not upward, f"libraries must not know the platform: {upward}"
