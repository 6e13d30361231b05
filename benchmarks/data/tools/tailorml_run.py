"""Driver: TailorML's data engine through its real runner (``run_pipeline``, local executor).

The recipe is the one a tenant would write; the runner plans it into
stages (normalize+length+quality streaming over ``--workers`` processes, then
exact_dedup and minhash_dedup as global stages, then pii_redact streaming
again) and writes cleaned records, removed records and a report.
"""

from __future__ import annotations

import json
import time

from contract import MIN_CHARS, NGRAM, NUM_PERM, THRESHOLD, count_lines, parse_args, write_result

from tailorml import registry
from tailorml.data.recipe import discover_ops, validate_recipe
from tailorml.data.runner import run_pipeline

MINHASH = {"op": "minhash_dedup", "num_perm": NUM_PERM, "ngram": NGRAM, "threshold": THRESHOLD}


def recipe_for(mode: str) -> tuple[dict, list[str]]:
    notes: list[str] = []
    if mode == "minhash":
        return {"name": "bench-minhash", "steps": [MINHASH]}, notes
    steps = [
        {"op": "normalize"},
        {"op": "length", "min": MIN_CHARS},
        {"op": "quality"},
        {"op": "exact_dedup"},
        MINHASH,
    ]
    discover_ops()
    if "pii_redact" in registry.names("data_op"):
        steps.append({"op": "pii_redact"})
    else:
        notes.append("pii_redact is not registered yet: the pipeline ran without PII redaction")
    return {"name": "bench-cleanup", "steps": steps}, notes


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    recipe_dict, notes = recipe_for(args.mode)
    recipe = validate_recipe(recipe_dict)
    out = args.workdir / "out"
    start = time.perf_counter()
    result = run_pipeline(recipe, [args.input], out, workers=args.workers, resume=False)
    seconds = time.perf_counter() - start
    kept = []
    for path in result.output_files:
        with path.open(encoding="utf-8") as fh:
            kept += [json.loads(line)["id"] for line in fh]
    stages = {s.op: round(s.seconds, 2) for s in result.stats}
    notes.append(f"seconds inside each op (summed over shards): {stages}")
    write_result(args.workdir, kept, seconds, count_lines(args.input), notes)


if __name__ == "__main__":
    main()
