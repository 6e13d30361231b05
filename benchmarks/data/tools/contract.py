"""What every tool driver in this folder shares: its command line, the settings, its outputs.

A driver runs one tool (in that tool's own virtual environment, so this
module uses the standard library only) over a JSONL file of ``{"id", "text"}``
records in one of two modes:

- ``pipeline``: the clean-up pipeline of the throughput benchmark, as close
  as the tool allows to: normalize (encoding repair, NFKC, control
  characters, whitespace) -> length filter (at least ``MIN_CHARS``
  characters) -> Gopher quality and repetition rules -> exact dedup ->
  MinHash near-dedup -> PII redaction;
- ``minhash``: MinHash near-dedup alone (the near-dup quality benchmark).

MinHash everywhere: ``NUM_PERM`` permutations, word ``NGRAM``-grams,
Jaccard threshold ``THRESHOLD`` (band layout: the tool's own choice for that
threshold; datatrove takes bands directly, 14 x 8 = 112, its default).

Outputs in ``--workdir``: ``kept_ids.txt`` (one kept id per line) and
``result.json`` (``seconds`` of the pipeline call, ``docs_in``,
``docs_out``, ``notes``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MIN_CHARS = 100
NUM_PERM = 112
NGRAM = 5
THRESHOLD = 0.7
DATATROVE_BANDS, DATATROVE_ROWS = 14, 8  # 112 permutations; (1/14)**(1/8) = 0.72


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--mode", choices=["pipeline", "minhash"], default="pipeline")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.input = args.input.resolve()
    args.workdir = args.workdir.resolve()
    return args


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def write_result(
    workdir: Path, kept: list[str], seconds: float, docs_in: int, notes: list[str] | None = None
) -> None:
    (workdir / "kept_ids.txt").write_text("".join(f"{i}\n" for i in kept), encoding="utf-8")
    result = {"seconds": round(seconds, 3), "docs_in": docs_in, "docs_out": len(kept)}
    result["notes"] = notes or []
    (workdir / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
