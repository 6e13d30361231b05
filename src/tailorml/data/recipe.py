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
from tailorml.data.core import Filter, GlobalStep, Mapper, Operator
from tailorml.data.readers import ReadOptions
from tailorml.errors import InvalidRequestError
from tailorml.records import Task

OP_KIND = "data_op"


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


def load_recipe(source: str | Path) -> Recipe:
    """Load a recipe from a YAML file path or from YAML text, reporting every problem at once."""
    text = source
    if isinstance(source, Path) or (
        "\n" not in source and source.strip().endswith((".yaml", ".yml"))
    ):
        path = Path(source)
        if not path.is_file():
            raise RecipeError(f"No recipe file at {path}.", problems=[], param="recipe")
        text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"The recipe is not valid YAML: {exc}", problems=[]) from exc
    return validate_recipe(data)


def op_catalog() -> list[dict[str, Any]]:
    """Every registered operator with its kind, summary and parameters (for ``tailor data ops``)."""
    discover_ops()
    out = []
    for name in registry.names(OP_KIND):
        cls = registry.lookup(OP_KIND, name)
        kind = next((k.__name__ for k in (Mapper, Filter, GlobalStep) if issubclass(cls, k)), "?")
        params = []
        for pname, f in cls.Params.model_fields.items():
            default = None if f.is_required() else f.get_default(call_default_factory=True)
            params.append(
                {
                    "name": pname,
                    "type": getattr(f.annotation, "__name__", str(f.annotation)),
                    "required": f.is_required(),
                    "default": default,
                    "description": f.description or "",
                }
            )
        doc = (cls.__doc__ or "").strip().splitlines()
        out.append({"name": name, "kind": kind, "summary": doc[0] if doc else "", "params": params})
    return out
