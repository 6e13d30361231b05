"""The ``dataset`` job kind: run a recipe over a tenant's files and keep the cleaned records.

The runner's completion markers make a restarted job skip the shards a dead
worker had finished. On success the records (without the runner's ``_meta``)
become a ``fine-tune`` file when they validate as a training format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tailorml.data.readers import META_KEY
from tailorml.errors import FileFormatError
from tailorml.platform.datasets import jsonl_rows
from tailorml.platform.db.engine import session_scope
from tailorml.platform.files import create_file
from tailorml.platform.jobs.context import JobContext
from tailorml.registry import register

SAFE = re.compile(r"[^A-Za-z0-9._-]")


@register("job_kind", "dataset")
def run_dataset(ctx: JobContext) -> dict[str, Any]:
    from tailorml.data.runner import run_pipeline

    spec = ctx.spec
    inputs_dir = ctx.work_dir / "inputs"
    inputs_dir.mkdir(exist_ok=True)
    inputs = []
    for f in spec["files"]:
        # Readers pick the format from the file name; storage keys have none, so link by name.
        link = inputs_dir / f"{f['id']}-{SAFE.sub('_', f['filename'])}"
        if not link.exists():
            link.symlink_to(ctx.storage.path(f["key"]).resolve())
        inputs.append(link)
    recipe_path = ctx.work_dir / "recipe.yaml"
    recipe_path.write_text(spec["recipe"])

    def progress(event: dict[str, Any]) -> None:
        if ctx.should_stop():
            from tailorml.errors import JobCancelledError

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
    result = run_pipeline(
        recipe_path,
        inputs,
        ctx.work_dir / "output",
        workers=ctx.settings.data_workers,
        progress=progress,
    )
    out: dict[str, Any] = {
        "output_files": [str(p) for p in result.output_files],
        "removed_files": [str(p) for p in result.removed_files],
        "report_json": str(result.report_json),
        "report_html": str(result.report_html),
        "counts": result.counts,
        "stats": [s.to_dict() for s in result.stats],
    }

    def records() -> Iterator[bytes]:
        for row in jsonl_rows(out["output_files"]):
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
    ctx.emit({"message": f"Dataset ready: {json.dumps(c)}; report at {result.report_html}."})
    return out
