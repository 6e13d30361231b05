"""The ``batch`` job kind: answer a Batch API input file at low priority, resumably.

The worker resolves the batch's models for its tenant (its own fine-tunes
and the catalog's bases; anything else answers 404 in the error file),
then runs the requests in a child process (``batch_run.py``) started at
the lowest CPU priority (nice 19) with one torch thread, so the API's
interactive requests keep the cores: the kernel gives a nice-19 process a
sliver of a busy CPU, and all of an idle one. The child writes one line
per answered request to ``output.jsonl`` (successes) or ``errors.jsonl``
(requests the endpoint refused), flushed as it goes.

Every second the job counts those lines into the batch's
``request_counts`` and meters the new answers' tokens (the bytes already
metered are stored with the counts, in the same transaction, so a resumed
job counts nothing twice). A worker that dies loses no answer: the next
attempt's child skips every ``custom_id`` already written, so each is
answered once. Cancelling stops the child and keeps what was answered, as
OpenAI does; past the 24 h window the batch ``expired`` with the same.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tailorml.errors import JobCancelledError, TailorError
from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import Job
from tailorml.platform.files import create_file
from tailorml.platform.jobs.context import JobContext
from tailorml.platform.models import ModelResolver
from tailorml.platform.usage import Counts, minute_of, write_buckets
from tailorml.registry import register

POLL_SECONDS = 1.0
STOP_SECONDS = 10.0  # how long the child has to stop on SIGTERM before it is killed


@register("job_kind", "batch")
def run_batch(ctx: JobContext) -> dict[str, Any]:
    spec, work = ctx.spec, ctx.work_dir
    _plan(ctx, work)
    _progress(ctx, work, phase="in_progress")
    child = _start_child(ctx, work)
    try:
        while child.poll() is None:
            time.sleep(POLL_SECONDS)
            _progress(ctx, work, phase="in_progress")
            if time.time() > spec["expires_at"]:
                _stop(child)
                return _finalize(ctx, work, expired=True)
            if ctx.should_stop():
                _stop(child)
                if _cancel_requested(ctx):
                    _finalize(ctx, work, cancelled=True)
                raise JobCancelledError("The batch was cancelled.")
    finally:
        if child.poll() is None:
            _stop(child)
    if child.returncode != 0:
        tail = (work / "child.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the batch runner exited with status {child.returncode}: {tail}")
    return _finalize(ctx, work)


def _plan(ctx: JobContext, work: Path) -> None:
    """Write what the child needs: the input, the resolved models, the engine settings."""
    from tailorml.platform.db.engine import read_scope

    settings, spec = ctx.settings, ctx.spec
    models: dict[str, Any] = {}
    resolver = ModelResolver(settings)
    names = set()
    text = ctx.storage.path(spec["input_key"]).read_text(encoding="utf-8", errors="replace")
    for raw in text.splitlines():
        if raw.strip():
            names.add(str(json.loads(raw)["body"]["model"]))
    with read_scope(ctx.sessions) as session:
        for name in sorted(names):
            try:
                ref = resolver.resolve(session, tenant_id=ctx.tenant_id, model_id=name)
                fields = asdict(ref)
                models[name] = {k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}
            except TailorError as exc:
                models[name] = {"error": exc.to_openai(), "status": exc.status_code}
    plan = {
        "endpoint": spec["endpoint"],
        "tenant": ctx.tenant_id,
        "input": str(ctx.storage.path(spec["input_key"])),
        "models": models,
        "concurrency": settings.batch_concurrency,
        "engine": {
            "max_loaded": settings.max_loaded_models,
            "device": settings.serve_device,
            "dtype": settings.serve_dtype,
            "max_batch": settings.serve_max_batch,
            "kv_cache_mb": settings.serve_kv_cache_mb,
            "prefill_chunk": settings.serve_prefill_chunk,
            "encode_batch": settings.serve_encode_batch,
            "batch_wait_ms": settings.serve_batch_wait_ms,
        },
    }
    tmp = work / "plan.json.tmp"
    tmp.write_text(json.dumps(plan), encoding="utf-8")
    tmp.replace(work / "plan.json")


def _start_child(ctx: JobContext, work: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TAILOR_BATCH_THREADS": "1"}
    log = open(work / "child.log", "ab")  # noqa: SIM115  (the child owns it while it runs)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "tailorml.platform.jobs.batch_run", str(work)],
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=lambda: os.nice(19),  # noqa: PLW1509  (no threads run in the child yet)
        )
    finally:
        log.close()


def _stop(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _cancel_requested(ctx: JobContext) -> bool:
    with session_scope(ctx.sessions) as session:
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == ctx.job_id)))


def _new_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """The complete lines of ``path`` after byte ``offset`` (a line being written waits)."""
    if not path.exists():
        return [], offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), offset + end


def _progress(
    ctx: JobContext, work: Path, *, phase: str, extra: dict[str, Any] | None = None
) -> dict[str, int]:
    """Count new answers into the batch's result and meter their tokens, in one transaction
    that also stores how far each file was read (so nothing is counted twice)."""
    with session_scope(ctx.sessions) as session:
        job = session.get(Job, ctx.job_id, with_for_update=True)
        assert job is not None
        result = dict(job.result or {})
        offsets = dict(result.get("offsets") or {"output": 0, "errors": 0})
        counts = dict(result.get("request_counts") or {"completed": 0, "failed": 0})
        done, offsets["output"] = _new_lines(work / "output.jsonl", offsets["output"])
        failed, offsets["errors"] = _new_lines(work / "errors.jsonl", offsets["errors"])
        counts["completed"] += len(done)
        counts["failed"] += len(failed)
        usage: dict[tuple[str, str, str, int], Counts] = {}
        minute = minute_of(time.time())
        for raw in done:
            body = json.loads(raw)["response"]["body"]
            key = (ctx.tenant_id, "request", str(body.get("model", ""))[:255], minute)
            row = usage.setdefault(key, Counts())
            row.requests += 1
            row.prompt_tokens += int(body.get("usage", {}).get("prompt_tokens", 0))
            row.completion_tokens += int(body.get("usage", {}).get("completion_tokens", 0))
        if usage:
            write_buckets(session, usage)
        result.update(extra or {})
        result.update({"phase": phase, "request_counts": counts, "offsets": offsets})
        job.result = result
    return counts


def _lines(path: Path) -> list[bytes]:
    """Every complete line of ``path``."""
    return _new_lines(path, 0)[0]


def _finalize(
    ctx: JobContext, work: Path, *, expired: bool = False, cancelled: bool = False
) -> dict[str, Any]:
    """Store the output and error files; the batch's result (also kept when it is cancelled)."""
    at = {"finalizing": int(time.time())}
    counts = _progress(ctx, work, phase="finalizing", extra={"at": at})
    files: dict[str, str | None] = {"output_file_id": None, "error_file_id": None}
    with session_scope(ctx.sessions) as session:
        for name, field in (("output.jsonl", "output_file_id"), ("errors.jsonl", "error_file_id")):
            lines = _lines(work / name)
            if not lines:
                continue
            row = create_file(
                session,
                tenant_id=ctx.tenant_id,
                storage=ctx.storage,
                filename=f"{ctx.job_id}_{name.removesuffix('.jsonl')}.jsonl",
                purpose="batch_output",
                chunks=[b"\n".join(lines) + b"\n"],
                max_bytes=1 << 40,  # answers are not uploads: no upload limit
            )
            files[field] = row.id
    with session_scope(ctx.sessions) as session:
        job = session.get(Job, ctx.job_id)
        assert job is not None
        offsets = (job.result or {}).get("offsets")
    result = {"phase": "done", "request_counts": counts, "at": at, **files, "offsets": offsets}
    if expired:
        result["expired"] = True
    if cancelled:
        with session_scope(ctx.sessions) as session:
            job = session.get(Job, ctx.job_id)
            assert job is not None
            job.result = result
    return result
