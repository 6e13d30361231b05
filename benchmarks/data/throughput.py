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

``--tailorml-ref REV`` (repeatable) adds the tool ``tailorml@REV``: the same
``tools/tailorml_run.py`` driver and ``.venv`` interpreter, importing that
revision's ``src/`` (exported with ``git archive REV src`` into
``benchmarks/work/refs/REV/``, first on ``PYTHONPATH``), interleaved right
after the TailorML tools already listed: a same-load before/after of the
engine. ``tailorml@REV`` may also be named in ``--tools``, e.g.
``tailorml@HEAD`` to measure the last commit rather than a working tree
that others are editing. The first TailorML tool listed is the reference of
the speed-up column; the script checks that each export is what the
interpreter imports and compares the kept ids with the reference's.

Run: ``.venv/bin/python benchmarks/data/throughput.py [--small] [--rounds 2] [--mode pipeline]
[--tools ...] [--tailorml-ref REV]``.
Results: ``benchmarks/work/results/throughput-<mode>.json`` and Markdown on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, WORK, bench_env, driver_of, kept_ids, python_of, run_tool  # noqa: E402

CORPUS = WORK / "corpus"
REFS = WORK / "refs"
TOOLS = {
    "pipeline": ["tailorml", "datatrove", "textdedup", "datajuicer"],
    "minhash": ["tailorml", "datatrove", "textdedup", "datajuicer", "datasketch"],
}


def git(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, **kw)


def export_ref(rev: str) -> tuple[str, Path]:
    """``rev``'s ``src/`` exported to ``work/refs/<rev>/src`` (never a worktree or checkout).

    Returns the full commit and the source folder, after checking that the
    driver's interpreter, in the benchmark's environment, imports ``tailorml``
    from there and not from the working tree.
    """
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}", capture_output=True, text=True)
    commit = commit.stdout.strip()
    dest = REFS / rev.replace("/", "_")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.Popen(
        ["git", "-C", str(ROOT), "archive", commit, "src"], stdout=subprocess.PIPE
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait():
        raise SystemExit(f"git archive {rev} src failed")
    src = dest / "src"
    compile_tree(src)
    # What the driver imports (every operator module included): all of it must come from src.
    probe = (
        "import sys, tailorml, tailorml.data.runner, tailorml.data.ops; "
        "print(tailorml.__file__); "
        "print(*sorted(getattr(m, '__file__', None) or '' for n, m in sys.modules.items() "
        "if n.startswith('tailorml')), sep='\\n')"
    )
    out = subprocess.run(
        [str(python_of("tailorml")), "-c", probe],
        env=bench_env(src=src),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    stray = [f for f in out if not Path(f).resolve().is_relative_to(src.resolve())]
    if stray:
        raise SystemExit(f"PYTHONPATH={src}: tailorml modules imported from elsewhere: {stray}")
    print(f"tailorml@{rev} = {commit[:12]}, imports {out[0]} ({len(out) - 1} modules, all there)")
    return commit, src


def compile_tree(src: Path) -> None:
    """Byte-compile now, so that no timed run pays for it (the first one would, not the others)."""
    subprocess.run([str(python_of("tailorml")), "-m", "compileall", "-q", str(src)], check=True)


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
    others = {t: s["docs_per_s"] for t, s in ok.items() if driver_of(t) != "tailorml"}
    fastest = max(others.values()) if others else None
    ours = [t for t in summary if driver_of(t) == "tailorml"]
    main = ours[0] if ours and ours[0] in ok else None  # the speed-up column's reference
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
        ratio = ok[main]["docs_per_s"] / s["docs_per_s"] if main else None
        lines.append(
            f"| {tool} | {s['docs_per_s']:.0f} | {walls} | {s['pipeline_s']:.1f} | "
            f"{s['peak_pss_mb']:.0f} | {s['peak_rss_mb']:.0f} | {s['docs_out']} | "
            f"{'' if tool == main or ratio is None else f'{ratio:.2f}x'} |"
        )
    if fastest and main:
        lines.append(
            f"\nTailorML ({main}) / fastest other tool ({max(others, key=others.get)}): "
            f"**{ok[main]['docs_per_s'] / fastest:.2f}x** (goal >= 1.5x)."
        )
    for tool in ours[1:]:
        if main and tool in ok:
            rate = ok[tool]["docs_per_s"]
            line = f"\n{main} / {tool}: **{ok[main]['docs_per_s'] / rate:.3f}x**"
            if fastest:
                line += f"; {tool} / fastest other tool: {rate / fastest:.2f}x"
            lines.append(line + ".")
    return "\n".join(lines)


def workdir_of(mode: str, tool: str) -> Path:
    return WORK / "runs" / f"throughput-{mode}-{tool}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=list(TOOLS), default="pipeline")
    parser.add_argument("--tools", nargs="+", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="the 10 %% debug corpus")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per tool run")
    parser.add_argument(
        "--tailorml-ref",
        metavar="REV",
        action="append",
        default=[],
        help="also run tailorml@REV: the same driver importing that git revision's src/ "
        "(repeatable; a tool tailorml@REV in --tools works too)",
    )
    args = parser.parse_args()
    tools = list(args.tools or TOOLS[args.mode])
    for rev in args.tailorml_ref:
        ours = [i for i, t in enumerate(tools) if driver_of(t) == "tailorml"]
        if f"tailorml@{rev}" not in tools:
            tools.insert(ours[-1] + 1 if ours else len(tools), f"tailorml@{rev}")
    srcs: dict[str, Path] = {}
    refs: dict[str, str] = {}
    for tool in tools:
        if driver_of(tool) == "tailorml" and tool != "tailorml":
            refs[tool], srcs[tool] = export_ref(tool.split("@", 1)[1])
    if "tailorml" in tools:
        compile_tree(ROOT / "src")
    corpus = CORPUS / ("corpus_small.jsonl" if args.small else "corpus.jsonl")
    if not corpus.is_file():
        raise SystemExit(f"No corpus at {corpus}: run benchmarks/data/build_corpus.py first.")
    print(f"load average at start: {os.getloadavg()}; corpus {corpus.name}")
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    for rnd in range(args.rounds):
        for tool in tools:
            workdir = workdir_of(args.mode, tool)
            m = run_tool(
                tool,
                ["--input", str(corpus), "--mode", args.mode, "--workers", "2"],
                workdir,
                mode=args.mode,
                timeout=args.timeout,
                src=srcs.get(tool),
            )
            runs[tool].append(m.to_dict())
            print(
                f"round {rnd + 1} {tool}: rc={m.rc} wall {m.wall_s:.1f}s, "
                f"PSS {m.peak_pss_mb:.0f} MB, kept {m.docs_out}, load {m.loadavg}",
                flush=True,
            )
    summary = {t: summarize(r) for t, r in runs.items()}
    head = git("rev-parse", "HEAD", capture_output=True, text=True).stdout.strip()
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "corpus": corpus.name}
    dirty = git("status", "--porcelain", "--", "src", capture_output=True, text=True).stdout
    record |= {"head": head, "src_changed_since_head": bool(dirty.strip()), "refs": refs}
    ours = [t for t in tools if driver_of(t) == "tailorml"]
    for tool in ours[1:]:
        a, b = (runs[t][-1] for t in (ours[0], tool))
        if a["rc"] == 0 and b["rc"] == 0:  # the last round's workdirs are still there
            same = kept_ids(workdir_of(args.mode, ours[0])) == kept_ids(workdir_of(args.mode, tool))
            record[f"same_kept_ids_{tool}"] = same
            verdict = "identical" if same else "DIFFER"
            print(f"kept ids of {ours[0]} and {tool} (last round): {verdict}")
    out = WORK / "results" / f"throughput-{args.mode}{'-small' if args.small else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record | {"summary": summary}, indent=1))
    print(markdown(summary))


if __name__ == "__main__":
    main()
