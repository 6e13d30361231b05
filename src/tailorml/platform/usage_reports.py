"""Reading usage: ``GET /v1/usage`` pages in the shape of OpenAI's usage API, and the
operator's report per tenant and period (``GET /admin/usage``, ``tailor admin usage``).

A page is ``{"object": "page", "data": [bucket], "has_more", "next_page"}``; a bucket is
``{"object": "bucket", "start_time", "end_time", "results"}``. Inference use comes as OpenAI's
``organization.usage.completions.result`` (``input_tokens``, ``output_tokens``,
``num_model_requests``, ``model`` when grouped by model); jobs and storage, which OpenAI's
completions usage has no field for, come as ``tailorml.usage.fine_tuning.result``,
``tailorml.usage.datasets.result`` and ``tailorml.usage.storage.result`` in the same bucket.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tailorml.errors import InvalidRequestError
from tailorml.platform.db.models import Tenant, UsageBucket
from tailorml.platform.quotas import list_quotas, period_start, quota_object, used_of
from tailorml.platform.usage import ADDED, Counts, latest_storage, totals_since

# bucket_width -> (seconds, default buckets per page, most per page), as OpenAI's usage API.
WIDTHS = {"1m": (60, 60, 1440), "1h": (3600, 24, 168), "1d": (86400, 7, 31)}
JOB_RESULTS = {
    "training": "tailorml.usage.fine_tuning.result",
    "data": "tailorml.usage.datasets.result",
}


def _completions_result(counts: Counts, model: str | None) -> dict[str, Any]:
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": counts.prompt_tokens,
        "output_tokens": counts.completion_tokens,
        "input_cached_tokens": 0,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": counts.requests,
        "project_id": None,
        "user_id": None,
        "api_key_id": None,
        "model": model,
        "batch": None,
    }


def _job_result(kind: str, counts: Counts, model: str | None) -> dict[str, Any]:
    return {
        "object": JOB_RESULTS.get(kind, f"tailorml.usage.{kind}.result"),
        "training_tokens": counts.training_tokens,
        "compute_seconds": round(counts.compute_seconds, 3),
        "model": model,
    }


def check_window(
    *, start_time: int, end_time: int | None, bucket_width: str, limit: int | None
) -> tuple[int, int, int, int]:
    """(aligned start, end, width in seconds, buckets per page), or a 400 naming the parameter."""
    if bucket_width not in WIDTHS:
        raise InvalidRequestError(
            f"bucket_width must be one of {', '.join(WIDTHS)}; got {bucket_width[:16]!r}.",
            param="bucket_width",
        )
    width, default, most = WIDTHS[bucket_width]
    end = int(time.time()) if end_time is None else end_time
    if start_time < 0 or end <= start_time:
        raise InvalidRequestError(
            "start_time must be a Unix time in seconds before end_time (which defaults to now).",
            param="start_time",
        )
    if limit is not None and not 1 <= limit <= most:
        raise InvalidRequestError(
            f"limit must be from 1 to {most} buckets for bucket_width {bucket_width}.",
            param="limit",
        )
    return start_time - start_time % width, end, width, limit or default


def usage_page(
    session: Session,
    *,
    tenant_id: str,
    start_time: int,
    end_time: int | None = None,
    bucket_width: str = "1d",
    group_by_model: bool = False,
    limit: int | None = None,
    page: str | None = None,
) -> dict[str, Any]:
    """One page of the tenant's usage buckets (only this tenant's rows are read)."""
    start, end, width, per_page = check_window(
        start_time=start_time, end_time=end_time, bucket_width=bucket_width, limit=limit
    )
    if page is not None:
        if not page.isdigit() or not start <= int(page) < end:
            raise InvalidRequestError("page is not a next_page value of this query.", param="page")
        start = int(page)
    stop = min(end, start + per_page * width)
    bucket = (UsageBucket.minute - UsageBucket.minute % width).label("bucket")
    sums = [func.sum(getattr(UsageBucket, f)) for f in ADDED]
    rows = session.execute(
        select(bucket, UsageBucket.kind, UsageBucket.model, *sums)
        .where(
            UsageBucket.tenant_id == tenant_id,
            UsageBucket.kind != "storage",
            UsageBucket.minute >= start,
            UsageBucket.minute < stop,
        )
        .group_by(bucket, UsageBucket.kind, UsageBucket.model)
    ).all()
    grouped: dict[tuple[int, str, str | None], Counts] = {}
    for b, kind, model, *values in rows:
        counts = Counts.from_sums(values)
        key = (int(b), kind, (model or None) if group_by_model else None)
        grouped.setdefault(key, Counts()).add(counts)
    storage = session.execute(
        select(UsageBucket.minute, UsageBucket.bytes)
        .where(
            UsageBucket.tenant_id == tenant_id,
            UsageBucket.kind == "storage",
            UsageBucket.minute >= start,
            UsageBucket.minute < stop,
        )
        .order_by(UsageBucket.minute)
    ).all()
    stored = {minute - minute % width: value for minute, value in storage}  # the last one wins
    data = []
    for b in range(start, stop, width):
        results = []
        for (at, kind, model), counts in sorted(
            grouped.items(), key=lambda item: (item[0][1], item[0][2] or "")
        ):
            if at != b:
                continue
            if kind == "request":
                results.append(_completions_result(counts, model))
            else:
                results.append(_job_result(kind, counts, model))
        if b in stored:
            results.append({"object": "tailorml.usage.storage.result", "bytes": int(stored[b])})
        data.append(
            {"object": "bucket", "start_time": b, "end_time": b + width, "results": results}
        )
    more = stop < end
    return {
        "object": "page",
        "data": data,
        "has_more": more,
        "next_page": str(stop) if more else None,
    }


def _totals_object(counts: Counts) -> dict[str, Any]:
    return {
        "requests": counts.requests,
        "prompt_tokens": counts.prompt_tokens,
        "completion_tokens": counts.completion_tokens,
        "total_tokens": counts.tokens,
        "training_tokens": counts.training_tokens,
        "compute_seconds": round(counts.compute_seconds, 3),
    }


def usage_report(
    session: Session, *, tenant: Tenant | None, start_time: int, end_time: int | None = None
) -> dict[str, Any]:
    """Each tenant's use from ``start_time`` to ``end_time``: totals, per model, storage, and
    each quota with its use in its current period."""
    end = int(time.time()) if end_time is None else end_time
    if start_time < 0 or end <= start_time:
        raise InvalidRequestError(
            "start_time must be a Unix time in seconds before end_time (which defaults to now).",
            param="start_time",
        )
    tenants = (
        [tenant]
        if tenant is not None
        else list(session.scalars(select(Tenant).order_by(Tenant.name)))
    )
    sums = [func.sum(getattr(UsageBucket, f)) for f in ADDED]
    query = (
        select(UsageBucket.tenant_id, UsageBucket.kind, UsageBucket.model, *sums)
        .where(
            UsageBucket.kind != "storage",
            UsageBucket.minute >= start_time - start_time % 60,
            UsageBucket.minute < end,
        )
        .group_by(UsageBucket.tenant_id, UsageBucket.kind, UsageBucket.model)
    )
    if tenant is not None:
        query = query.where(UsageBucket.tenant_id == tenant.id)
    per_tenant: dict[str, list[dict[str, Any]]] = {}
    totals: dict[str, Counts] = {}
    for tenant_id, kind, model, *values in session.execute(query):
        counts = Counts.from_sums(values)
        totals.setdefault(tenant_id, Counts()).add(counts)
        per_tenant.setdefault(tenant_id, []).append(
            {"kind": kind, "model": model or None, **_totals_object(counts)}
        )
    now = time.time()
    data = []
    for t in tenants:
        storage = latest_storage(session, tenant_id=t.id, until=end)
        quotas = []
        for row in list_quotas(session, tenant_id=t.id):
            since = period_start(row.period, now)
            current = totals_since(session, tenant_id=t.id, since=since)
            used = used_of(row.metric, current, latest_storage(session, tenant_id=t.id))
            quotas.append({**quota_object(row, t.name), "used": used, "period_start": int(since)})
        data.append(
            {
                "object": "tailorml.usage.report",
                "tenant_id": t.id,
                "tenant": t.name,
                "start_time": start_time,
                "end_time": end,
                "totals": {**_totals_object(totals.get(t.id, Counts())), "storage_bytes": storage},
                "by_model": sorted(
                    per_tenant.get(t.id, []), key=lambda r: (r["kind"], r["model"] or "")
                ),
                "quotas": quotas,
            }
        )
    return {"object": "list", "data": data}
