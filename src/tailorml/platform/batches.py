"""The Batch API (``/v1/batches``): a file of requests answered in the background, OpenAI's way.

A batch is a job of kind ``batch``. Its input file (purpose ``batch``) is
checked line by line when the batch is created, so a batch that is
accepted has only well-formed requests: each line is ``{custom_id, method:
"POST", url, body}``, ``url`` is the batch's endpoint, custom ids are
unique, and each body passes the same request model the endpoint uses.
Bad lines are all reported at once (400 ``invalid_file_format``), as for
fine-tuning files.

The batch's status is OpenAI's, read from the job: ``validating`` while it
waits for a worker, ``in_progress`` while requests run, ``finalizing``
while the output files are written, then ``completed``, ``failed``,
``expired`` (past its 24 h window; what finished is kept), ``cancelling``
and ``cancelled`` (the answers so far are kept, as OpenAI does). The job
(``jobs/batch.py``) runs the requests at low priority.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from tailorml.errors import FileFormatError, InvalidRequestError, NotFoundError
from tailorml.platform.api.protocol import (
    ChatCompletionRequest,
    ClassificationRequest,
    CompletionRequest,
    EmbeddingRequest,
)
from tailorml.platform.db.models import Job, new_id
from tailorml.platform.files import get_file
from tailorml.platform.jobs.queue import add_event, check_capacity, request_cancel
from tailorml.platform.scoping import get_owned, owned
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage

ENDPOINTS: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
    "/v1/classifications": ClassificationRequest,
}
WINDOW_SECONDS = {"24h": 24 * 3600}  # OpenAI accepts only "24h"
MAX_REQUESTS = 50_000  # OpenAI's limit per batch
MAX_CUSTOM_ID = 512
MAX_PROBLEMS = 50  # bad lines reported before the check stops reading


def _problem(problems: list[tuple[int, str]], line: int, why: str) -> None:
    problems.append((line, why))
    if len(problems) >= MAX_PROBLEMS:
        raise _TooMany


class _TooMany(Exception):
    pass


def check_input(text: str, endpoint: str) -> int:
    """The number of requests in a batch input file, or ``FileFormatError`` naming bad lines."""
    model = ENDPOINTS[endpoint]
    problems: list[tuple[int, str]] = []
    seen: set[str] = set()
    count = 0
    try:
        for n, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            count += 1
            if count > MAX_REQUESTS:
                raise FileFormatError(
                    f"A batch holds at most {MAX_REQUESTS} requests; split the file.",
                    param="input_file_id",
                )
            try:
                line = json.loads(raw)
            except json.JSONDecodeError as exc:
                _problem(problems, n, f"not JSON ({exc.msg})")
                continue
            if not isinstance(line, dict):
                _problem(problems, n, "not a JSON object")
                continue
            custom_id = line.get("custom_id")
            if not isinstance(custom_id, str) or not 0 < len(custom_id) <= MAX_CUSTOM_ID:
                _problem(problems, n, f"custom_id must be a string of 1-{MAX_CUSTOM_ID} characters")
            elif custom_id in seen:
                _problem(problems, n, f"custom_id {custom_id[:64]!r} is used twice")
            else:
                seen.add(custom_id)
            if line.get("method") != "POST":
                _problem(problems, n, 'method must be "POST"')
            if line.get("url") != endpoint:
                _problem(problems, n, f"url must be the batch's endpoint, {endpoint}")
            body = line.get("body")
            if not isinstance(body, dict):
                _problem(problems, n, "body must be a JSON object (the request)")
                continue
            if body.get("stream"):
                _problem(problems, n, "stream is not available in a batch")
            try:
                model.model_validate(body)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "body"
                _problem(problems, n, f"body.{where}: {first['msg']}")
    except _TooMany:
        pass
    if problems:
        raise FileFormatError(
            "The batch input file has invalid requests (the first "
            f"{len(problems)} shown; fix them and upload it again).",
            problems=problems,
            param="input_file_id",
        )
    if count == 0:
        raise FileFormatError("The batch input file has no requests.", param="input_file_id")
    return count


def create_batch(
    session: Session,
    *,
    tenant_id: str,
    settings: Settings,
    storage: LocalStorage,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str] | None,
) -> Job:
    if endpoint not in ENDPOINTS:
        raise InvalidRequestError(
            f"endpoint must be one of {', '.join(ENDPOINTS)}; got {endpoint[:80]!r}.",
            param="endpoint",
        )
    if completion_window not in WINDOW_SECONDS:
        raise InvalidRequestError('completion_window must be "24h".', param="completion_window")
    row = get_file(session, tenant_id=tenant_id, file_id=input_file_id, param="input_file_id")
    if row.purpose != "batch":
        raise InvalidRequestError(
            f'File {row.id} has purpose {row.purpose!r}; upload batch input with purpose "batch".',
            param="input_file_id",
        )
    text = storage.path(row.storage_key).read_text(encoding="utf-8", errors="replace")
    total = check_input(text, endpoint)
    check_capacity(session, tenant_id=tenant_id, limit=settings.max_active_jobs_per_tenant)
    created = int(time.time())
    job = Job(
        id=new_id("batch_"),
        kind="batch",
        tenant_id=tenant_id,
        status="queued",
        # Below the tenant's fine-tunes and datasets in its own queue.
        priority=-10,
        spec={
            "input_file_id": row.id,
            "input_key": row.storage_key,
            "endpoint": endpoint,
            "completion_window": completion_window,
            "expires_at": created + WINDOW_SECONDS[completion_window],
            "metadata": metadata or {},
            "total": total,
        },
    )
    session.add(job)
    session.flush()
    add_event(session, job.id, f"Batch of {total} requests to {endpoint} validated; queued.")
    return job


def get_batch(session: Session, *, tenant_id: str, batch_id: str) -> Job:
    job = get_owned(session, Job, batch_id, tenant_id=tenant_id, what="batch", param="batch_id")
    if job.kind != "batch":
        raise NotFoundError(f"No such batch: {batch_id!r}.", param="batch_id",
                            code="batch_not_found")  # fmt: skip
    return job


def list_batches(session: Session, *, tenant_id: str, limit: int, after: str | None) -> list[Job]:
    query = owned(Job, tenant_id=tenant_id).where(Job.kind == "batch")
    if after is not None:
        anchor = get_batch(session, tenant_id=tenant_id, batch_id=after)
        query = query.where(
            (Job.created_at < anchor.created_at)
            | ((Job.created_at == anchor.created_at) & (Job.id < anchor.id))
        )
    order = (Job.created_at.desc(), Job.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit + 1)))


def cancel_batch(session: Session, *, tenant_id: str, batch_id: str) -> Job:
    return request_cancel(session, get_batch(session, tenant_id=tenant_id, batch_id=batch_id))


def status_of(job: Job) -> str:
    result = job.result or {}
    if job.status == "queued":
        return "cancelling" if job.cancel_requested else "validating"
    if job.status == "running":
        if job.cancel_requested:
            return "cancelling"
        return "finalizing" if result.get("phase") == "finalizing" else "in_progress"
    if job.status == "succeeded":
        return "expired" if result.get("expired") else "completed"
    return job.status  # failed, cancelled


def batch_object(job: Job) -> dict[str, Any]:
    spec, result = job.spec, job.result or {}
    status = status_of(job)
    counts = result.get("request_counts") or {"completed": 0, "failed": 0}
    at = result.get("at", {})
    errors = None
    if job.error:
        errors = {"object": "list", "data": [{"code": job.error.get("code"),
                  "message": job.error.get("message"), "param": job.error.get("param"),
                  "line": None}]}  # fmt: skip
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": spec["endpoint"],
        "errors": errors,
        "input_file_id": spec["input_file_id"],
        "completion_window": spec["completion_window"],
        "status": status,
        "output_file_id": result.get("output_file_id"),
        "error_file_id": result.get("error_file_id"),
        "created_at": job.created_at,
        "in_progress_at": job.started_at,
        "expires_at": spec["expires_at"],
        "finalizing_at": at.get("finalizing"),
        "completed_at": job.finished_at if status == "completed" else None,
        "failed_at": job.finished_at if status == "failed" else None,
        "expired_at": job.finished_at if status == "expired" else None,
        "cancelling_at": at.get("cancelling"),
        "cancelled_at": job.finished_at if status == "cancelled" else None,
        "request_counts": {
            "total": spec["total"],
            "completed": counts["completed"],
            "failed": counts["failed"],
        },
        "metadata": spec.get("metadata") or {},
    }
