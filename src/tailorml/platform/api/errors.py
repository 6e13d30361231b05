"""Every error leaves the API in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tailorml.errors import RateLimitError, TailorError

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}

INTERNAL_ERROR_MESSAGE = (
    "The server had an error while processing your request. Retry it; if the error persists, "
    "tell the operator the time of the request (the server logged the details)."
)


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    type: str = "invalid_request_error",
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


def error_response(exc: TailorError, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The response for a ``TailorError``: ``Retry-After`` when the error names a delay, and the
    headers a rate-limit error carries (``x-ratelimit-*``)."""
    extra = dict(headers or {})
    if isinstance(exc, RateLimitError):
        extra.update(exc.headers)
        if exc.retry_after is not None:
            extra.setdefault("retry-after", str(max(1, round(exc.retry_after))))
    return JSONResponse(exc.to_openai(), status_code=exc.status_code, headers=extra or None)


def internal_error_response(*, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A 500 that says nothing about the server's internals (the log has them)."""
    return openai_error(
        500, INTERNAL_ERROR_MESSAGE, type="server_error", code="internal_error", headers=headers
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None, str]:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    kind = str(first.get("type", ""))
    if kind == "json_invalid":
        return (
            "We could not parse the JSON body of your request. Send valid JSON with "
            "'Content-Type: application/json'.",
            None,
            "invalid_json",
        )
    if kind == "missing":
        return f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    details = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
        for e in errors[:5]
    )
    return (
        f"Invalid request: {details}.",
        param,
        "invalid_type" if "type" in kind else "invalid_value",
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TailorError)
    async def _tailor(_req: Request, exc: TailorError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        message, param, code = _validation_message(exc)
        return openai_error(400, message, param=param, code=code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return openai_error(exc.status_code, str(exc.detail), code=_HTTP_CODES.get(exc.status_code))

    # Starlette's outermost middleware answers an unhandled exception with this handler's
    # response (instead of its plain-text 500) and then re-raises, so the request guard
    # around the app still sees the exception and logs it once.
    @app.exception_handler(Exception)
    async def _unhandled(_req: Request, _exc: Exception) -> JSONResponse:
        return internal_error_response()
