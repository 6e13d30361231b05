"""The ``dataset`` job kind: run a recipe over a tenant's files and keep the cleaned records.

The recipe was accepted from the tenant by ``platform.recipes``; here its
ids become server paths (``bind_for_run``) and the operator's limits and
outbound policy are applied, just before the run. The runner's completion
markers make a restarted job skip the shards a dead worker had finished;
a cancel stops the run within about a second, blocked outbound calls
included. On success the records (without the runner's ``_meta``) become a
``fine-tune`` file when they validate as a training format. What the
result stores names files relative to the job's folder: server paths never
reach the tenant.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tailorml.data.readers import META_KEY
from tailorml.errors import FileFormatError, JobCancelledError, TailorError
from tailorml.platform.datasets import jsonl_rows
from tailorml.platform.db.engine import session_scope
from tailorml.platform.files import create_file
from tailorml.platform.jobs.context import JobContext
from tailorml.platform.recipes import bind_for_run
from tailorml.registry import register

SAFE = re.compile(r"[^A-Za-z0-9._-]")


@register("job_kind", "dataset")
def run_dataset(ctx: JobContext) -> dict[str, Any]:
    from tailorml.data.limits import ReadLimits
    from tailorml.data.recipe import validate_recipe
    from tailorml.data.runner import run_pipeline

    spec, work = ctx.spec, ctx.work_dir
    inputs_dir = work / "inputs"
    inputs_dir.mkdir(exist_ok=True)
    inputs = []
    for f in spec["files"]:
        # Readers pick the format from the file name; storage keys have none, so link by name.
        link = inputs_dir / f"{f['id']}-{SAFE.sub('_', f['filename'])}"
        if not link.exists():
            link.symlink_to(ctx.storage.path(f["key"]).resolve())
        inputs.append(link)
    with session_scope(ctx.sessions) as s:
        data = bind_for_run(
            s,
            tenant_id=ctx.tenant_id,
            settings=ctx.settings,
            storage=ctx.storage,
            recipe_text=spec["recipe"],
            trusted=bool(spec.get("recipe_name")),
            work_dir=work,
        )
    recipe = validate_recipe(data)
    deadline = time.time() + ctx.settings.dataset_max_seconds

    def should_stop() -> bool:
        # Past its time limit the job stops like a cancelled one; the worker's time is shared.
        return ctx.should_stop() or time.time() > deadline

    def progress(event: dict[str, Any]) -> None:
        if should_stop():
            raise JobCancelledError("Dataset job cancelled.")
        if event.get("type") == "progress":
            ctx.emit(
                {
                    "message": f"Stage {event['stage']}: {event['done']}/{event['total']} shards, "
                    f"{event.get('records', 0)} records written.",
                    "data": event,
                }
            )

    ctx.emit({"message": f"Running recipe over {len(inputs)} file(s)."})
    try:
        result = run_pipeline(
            recipe,
            inputs,
            work / "output",
            workers=ctx.settings.data_workers,
            progress=progress,
            should_stop=should_stop,
            limits=ReadLimits(
                max_record_bytes=ctx.settings.max_record_bytes,
                max_decompressed_bytes=ctx.settings.max_decompressed_bytes,
            ),
        )
    except JobCancelledError:
        if ctx.should_stop():
            raise
        raise TailorError(
            f"The dataset job ran past its limit of {ctx.settings.dataset_max_seconds:.0f} s and "
            "was stopped; split the input, or ask the operator to raise "
            "TAILOR_DATASET_MAX_SECONDS.",
            code="job_timeout",
        ) from None

    def rel(path: Path) -> str:
        return str(Path(path).resolve().relative_to(work.resolve()))

    out: dict[str, Any] = {
        "output_files": [rel(p) for p in result.output_files],
        "removed_files": [rel(p) for p in result.removed_files],
        "report_json": rel(result.report_json),
        "report_html": rel(result.report_html),
        "counts": result.counts,
        "stats": [s.to_dict() for s in result.stats],
    }

    def records() -> Iterator[bytes]:
        for row in jsonl_rows(result.output_files):
            row.pop(META_KEY, None)  # the runner's id and meta: not part of a training record
            yield (json.dumps(row, ensure_ascii=False) + "\n").encode()

    try:
        with session_scope(ctx.sessions) as s:
            row = create_file(
                s,
                tenant_id=ctx.tenant_id,
                storage=ctx.storage,
                filename=f"{spec['name']}-v{spec['version']}.jsonl",
                purpose="fine-tune",
                chunks=records(),
                max_bytes=ctx.settings.max_upload_bytes,
            )
            out["output_file"] = row.id
        ctx.emit({"message": f"Cleaned records saved as fine-tune file {row.id}."})
    except FileFormatError as exc:
        out["output_file"] = None
        out["output_file_error"] = exc.message
        ctx.emit(
            {"message": f"The records are not a training format: {exc.message}", "level": "warn"}
        )
    c = result.counts
    ctx.emit(
        {
            "message": f"Dataset ready: {json.dumps(c)}; report at "
            f"GET /v1/datasets/{ctx.job_id}/report?format=html."
        }
    )
    return out
