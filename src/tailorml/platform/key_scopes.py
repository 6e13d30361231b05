"""What each API key scope may call: a method and a path in, allowed or a 403 that says why.

The request guard checks a key's scope right after authenticating it, before a body byte is
read, so a read-only key cannot make the server receive a 500 MB upload it will refuse.
Scopes are about tenant keys; an admin key is always ``all`` and ``/admin`` needs an admin
key anyway. Paths match by whole segments (``/v1/files`` covers ``/v1/files/file-1/content``
but not ``/v1/filesx``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tailorml.errors import InvalidRequestError, PermissionDeniedError

READ_METHODS = frozenset({"GET", "HEAD"})
ANY_METHOD = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
INFERENCE_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/classifications",
    "/v1/rerank",
)


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    prefix: str
    exact: bool = False  # the path itself only, nothing below it


_INFERENCE = tuple(Rule(frozenset({"POST"}), p, exact=True) for p in INFERENCE_PATHS) + (
    Rule(READ_METHODS, "/v1/models"),
)
# Every scope but "all" is a list of rules; a request is allowed when one rule matches.
SCOPES: dict[str, tuple[Rule, ...] | None] = {
    "all": None,
    "read-only": (Rule(READ_METHODS, "/"),),
    "inference": _INFERENCE,
    "fine-tune": (
        Rule(ANY_METHOD, "/v1/files"),
        Rule(ANY_METHOD, "/v1/fine_tuning"),
        Rule(ANY_METHOD, "/v1/datasets"),
        Rule(ANY_METHOD, "/v1/models"),
        Rule(ANY_METHOD, "/v1/batches"),
        *_INFERENCE,
    ),
    # Reserved for the console's labeling pages: reading files and datasets, nothing else yet.
    "annotator": (Rule(READ_METHODS, "/v1/files"), Rule(READ_METHODS, "/v1/datasets")),
}
WHAT_IT_ALLOWS = {
    "all": "every tenant route",
    "read-only": "GET requests only",
    "inference": "POST /v1/chat/completions, /v1/completions, /v1/embeddings, "
    "/v1/classifications, /v1/rerank and GET /v1/models",
    "fine-tune": "/v1/files, /v1/fine_tuning, /v1/datasets, /v1/models, /v1/batches and the "
    "inference routes",
    "annotator": "GET /v1/files and GET /v1/datasets (reserved for the console's labeling)",
}


def check_scope_name(scope: str) -> str:
    """``scope`` if it is a known scope, else a 400 listing the known ones."""
    if scope not in SCOPES:
        raise InvalidRequestError(
            f"Unknown key scope {scope[:32]!r}; use one of {', '.join(SCOPES)}.", param="scope"
        )
    return scope


def _matches(rule: Rule, path: str) -> bool:
    prefix = rule.prefix.rstrip("/")
    if rule.exact:
        return path == prefix
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def allows(scope: str, method: str, path: str) -> bool:
    rules = SCOPES.get(scope, ())
    if rules is None:
        return True
    path = path.rstrip("/") or "/"
    return any(method.upper() in r.methods and _matches(r, path) for r in rules)


def needed_for(method: str, path: str) -> list[str]:
    """The scopes (besides ``all``) that allow this request, narrowest first."""
    return [
        s for s in ("inference", "annotator", "read-only", "fine-tune") if allows(s, method, path)
    ]


def check_scope(scope: str, method: str, path: str) -> None:
    """Refuse (403 ``insufficient_scope``) a request the key's scope does not cover."""
    if allows(scope, method, path):
        return
    others = needed_for(method, path)
    need = ", ".join(f"'{s}'" for s in [*others, "all"])
    raise PermissionDeniedError(
        f"This API key has the '{scope}' scope, which allows {WHAT_IT_ALLOWS[scope]}; "
        f"{method.upper()} {path[:200]} needs a key with scope {need}. Ask the operator for one "
        "(`tailor admin key create --tenant NAME --scope SCOPE`).",
        code="insufficient_scope",
    )
