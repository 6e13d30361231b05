"""Log lines as text or JSON (``TAILOR_LOG_FORMAT``), each carrying its request's id.

The id is set per request by the API's middleware (``platform/api/audit.py``) in a context
variable, so every line logged while a request is handled (uvicorn's access line included,
which is written inside the request's ``send``) carries it, threads started with the
request's context too. In JSON, one object per line: ``ts`` (ISO 8601, UTC), ``level``,
``logger``, ``message``, ``request_id`` when there is one, ``exc`` with the traceback; the
access log's fields as ``client``, ``method``, ``path``, ``status``. Log collectors (Loki,
CloudWatch, Elasticsearch) index these without a parsing rule.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("tailorml_request_id", default=None)
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or ``-``) on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id and request_id != "-":
            entry["request_id"] = request_id
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            if len(record.args) == 5:  # uvicorn's (client, method, path, http version, status)
                client, method, path, _, status = record.args
                entry.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def handler_config(log_format: str) -> dict[str, Any]:
    """The ``formatters``/``filters`` part of a ``logging.config`` dict for ``log_format``."""
    if log_format not in FORMATS:
        raise ValueError(
            f"TAILOR_LOG_FORMAT must be one of {', '.join(FORMATS)}; got {log_format!r}"
        )
    formatter: dict[str, Any] = (
        {"()": "tailorml.platform.logs.JsonFormatter"}
        if log_format == "json"
        else {"format": TEXT_FORMAT}
    )
    return {"formatter": formatter, "filter": {"()": "tailorml.platform.logs.RequestIdFilter"}}


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Root logging for a process that is not uvicorn's (the worker, the CLI's jobs)."""
    parts = handler_config(log_format)
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(parts["formatter"]["format"]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
