"""Throughput and peak memory of the clean-up pipeline: TailorML vs datatrove, text-dedup, Data-Juicer.

Each tool runs the same pipeline over ``benchmarks/work/corpus/corpus.jsonl``
(172k real records, 31 MB of text, a third of them injected duplicates; see
``build_corpus.py``) through its driver in ``tools/`` (``contract.py`` says
what the pipeline is and how each tool approximates it), in its own virtual
environment, as a child process with 2 worker processes and
``OMP_NUM_THREADS=2``. Runs are interleaved (A B C D, A B C D, ...) because
the machine is shared; the median of the rounds is reported with every raw
figure and the load average at the start of each run.

- documents/second = input records / wall time of the whole child process
  (interpreter start and imports included: what a user waits for);
- peak memory = the peak of the summed PSS (and RSS) of the child's process tree.

``--mode minhash`` measures MinHash near-dedup alone over the same corpus
(datasketch joins then). Goal: TailorML >= 1.5x the fastest other tool, peak
memory < 1 GB.

Run: ``.venv/bin/python benchmarks/data/throughput.py [--small] [--rounds 2] [--mode pipeline]``.
Results: ``benchmarks/work/results/throughput-<mode>.json`` and Markdown on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import WORK, run_tool  # noqa: E402

CORPUS = WORK / "corpus"
TOOLS = {
    "pipeline": ["tailorml", "datatrove", "textdedup", "datajuicer"],
    "minhash": ["tailorml", "datatrove", "textdedup", "datajuicer", "datasketch"],
}


def summarize(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["rc"] == 0]
    if not ok:
        return {"failed": True, "runs": runs}
    docs = ok[0]["docs_in"]
    wall = statistics.median(r["wall_s"] for r in ok)
    return {
        "wall_s": wall,
        "docs_per_s": docs / wall,
        "pipeline_s": statistics.median(r["pipeline_s"] for r in ok),
        "peak_pss_mb": max(r["peak_pss_mb"] for r in ok),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
        "docs_in": docs,
        "docs_out": ok[0]["docs_out"],
        "runs": runs,
    }


def markdown(summary: dict[str, dict]) -> str:
    ok = {t: s for t, s in summary.items() if not s.get("failed")}
    others = [s["docs_per_s"] for t, s in ok.items() if t != "tailorml"]
    fastest = max(others) if others else None
    lines = [
        "| tool | docs/s (median) | wall s (each run) | pipeline s (median) | peak PSS MB | "
        "peak RSS MB | records kept | TailorML speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tool, s in summary.items():
        if s.get("failed"):
            lines.append(f"| {tool} | failed | | | | | | |")
            continue
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in s["runs"])
        ratio = ok["tailorml"]["docs_per_s"] / s["docs_per_s"] if "tailorml" in ok else None
        lines.append(
            f"| {tool} | {s['docs_per_s']:.0f} | {walls} | {s['pipeline_s']:.1f} | "
            f"{s['peak_pss_mb']:.0f} | {s['peak_rss_mb']:.0f} | {s['docs_out']} | "
            f"{'' if tool == 'tailorml' or ratio is None else f'{ratio:.2f}x'} |"
        )
    if fastest and "tailorml" in ok:
        lines.append(
            f"\nTailorML / fastest other tool: **{ok['tailorml']['docs_per_s'] / fastest:.2f}x** "
            "(goal >= 1.5x)."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=list(TOOLS), default="pipeline")
    parser.add_argument("--tools", nargs="+", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="the 10 %% debug corpus")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per tool run")
    args = parser.parse_args()
    tools = args.tools or TOOLS[args.mode]
    corpus = CORPUS / ("corpus_small.jsonl" if args.small else "corpus.jsonl")
    if not corpus.is_file():
        raise SystemExit(f"No corpus at {corpus}: run benchmarks/data/build_corpus.py first.")
    print(f"load average at start: {os.getloadavg()}; corpus {corpus.name}")
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    for rnd in range(args.rounds):
        for tool in tools:
            workdir = WORK / "runs" / f"throughput-{args.mode}-{tool}"
            m = run_tool(
                tool,
                ["--input", str(corpus), "--mode", args.mode, "--workers", "2"],
                workdir,
                mode=args.mode,
                timeout=args.timeout,
            )
            runs[tool].append(m.to_dict())
            print(
                f"round {rnd + 1} {tool}: rc={m.rc} wall {m.wall_s:.1f}s, "
                f"PSS {m.peak_pss_mb:.0f} MB, kept {m.docs_out}, load {m.loadavg}",
                flush=True,
            )
    summary = {t: summarize(r) for t, r in runs.items()}
    out = WORK / "results" / f"throughput-{args.mode}{'-small' if args.small else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    out.write_text(json.dumps({"date": stamp, "corpus": corpus.name, "summary": summary}, indent=1))
    print(markdown(summary))


if __name__ == "__main__":
    main()
