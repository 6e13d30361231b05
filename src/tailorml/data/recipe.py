"""Recipes: a pipeline written as YAML, validated against each operator's ``Params``.

The shape, one step per registered operator, parameters beside ``op``::

    name: classification-cleanup
    description: Clean a text/label file before fine-tuning a classifier.
    task: classification            # optional: chat, completion, classification, ...
    read: {format: tsv, rename: {text_a: text}}   # optional reader options
    steps:
      - op: normalize
      - op: length
        min_chars: 10
      - op: exact_dedup

``load_recipe`` reports every problem at once (unknown operators with the
choices, bad parameters with their step index and field) in one
``RecipeError``, as torchtune does, so a user fixes the file in one pass.
Tenant YAML names registered operators only, never import paths.

Two doors, one per side of the trust boundary (DESIGN.md): ``load_recipe``
takes a file path or text from an operator or the CLI; ``parse_recipe_text``
takes text from a tenant and never touches the file system, refuses text
over a size cap and, with ``allow_aliases=False``, YAML anchors, aliases and
explicit tags (an alias "billion laughs" expands a few hundred bytes into
gigabytes once the recipe is dumped or validated). ``Recipe.resources``
lists the parameters that name server resources, which the platform checks
and ``Recipe.with_params`` replaces (file ids by server paths) just before a
run.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tailorml import registry
from tailorml.data.core import (
    Filter,
    GlobalStep,
    Mapper,
    Operator,
    ResourceKind,
    resource_params,
    shown_name,
)
from tailorml.data.readers import ReadOptions
from tailorml.errors import InvalidRequestError
from tailorml.records import Task

OP_KIND = "data_op"
SHOWN_BY_NAME = ("file", "model", "package")  # resource kinds whose values may be server paths


class RecipeError(InvalidRequestError):
    """A recipe that does not validate; ``problems`` lists every error found."""

    default_code = "invalid_recipe"

    def __init__(self, message: str, *, problems: list[str], param: str | None = "recipe"):
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{message}\n{listed}" if problems else message, param=param)


class _RecipeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][\w.-]*$")
    description: str = ""
    task: Task | None = None
    read: ReadOptions = Field(default_factory=ReadOptions)
    steps: list[Any] = Field(min_length=1)


@dataclass
class Step:
    """One validated step: the operator class and its parsed parameters."""

    index: int
    op: str
    cls: type[Operator]
    params: BaseModel

    def build(self) -> Operator:
        return self.cls(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **self.params.model_dump(mode="json", exclude_defaults=True)}


@dataclass(frozen=True, slots=True)
class ResourceUse:
    """One step parameter of a recipe that names a server resource (see ``core.resource``).

    ``explicit`` is False when the recipe left the parameter out and the
    operator's default names the resource (``semantic_dedup``'s ``minilm-l6``):
    the platform must allow or resolve that default too.
    """

    step: int
    op: str
    param: str
    kind: ResourceKind
    value: Any
    explicit: bool


@dataclass
class Recipe:
    """A validated pipeline, ready for ``run_pipeline``."""

    name: str
    steps: list[Step]
    description: str = ""
    task: Task | None = None
    read: ReadOptions = field(default_factory=ReadOptions)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form (defaults left out): what a run fingerprints and reports."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.task:
            out["task"] = self.task
        read = self.read.model_dump(mode="json", exclude_defaults=True)
        if read:
            out["read"] = read
        out["steps"] = [s.to_dict() for s in self.steps]
        return out

    def shown_dict(self) -> dict[str, Any]:
        """``to_dict`` with every absolute path in a resource parameter cut to its last part.

        What reports show: the platform puts server paths where a tenant named
        its files (``with_params``), and those must not reach the tenant.
        """
        out = self.to_dict()
        for row, step in zip(out["steps"], self.steps, strict=True):
            for name, kind in resource_params(type(step.params)).items():
                value = row.get(name)
                if kind in SHOWN_BY_NAME and isinstance(value, str) and Path(value).is_absolute():
                    row[name] = shown_name(value)
        return out

    def to_yaml(self) -> str:
        """The canonical form as YAML text, which ``parse_recipe_text`` reads back."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def resources(self) -> list[ResourceUse]:
        """Every resource parameter the steps set, explicitly or through a non-None default."""
        out = []
        for step in self.steps:
            explicit = step.params.model_fields_set
            for name, kind in resource_params(type(step.params)).items():
                value = getattr(step.params, name)
                if value is not None:
                    out.append(
                        ResourceUse(step.index, step.op, name, kind, value, name in explicit)
                    )
        return out

    def with_params(self, overrides: dict[int, dict[str, Any]]) -> Recipe:
        """A new, validated recipe with some steps' parameters replaced (``{step: {name: value}}``).

        The platform calls it just before a run, to put server paths where a
        tenant named file ids and to set what its policy decides. The other
        parameters keep what the recipe set; every problem is reported at once.
        """
        by_index = {s.index: s for s in self.steps}
        problems = [
            f"steps[{i}]: no such step (the recipe has {len(self.steps)})"
            for i in overrides
            if i not in by_index
        ]
        steps = []
        for step in self.steps:
            if step.index not in overrides:
                steps.append(step)
                continue
            params = {**step.params.model_dump(exclude_unset=True), **overrides[step.index]}
            found = _param_problems(step.index, step.op, step.cls, params)
            problems += found
            if not found:
                steps.append(
                    Step(step.index, step.op, step.cls, step.cls.Params.model_validate(params))
                )
        if problems:
            raise RecipeError(
                f"Recipe {self.name!r}: the parameter overrides have {len(problems)} problem(s):",
                problems=problems,
            )
        return Recipe(self.name, steps, self.description, self.task, self.read.model_copy())


_IMPORT_ERRORS: dict[str, str] = {}


def discover_ops() -> dict[str, str]:
    """Import every module of ``tailorml.data.ops`` so their operators register.

    Returns the modules that failed to import with the reason (a missing
    optional dependency must not hide every other operator); a recipe that
    names an operator from such a module gets the reason in its error.
    """
    try:  # the package's __init__ imports its modules: one failure surfaces here
        import tailorml.data.ops as ops_pkg
    except ImportError as exc:
        _IMPORT_ERRORS["tailorml.data.ops"] = f"{type(exc).__name__}: {exc}"
        return dict(_IMPORT_ERRORS)
    for info in pkgutil.iter_modules(ops_pkg.__path__, prefix="tailorml.data.ops."):
        if info.name in _IMPORT_ERRORS:
            continue
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            _IMPORT_ERRORS[info.name] = f"{type(exc).__name__}: {exc}"
    return dict(_IMPORT_ERRORS)


def op_class(name: str) -> type[Operator]:
    """The operator class registered as ``name`` (after discovery)."""
    discover_ops()
    return registry.lookup(OP_KIND, name)


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _param_problems(i: int, op: str, cls: type[Operator], params: dict[str, Any]) -> list[str]:
    try:
        cls.Params.model_validate(params)
    except ValidationError as exc:
        known = ", ".join(cls.Params.model_fields) or "none"
        out = []
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = f"unknown parameter; {op} takes: {known}"
            out.append(f"steps[{i}] ({op}).{_where(err['loc'])}: {msg}")
        return out
    return []


def validate_recipe(data: Any) -> Recipe:
    """Validate an already-decoded recipe (a dict), collecting every problem before raising."""
    if not isinstance(data, dict):
        raise RecipeError("A recipe is a mapping with name and steps.", problems=[])
    problems: list[str] = []
    head: _RecipeFile | None = None
    try:
        head = _RecipeFile.model_validate(data)
    except ValidationError as exc:
        problems += [f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
    failed_imports = discover_ops()
    choices = ", ".join(registry.names(OP_KIND)) or "none registered"
    steps: list[Step] = []
    raw_steps = data.get("steps")
    for i, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if not isinstance(raw, dict) or not isinstance(raw.get("op"), str):
            problems.append(f"steps[{i}]: a step is a mapping with an 'op' name and its parameters")
            continue
        params = {k: v for k, v in raw.items() if k != "op"}
        op = raw["op"]
        if op not in registry.names(OP_KIND):
            hint = f" (modules that failed to import: {failed_imports})" if failed_imports else ""
            problems.append(
                f"steps[{i}].op: unknown operator {op!r}; choose one of: {choices}{hint}"
            )
            continue
        cls = registry.lookup(OP_KIND, op)
        if not issubclass(cls, Mapper | Filter | GlobalStep):
            problems.append(f"steps[{i}].op: {op!r} is not a Mapper, Filter or GlobalStep")
            continue
        found = _param_problems(i, op, cls, params)
        problems += found
        if not found:
            steps.append(Step(i, op, cls, cls.Params.model_validate(params)))
    if problems or head is None:
        name = data.get("name", "the recipe")
        raise RecipeError(f"Recipe {name!r} has {len(problems)} problem(s):", problems=problems)
    return Recipe(head.name, steps, head.description, head.task, head.read)


MAX_DEPTH = 32  # nesting of a recipe's YAML; shipped recipes use 4, a tenant's deep one is refused
# The tags plain YAML resolves to on its own; `!!python/...`, `!!binary`, `!!set`, `!custom` are not.
_PLAIN = "recipes sent to the server may not: write each value out in plain YAML"
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")
)


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting cap and, when ``strict``, no anchors or odd tags."""

    strict = False

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def _refuse(self, what: str, fix: str, event: yaml.Event) -> None:
        mark = event.start_mark
        raise RecipeError(
            f"The recipe uses {what} at line {mark.line + 1}, column {mark.column + 1}; {fix}.",
            problems=[],
        )

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if self.strict:
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                self._refuse("a YAML anchor or alias (&name, *name)", _PLAIN, event)
            tag = getattr(event, "tag", None)
            if tag not in (None, "!") and tag not in _PLAIN_TAGS:
                self._refuse(f"the YAML tag {tag!r}", _PLAIN, event)
        if isinstance(event, yaml.CollectionStartEvent):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                self._refuse(
                    f"nesting deeper than {MAX_DEPTH} levels",
                    "a recipe needs a few: flatten it",
                    event,
                )
        try:
            return super().compose_node(parent, index)
        finally:
            if isinstance(event, yaml.CollectionStartEvent):
                self._depth -= 1


class _StrictRecipeLoader(_RecipeLoader):
    strict = True


def _load_yaml(text: str, *, strict: bool) -> Any:
    loader = (_StrictRecipeLoader if strict else _RecipeLoader)(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        # The message quotes the recipe's own text around the error, nothing else.
        raise RecipeError(f"The recipe is not valid YAML: {exc}", problems=[]) from exc
    finally:
        loader.dispose()


def parse_recipe_text(
    text: str, *, max_bytes: int | None = None, allow_aliases: bool = True
) -> Recipe:
    """Validate a recipe given as YAML (or JSON) text; never reads a file, whatever the text says.

    For text from a tenant: ``max_bytes`` refuses longer text before parsing,
    and ``allow_aliases=False`` refuses YAML anchors, aliases and explicit
    tags. Every problem is reported at once, as by ``load_recipe``.
    """
    if not isinstance(text, str):
        raise RecipeError(
            f"A recipe is YAML text, not {type(text).__name__}.", problems=[], param="recipe"
        )
    # Each character is at least one byte: a long text is refused without encoding it.
    if max_bytes is not None and (len(text) > max_bytes or len(text.encode()) > max_bytes):
        raise RecipeError(
            f"The recipe is over {max_bytes} bytes; a recipe lists steps and their parameters, "
            "so shorten it (send word lists and evaluation sets as files).",
            problems=[],
            param="recipe",
        )
    return validate_recipe(_load_yaml(text, strict=not allow_aliases))


def load_recipe(source: str | Path) -> Recipe:
    """Load a recipe from a YAML file path or from YAML text, reporting every problem at once.

    A one-line string ending in ``.yaml``/``.yml`` is taken as a path: this is
    the operator's and the CLI's door. Text from a tenant goes through
    ``parse_recipe_text``, which never opens a file.
    """
    text = source
    if isinstance(source, Path) or (
        "\n" not in source and source.strip().endswith((".yaml", ".yml"))
    ):
        path = Path(source)
        if not path.is_file():
            raise RecipeError(f"No recipe file at {path}.", problems=[], param="recipe")
        text = path.read_text(encoding="utf-8")
    return validate_recipe(_load_yaml(str(text), strict=False))


def op_catalog() -> list[dict[str, Any]]:
    """Every registered operator with its kind, summary and parameters (for ``tailor data ops``)."""
    discover_ops()
    out = []
    for name in registry.names(OP_KIND):
        cls = registry.lookup(OP_KIND, name)
        kind = next((k.__name__ for k in (Mapper, Filter, GlobalStep) if issubclass(cls, k)), "?")
        params = []
        resources = resource_params(cls.Params)
        for pname, f in cls.Params.model_fields.items():
            default = None if f.is_required() else f.get_default(call_default_factory=True)
            params.append(
                {
                    "name": pname,
                    "type": getattr(f.annotation, "__name__", str(f.annotation)),
                    "required": f.is_required(),
                    "default": default,
                    "description": f.description or "",
                    "resource": resources.get(pname),
                }
            )
        doc = (cls.__doc__ or "").strip().splitlines()
        out.append({"name": name, "kind": kind, "summary": doc[0] if doc else "", "params": params})
    return out
