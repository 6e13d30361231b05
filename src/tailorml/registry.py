"""One registry for everything that is chosen by name.

Operators, tasks, model sources, executors, metrics and serving backends
register beside their code with ``@register(kind, name)``. Tenant YAML and
API requests name registered items, never import paths. A second item under
the same kind and name is refused, so two modules cannot silently shadow
each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tailorml.errors import InvalidRequestError

T = TypeVar("T")

_ITEMS: dict[str, dict[str, Any]] = {}


class DuplicateRegistrationError(RuntimeError):
    """Raised at import time when two items claim the same kind and name."""


def register(kind: str, name: str) -> Callable[[T], T]:
    """Register the decorated class or function as ``name`` of ``kind``."""

    def decorate(item: T) -> T:
        table = _ITEMS.setdefault(kind, {})
        if name in table and table[name] is not item:
            raise DuplicateRegistrationError(
                f"{kind} {name!r} is already registered by {table[name]!r}"
            )
        table[name] = item
        return item

    return decorate


def lookup(kind: str, name: str) -> Any:
    """Return the item registered as ``name`` of ``kind``, or a clear error naming the choices."""
    table = _ITEMS.get(kind, {})
    if name not in table:
        choices = ", ".join(sorted(table)) or "none"
        raise InvalidRequestError(f"Unknown {kind} {name!r}; choose one of: {choices}.", param=kind)
    return table[name]


def names(kind: str) -> list[str]:
    """The names registered under ``kind``, sorted."""
    return sorted(_ITEMS.get(kind, {}))


def kinds() -> list[str]:
    """Every kind that has at least one registered item."""
    return sorted(_ITEMS)
