"""Keep server internals out of what tenants read: absolute paths in job events and errors.

Libraries write messages for whoever runs them, and an operator at a shell
wants the full path; a tenant reading its job's events must not learn the
server's layout (data folder, virtual environment, home). Every message a
job stores for its tenant passes through ``scrub``, which keeps a path's
last component (``…/step-10``) so the message still reads. API routes
(``/v1/...``) and URLs are left alone.
"""

from __future__ import annotations

import re
from typing import Any

_PART = r"[\w.@+~%=-]"
# A slash not inside a word, a URL (scheme://host/...) or a relative path, then path parts.
_ABSOLUTE = re.compile(
    rf"(?<![\w.:/~%-])/(?!v1/|admin/|health\b|docs\b|openapi\b)({_PART}+(?:/{_PART}*)*)"
)


def _short(match: re.Match[str]) -> str:
    last = [p for p in match.group(1).split("/") if p]
    return f"…/{last[-1]}" if last else "…"


def scrub(text: str) -> str:
    """``text`` with every absolute server path cut to its last component."""
    return _ABSOLUTE.sub(_short, text) if "/" in text else text


def scrub_value(value: Any) -> Any:
    """``scrub`` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v) for v in value]
    return value
