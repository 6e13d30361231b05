"""Every error leaves the API in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tailorml.errors import TailorError

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    type: str = "invalid_request_error",
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type, "param": param, "code": code}},
        status_code=status,
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
        return JSONResponse(exc.to_openai(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        message, param, code = _validation_message(exc)
        return openai_error(400, message, param=param, code=code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return openai_error(exc.status_code, str(exc.detail), code=_HTTP_CODES.get(exc.status_code))
