"""The OpenAPI description says what the API answers, errors included.

FastAPI documents a 200 and a 422 per route; TailorML answers validation errors with OpenAI's
400 (``errors.py``) and every route can answer the error statuses below, in OpenAI's error
shape. This replaces the 422 with those, so a client generated from ``/openapi.json`` (and
schemathesis, in ``tests/platform/api/test_schema.py``) expects what really comes back.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_STATUSES = {
    "400": "Invalid request: a bad or missing parameter (the message says which and how to fix it).",
    "401": "Missing, unknown, revoked or expired API key.",
    "403": "The key's scope does not allow this route, or the tenant is disabled.",
    "404": "No such object for this tenant.",
    "408": "The request body paused too long.",
    "409": "The object's state does not allow this, or an Idempotency-Key was reused.",
    "410": "The object's inputs were deleted.",
    "413": "The body is larger than the server accepts.",
    "429": "A rate limit, quota or concurrency limit (Retry-After says when to retry).",
}
ERROR_SCHEMA = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {})["ErrorResponse"] = (
                ERROR_SCHEMA
            )
            ref = {"$ref": "#/components/schemas/ErrorResponse"}
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    for status, description in ERROR_STATUSES.items():
                        responses.setdefault(
                            status,
                            {
                                "description": description,
                                "content": {"application/json": {"schema": ref}},
                            },
                        )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
