"""The one error tree of TailorML.

Libraries raise these; the platform maps each to an HTTP status and to
OpenAI's error object (``{"error": {"message", "type", "param", "code"}}``).
Messages say what is wrong and how to fix it.
"""

from __future__ import annotations


class TailorError(Exception):
    """Base of every error TailorML raises on purpose."""

    status_code = 500
    error_type = "server_error"
    default_code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def to_openai(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(TailorError):
    """The request or input is malformed or inconsistent."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class ContextLengthExceededError(InvalidRequestError):
    """A prompt is longer than the model's context window."""

    default_code = "context_length_exceeded"


class AuthenticationError(TailorError):
    """No key, or a key that matches nothing."""

    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(TailorError):
    """The key is valid but may not do this (for example a tenant key on an admin route)."""

    status_code = 403
    error_type = "invalid_request_error"
    default_code = "permission_denied"


class NotFoundError(TailorError):
    """The object does not exist, or belongs to another tenant (the two are indistinguishable)."""

    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ConflictError(TailorError):
    """The object is in a state that does not allow this operation."""

    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLargeError(TailorError):
    """An upload or request body is over the configured limit."""

    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class FileFormatError(InvalidRequestError):
    """A data file does not parse or does not match a supported format.

    ``problems`` lists every bad line as ``(line_number, reason)`` so the user
    can fix them all at once.
    """

    default_code = "invalid_file_format"

    def __init__(
        self,
        message: str,
        *,
        problems: list[tuple[int, str]] | None = None,
        param: str | None = None,
    ):
        self.problems = problems or []
        if self.problems:
            shown = "; ".join(f"line {n}: {why}" for n, why in self.problems[:10])
            more = len(self.problems) - 10
            message = f"{message} {shown}" + (f"; and {more} more." if more > 0 else ".")
        super().__init__(message, param=param)


class ModelUnavailableError(TailorError):
    """A model cannot be loaded here (not installed, no network to fetch it, wrong task)."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "model_not_available"


class UnsafeModelError(ModelUnavailableError):
    """A model folder holds a file whose loading could run code (pickle) or asks for remote code."""

    default_code = "unsafe_model_file"


class FidelityError(TailorError):
    """A trained model does not answer as training computed: the adapter on its base, the merged
    weights or the model as the serving engine loads it disagree on the probe set."""

    status_code = 500
    error_type = "server_error"
    default_code = "fidelity_check_failed"


class JobCancelledError(TailorError):
    """Raised inside a running job when its cancellation was requested."""

    status_code = 409
    error_type = "invalid_request_error"
    default_code = "cancelled"


class RateLimitError(TailorError):
    """Too much at once (requests, or active jobs of one tenant); retry later."""

    status_code = 429
    error_type = "requests"
    default_code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.retry_after = retry_after
        # Extra answer headers, such as OpenAI's ``x-ratelimit-*`` for a per-tenant rate limit.
        self.headers = dict(headers or {})


class TokenRateLimitError(RateLimitError):
    """Over a per-tenant tokens-per-period rate limit (OpenAI's type ``tokens``)."""

    error_type = "tokens"


class QuotaExceededError(TailorError):
    """Over a hard usage quota the operator set: retrying does not help until it is raised or
    its period ends (OpenAI's ``insufficient_quota``, a 429 without ``Retry-After``)."""

    status_code = 429
    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class RequestTimeoutError(TailorError):
    """The client sent its request too slowly."""

    status_code = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class OutboundError(TailorError):
    """A call the server makes on a caller's behalf was refused or failed.

    Messages carry no network detail (which address, which port, refused or
    filtered), so an error cannot be used to map the server's network.
    """

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "outbound_failed"


class GoneError(TailorError):
    """The object existed but what it held was deleted (for example with its input file)."""

    status_code = 410
    error_type = "invalid_request_error"
    default_code = "gone"
