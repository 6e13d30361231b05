"""Near-dedup past one machine's memory: staged ``minhash_dedup`` on millions of synthetic records.

Three steps, each optional (``--steps``):

- ``generate``: a synthetic corpus streamed to
  ``benchmarks/work/near_dup_scale/records-<N>.jsonl`` (deterministic:
  the first k records are the same for every N). Short customer-like texts
  of Zipf-distributed words (8-60 words), 5 % Chinese-like character texts,
  and 15 % planted copies of a recent record: exact, recased and
  re-spaced, or with one to three words replaced (records of 30+ words).
- ``sample``: the staged pipeline (summarize, merge, decide, apply on 2
  workers; then again in one process with runs and partitions 16x
  smaller) against the in-memory ``MinHashDedup.run`` on the first
  ``--sample`` records, in the same shard-then-position order: the removed
  ids and reasons must be equal.
- ``scale``: ``run_pipeline`` with only ``minhash_dedup`` over all N
  records in a child process (2 workers, 2 shards), its whole process
  tree's peak RSS and PSS sampled every 0.1 s (``harness.TreeSampler``);
  wall time, docs/s and the time of each phase from the progress events.

Usage::

    .venv/bin/python benchmarks/data/near_dup_scale.py --records 10000000
    .venv/bin/python benchmarks/data/near_dup_scale.py --records 200000 --steps generate sample

Raw figures go to ``benchmarks/work/results/near_dup_scale-<N>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from harness import ROOT, WORK, TreeSampler, bench_env  # noqa: E402

OUT = WORK / "near_dup_scale"
RECIPE = "name: near-dup-scale\nsteps:\n  - op: minhash_dedup\n"
CHUNK = 10_000  # records per chunk dealt to a shard
BATCH = 100_000  # records generated at a time


def _vocabulary(rng: np.random.Generator, size: int = 30_000) -> np.ndarray:
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
    lengths = rng.integers(2, 10, size)
    words = {bytes(rng.choice(letters, n)).decode() for n in lengths.tolist()}
    return np.array(sorted(words), dtype=object)


def generate(n: int, path: Path, seed: int = 0) -> None:
    """Write ``n`` synthetic records to ``path`` (see the module docstring), streaming."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    vocab = _vocabulary(rng)
    han = np.array([chr(c) for c in range(0x4E00, 0x4E00 + 3000)], dtype=object)
    recent: list[str] = []  # a window of recent originals that copies are taken from
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as fh:
        for start in range(0, n, BATCH):
            size = min(BATCH, n - start)
            kinds = rng.random(size)
            lengths = rng.integers(8, 61, size)
            words = np.minimum(rng.zipf(1.2, int(lengths.sum())), len(vocab)) - 1
            ends = np.cumsum(lengths)
            lines = []
            for r in range(size):
                kind = kinds[r]
                if kind < 0.15 and recent:
                    text = recent[pick.randrange(len(recent))]
                    if kind < 0.05:
                        pass  # an exact copy
                    elif kind < 0.10 or len(text.split()) < 30:
                        text = "  ".join(text.upper().split())
                    else:
                        parts = text.split()
                        for _ in range(pick.randint(1, 3)):
                            parts[pick.randrange(len(parts))] = vocab[pick.randrange(len(vocab))]
                        text = " ".join(parts)
                elif kind < 0.20:
                    text = "".join(han[rng.integers(0, len(han), pick.randint(15, 80))])
                else:
                    text = " ".join(vocab[words[ends[r] - lengths[r] : ends[r]]])
                    if len(recent) < 50_000:
                        recent.append(text)
                    else:
                        recent[pick.randrange(len(recent))] = text
                lines.append(f'{{"id": "r{start + r}", "text": "{text}"}}\n')
            fh.write("".join(lines))
    os.replace(tmp, path)


def corpus(n: int) -> Path:
    path = OUT / f"records-{n}.jsonl"
    if not path.is_file():
        started = time.perf_counter()
        generate(n, path)
        print(f"generated {path} in {time.perf_counter() - started:.0f} s")
    return path


def check_sample(path: Path, n: int) -> dict:
    """Staged pipeline vs in-memory ``run`` on the first ``n`` records of ``path``."""
    from tailorml.data.ops import dedup_buckets, dedup_store
    from tailorml.data.ops.dedup_minhash import MinHashDedup
    from tailorml.data.readers import Shard, read_documents
    from tailorml.data.recipe import load_recipe
    from tailorml.data.runner import iter_output, run_pipeline

    sample = OUT / f"sample-{n}.jsonl"
    with open(path, encoding="utf-8") as src, open(sample, "w", encoding="utf-8") as dst:
        for _, line in zip(range(n), src, strict=False):
            dst.write(line)

    def staged_run(workers: int) -> tuple[dict[str, str], int, float]:
        out = OUT / f"sample-{n}-run"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        result = run_pipeline(load_recipe(RECIPE), [sample], out, workers=workers, shards=2,
                              chunk=CHUNK)  # fmt: skip
        seconds = time.perf_counter() - started
        rows = [json.loads(x) for f in result.removed_files for x in f.open(encoding="utf-8")]
        removed = {r["id"]: r["reason"] for r in rows if r["op"] == "minhash_dedup"}
        return removed, len(iter_output(result)), seconds

    staged, kept, staged_s = staged_run(2)
    # The same in this process with runs and partitions 16x smaller, so that at 200k records
    # the merge crosses runs (7 per shard) and decide crosses partitions (13), as at 10M.
    saved = dedup_store.RUN_ROWS, dedup_buckets.MIN_PARTITION_BITS
    dedup_store.RUN_ROWS, dedup_buckets.MIN_PARTITION_BITS = 1 << 14, 14
    try:
        small, _, _ = staged_run(1)
    finally:
        dedup_store.RUN_ROWS, dedup_buckets.MIN_PARTITION_BITS = saved
    docs = []
    for rank in range(2):  # the staged form's order: shard, then position
        docs += read_documents([sample], shard=Shard(rank, 2, CHUNK))
    started = time.perf_counter()
    memory = {d.id: v.reason for d, v in MinHashDedup().run(docs) if not v.keep}
    memory_s = time.perf_counter() - started
    return {
        "records": n,
        "removed_staged": len(staged),
        "removed_in_memory": len(memory),
        "kept": kept,
        "equal": staged == memory,
        "equal_with_small_runs_and_partitions": small == memory,
        "only_staged": len(staged.keys() - memory.keys()),
        "only_in_memory": len(memory.keys() - staged.keys()),
        "reasons_differ": sum(staged[k] != memory[k] for k in staged.keys() & memory.keys()),
        "staged_s": round(staged_s, 1),
        "in_memory_s": round(memory_s, 1),
    }


def child(path: Path, out: Path) -> None:
    """The measured process: the pipeline, and the time of each phase from its progress events."""
    from tailorml.data.recipe import load_recipe
    from tailorml.data.runner import run_pipeline

    started = time.perf_counter()
    phases: dict[str, float] = {}

    def progress(event: dict) -> None:
        if event.get("type") == "progress" and event["done"] == event["total"]:
            phases[event["phase"]] = round(time.perf_counter() - started, 1)

    shutil.rmtree(out, ignore_errors=True)
    result = run_pipeline(load_recipe(RECIPE), [path], out, workers=2, shards=2, chunk=CHUNK,
                          progress=progress)  # fmt: skip
    seconds = time.perf_counter() - started
    work = sum(f.stat().st_size for f in (out / "_work").rglob("*") if f.is_file())
    (out / "result.json").write_text(json.dumps({
        "seconds": round(seconds, 1), "counts": result.counts, "phases_done_at_s": phases,
        "work_bytes": work,
    }))  # fmt: skip


def measure(path: Path, n: int, timeout: float) -> dict:
    out = OUT / f"run-{n}"
    cmd = [str(ROOT / ".venv/bin/python"), __file__, "--child", str(path), str(out)]
    load = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=bench_env(2))
    sampler = TreeSampler(proc.pid)
    sampler.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    wall = time.perf_counter() - started
    sampler.stop()
    figures = {"records": n, "rc": rc, "wall_s": round(wall, 1),
               "peak_rss_mb": round(sampler.peak_rss / 2**20), "peak_pss_mb":
               round(sampler.peak_pss / 2**20), "processes": sampler.peak_procs,
               "loadavg_start": [round(x, 2) for x in load],
               "loadavg_end": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    if rc == 0:
        figures.update(json.loads((out / "result.json").read_text()))
        figures["docs_per_s"] = round(n / figures["seconds"])
        shutil.rmtree(out / "_work")  # tens of GB at 10M; the figures are what is kept
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=200_000)
    parser.add_argument("--steps", nargs="+", default=["generate", "sample", "scale"])
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    path = (
        corpus(args.records) if "generate" in args.steps else OUT / f"records-{args.records}.jsonl"
    )
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if "sample" in args.steps:
        report["sample"] = check_sample(path, min(args.sample, args.records))
        print(json.dumps(report["sample"]))
    if "scale" in args.steps:
        report["scale"] = measure(path, args.records, args.timeout)
        print(json.dumps(report["scale"]))
    results = WORK / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"near_dup_scale-{args.records}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
