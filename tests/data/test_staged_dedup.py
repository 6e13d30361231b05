"""Near-dedup as pipeline phases (summarize, merge, decide, apply) equals the in-process step.

It also resumes after a crash, gives the same verdicts when runs, merge
blocks and pair partitions are made tiny (so every bucket and partition
boundary case is crossed on a few thousand records), and runs on Ray.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tailorml.data import runner
from tailorml.data.core import Document
from tailorml.data.ops import dedup_buckets, dedup_store
from tailorml.data.ops.dedup_minhash import MinHashDedup
from tailorml.data.readers import Shard, read_documents
from tailorml.data.recipe import load_recipe
from tailorml.data.runner import run_pipeline
from tailorml.executors import ShardFailedError
from tests import fixture_data

RECIPE = "name: near\nsteps:\n  - op: minhash_dedup\n"
CHUNK = 250


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 C4 pages and 3,100 short texts, then 150 exact, 150 recased and 150 with 1 % of words edited.

    The short texts: 1,688 English statements, 800 e-mails and the first 612 Chinese
    reviews (the reviews repeat some of their own, as the source does).
    """
    c4 = fixture_data.c4_docs()
    mails = [t for split in ("train", "dev") for _, t in fixture_data.spam_rows(split)]
    short = fixture_data.english_sentences() + mails
    short += fixture_data.zh_reviews()[: 3100 - len(short)]
    assert len(short) == 3100
    texts = c4 + short
    rng = random.Random(7)
    vocabulary = " ".join(c4).split()
    for i in rng.sample(range(len(texts)), 150):
        texts.append(texts[i])
    for i in rng.sample(range(len(texts)), 150):
        texts.append(texts[i].upper())
    for i in rng.sample(range(len(c4)), 150):
        words = c4[i].split()
        for w in rng.sample(range(len(words)), max(1, len(words) // 100)):
            words[w] = rng.choice(vocabulary)
        texts.append(" ".join(words))
    rng.shuffle(texts)
    path = tmp_path_factory.mktemp("near") / "mixed.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def _reference(path: Path, **params: int) -> dict[str, str]:
    """``{removed id: reason}`` from ``MinHashDedup.run`` over the records in shard, then position order."""
    docs: list[Document] = []
    for rank in range(2):
        docs += read_documents([path], shard=Shard(rank, 2, CHUNK))
    return {d.id: v.reason for d, v in MinHashDedup(**params).run(docs) if not v.keep}


def _outcome(result: runner.RunResult) -> tuple[set[str], dict[str, str]]:
    kept = {d.id for d in runner.iter_output(result)}
    rows = [json.loads(x) for f in result.removed_files for x in f.open()]
    return kept, {r["id"]: r["reason"] for r in rows if r["op"] == "minhash_dedup"}


def test_phases_remove_what_the_in_process_step_removes(corpus: Path, tmp_path: Path) -> None:
    expected = _reference(corpus)
    assert len(expected) >= 400  # the injected copies (and C4's own near-duplicates)
    result = run_pipeline(load_recipe(RECIPE), [corpus], tmp_path, workers=1, shards=2,
                          chunk=CHUNK)  # fmt: skip
    kept, removed = _outcome(result)
    assert removed == expected
    assert len(kept) + len(removed) == result.counts["read"] == 3750
    phases = [p["phase"] for p in result.stages[0]["phases"]]
    assert phases == ["summarize", "merge", "decide", "apply"]
    assert result.shards_run == 2 + 22 + 1 + 2  # one merge task per band


def test_a_crash_in_the_apply_phase_resumes(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = runner._load_drops
    crashed: list[str] = []

    def crash_once(path: str) -> Iterator[tuple[int, str]]:
        if path.endswith("drops-00001.jsonl") and not crashed:
            crashed.append(path)
            raise RuntimeError("injected failure in the apply phase")
        return load(path)

    monkeypatch.setattr(runner, "_load_drops", crash_once)
    recipe = load_recipe(RECIPE)
    with pytest.raises(ShardFailedError) as err:
        run_pipeline(recipe, [corpus], tmp_path, workers=1, shards=2, chunk=CHUNK)
    assert list(err.value.failures) == ["s0-minhash_dedup-1"]
    result = run_pipeline(recipe, [corpus], tmp_path, workers=1, shards=2, chunk=CHUNK)
    assert (result.shards_run, result.shards_skipped) == (1, 26)  # all but the crashed apply
    kept, removed = _outcome(result)
    assert removed == _reference(corpus) and len(kept) + len(removed) == 3750


@pytest.fixture(scope="module")
def crowded(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus, 400 copies of one record (a bucket across many blocks), 30 without words."""
    lines = corpus.read_text(encoding="utf-8").splitlines()
    rng = random.Random(11)
    extra = [lines[5]] * 400 + [json.dumps({"text": "!!! ..."})] * 30
    lines += extra
    rng.shuffle(lines)
    path = tmp_path_factory.mktemp("crowded") / "crowded.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tiny_runs_blocks_and_partitions_change_no_verdict(
    crowded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dedup_store, "RUN_ROWS", 300)  # 7 or more sorted runs per shard and band
    monkeypatch.setattr(dedup_buckets, "BLOCK", 40)  # the 400 copies span ten blocks
    monkeypatch.setattr(dedup_buckets, "MIN_PARTITION_BITS", 8)  # 256 rows: 17 partitions
    monkeypatch.setattr(dedup_buckets, "CHUNK", 100)  # signatures read 100 pairs at a time
    expected = _reference(crowded, batch_size=100)  # batches of 100 records: runs of 300
    assert len(expected) >= 400 + 400
    recipe = load_recipe(RECIPE + "    batch_size: 100\n")
    result = run_pipeline(recipe, [crowded], tmp_path, workers=1, shards=2, chunk=CHUNK)
    kept, removed = _outcome(result)
    assert removed == expected
    assert len(kept) + len(removed) == result.counts["read"] == 3750 + 430
    work = tmp_path / "_work" / result.stages[0]["name"]
    meta = json.loads((work / "summary-00000.summary.json").read_text())
    assert len(meta["runs"]) >= 7 and sum(meta["runs"]) < meta["n"]  # no keys for "!!! ..."
    assert len(list(work.glob("pairs-b000-p*.u64"))) == 17


def test_merged_runs_come_out_sorted_and_never_split_a_bucket(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "runs.kp"
    runs, offset, every = [], 0, []
    with open(path, "wb") as fh:
        for size in (0, 1, 57, 300, 1000):
            entries = np.empty(size, dedup_store.KEY_POS)
            entries["key"] = rng.integers(0, 40, size)  # few keys: big buckets
            entries["pos"] = np.arange(size)
            entries.sort(order=["key", "pos"])
            entries.tofile(fh)
            every.append((entries["key"].copy(), entries["pos"].astype(np.int64) + offset))
            runs.append((offset, size))
            offset += size
    fd = os.open(path, os.O_RDONLY)
    try:
        # Each run's rows start where the previous run's end, as shards' rows do.
        sources = [dedup_buckets._Run(fd, start, size, start) for start, size in runs]
        pieces = list(dedup_buckets._merged(sources, 16))
    finally:
        os.close(fd)
    keys = np.concatenate([k for k, _ in pieces])
    rows = np.concatenate([r for _, r in pieces])
    want_k = np.concatenate([k for k, _ in every])
    want_r = np.concatenate([r for _, r in every])
    order = np.lexsort((want_r, want_k))
    assert (keys == want_k[order]).all() and (rows == want_r[order]).all()
    seen = [set(k.tolist()) for k, _ in pieces]
    assert all(not (a & b) for x, a in enumerate(seen) for b in seen[x + 1 :])


def test_the_phases_run_on_ray(corpus: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
    from tailorml.executors.ray import RayExecutor

    src = Path(__file__).resolve().parents[2] / "src"
    path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})  # fmt: skip
    try:
        result = run_pipeline(load_recipe(RECIPE), [corpus], tmp_path,
                              executor=RayExecutor(workers=2), shards=2, chunk=CHUNK)  # fmt: skip
    finally:
        ray.shutdown()
    kept, removed = _outcome(result)
    assert removed == _reference(corpus) and len(kept) + len(removed) == 3750
