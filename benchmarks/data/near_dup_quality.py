"""Near-duplicate detection quality per Jaccard bin: TailorML vs datatrove, text-dedup, Data-Juicer, datasketch.

Input: ``benchmarks/work/corpus/quality.jsonl`` and ``quality_truth.json``
from ``build_corpus.py``: pairs (source, edited copy) whose true word-5-gram
Jaccard is known, binned 0.5-0.6 ... 0.9-1.0, plus exact and
whitespace/case-only copies and unrelated negatives. Every tool runs its
MinHash near-dedup alone (112 permutations, word 5-grams, threshold 0.7) over
the whole file through its driver in ``tools/``; what it keeps is scored:

- a pair is *flagged* when exactly one of its two records was removed;
- recall of a bin (true Jaccard >= 0.7): flagged pairs / pairs;
- false-positive rate of a bin below 0.7 (and of the negatives): flagged / total;
- precision: flagged pairs with true Jaccard >= 0.7 over all removals
  (strict; "precision >= 0.6" also counts removals of pairs at 0.6-0.7, which
  MinHash at a 0.7 threshold cannot tell apart reliably with 112 hashes).

Run: ``.venv/bin/python benchmarks/data/near_dup_quality.py [--tools tailorml datatrove ...]``.
Results go to ``benchmarks/work/results/near_dup_quality.json`` and stdout as Markdown.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import WORK, kept_ids, run_tool  # noqa: E402

CORPUS = WORK / "corpus"
TOOLS = ["tailorml", "datatrove", "textdedup", "datajuicer", "datasketch"]
THRESHOLD = 0.7


def score(truth: dict, kept: set[str]) -> dict:
    """Per-bin flagged counts, recall / false-positive rates and overall precision."""
    bins: dict[str, dict[str, int]] = {}
    tp = fp = 0
    for p in truth["pairs"]:
        a_kept, b_kept = p["a"] in kept, p["b"] in kept
        b = bins.setdefault(p["kind"], {"pairs": 0, "flagged": 0, "both_removed": 0})
        b["pairs"] += 1
        flagged = a_kept != b_kept
        b["flagged"] += flagged
        b["both_removed"] += not a_kept and not b_kept
        if flagged and p["jaccard"] >= THRESHOLD:
            tp += 1
        elif flagged:
            fp += 1
        fp += 2 * (not a_kept and not b_kept)
    neg_removed = sum(n not in kept for n in truth["negatives"])
    fp += neg_removed
    borderline = bins.get("edited_0.6-0.7", {}).get("flagged", 0)
    for b in bins.values():
        b["rate"] = round(b["flagged"] / b["pairs"], 4)
    high = [k for k in bins if k in ("edited_0.8-0.9", "edited_0.9-1.0", "exact", "case_ws")]
    return {
        "bins": bins,
        "negatives": len(truth["negatives"]),
        "negatives_removed": neg_removed,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "precision_ge_0.6": round((tp + borderline) / (tp + fp), 4) if tp + fp else None,
        "recall_ge_0.7": round(
            tp
            / sum(
                b["pairs"]
                for k, b in bins.items()
                if not k.startswith("edited_0.5") and not k.startswith("edited_0.6")
            ),
            4,
        ),
        "recall_ge_0.8": round(
            sum(bins[k]["flagged"] for k in high) / sum(bins[k]["pairs"] for k in high), 4
        ),
    }


BIN_ORDER = [
    "edited_0.5-0.6",
    "edited_0.6-0.7",
    "edited_0.7-0.8",
    "edited_0.8-0.9",
    "edited_0.9-1.0",
    "exact",
    "case_ws",
]


def markdown(results: dict[str, dict]) -> str:
    tools = list(results)
    lines = [
        "| bin (true Jaccard) | pairs | " + " | ".join(tools) + " |",
        "|---|---|" + "---|" * len(tools),
    ]
    for k in BIN_ORDER:
        first = results[tools[0]]["score"]["bins"][k]
        what = "false-positive rate" if k in BIN_ORDER[:2] else "recall"
        cells = [f"{results[t]['score']['bins'][k]['rate']:.3f}" for t in tools]
        lines.append(
            f"| {k.removeprefix('edited_')} ({what}) | {first['pairs']} | "
            + " | ".join(cells)
            + " |"
        )
    s = {t: results[t]["score"] for t in tools}
    neg = s[tools[0]]["negatives"]
    lines.append(
        f"| negatives removed | {neg} | "
        + " | ".join(str(s[t]["negatives_removed"]) for t in tools)
        + " |"
    )
    for key in ("precision", "precision_ge_0.6", "recall_ge_0.7", "recall_ge_0.8"):
        lines.append(f"| **{key}** | | " + " | ".join(f"{s[t][key]:.4f}" for t in tools) + " |")
    lines.append(
        "| seconds (whole child process) | | "
        + " | ".join(f"{results[t]['measurement']['wall_s']:.1f}" for t in tools)
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", nargs="+", default=TOOLS, choices=TOOLS)
    parser.add_argument("--input", type=Path, default=CORPUS / "quality.jsonl")
    args = parser.parse_args()
    truth = json.loads((args.input.parent / "quality_truth.json").read_text())
    print(f"load average at start: {os.getloadavg()}")
    results = {}
    for tool in args.tools:
        workdir = WORK / "runs" / f"quality-{tool}"
        m = run_tool(
            tool, ["--input", str(args.input), "--mode", "minhash"], workdir, mode="minhash"
        )
        if m.rc:
            print(f"{tool}: failed, skipped", file=sys.stderr)
            continue
        results[tool] = {"measurement": m.to_dict(), "score": score(truth, kept_ids(workdir))}
        print(
            f"{tool}: precision {results[tool]['score']['precision']}, "
            f"recall>=0.8 {results[tool]['score']['recall_ge_0.8']}, {m.wall_s:.1f}s"
        )
    out = WORK / "results" / "near_dup_quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    out.write_text(json.dumps({"date": stamp, "results": results}, indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
