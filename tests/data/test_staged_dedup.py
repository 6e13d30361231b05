"""Near-dedup as pipeline phases (summarize, decide, apply) equals the in-process step, and resumes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tailorml.data import runner
from tailorml.data.core import Document
from tailorml.data.ops.dedup_minhash import MinHashDedup
from tailorml.data.readers import Shard, read_documents
from tailorml.data.recipe import load_recipe
from tailorml.data.runner import run_pipeline
from tailorml.executors import ShardFailedError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
RECIPE = "name: near\nsteps:\n  - op: minhash_dedup\n"
CHUNK = 250


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 C4 pages and 3,000 AG News items, then 150 exact, 150 recased and 150 with 1 % of words edited."""
    c4_path = DATA / "web_c4_sample" / "c4_demo.jsonl"
    ag_path = DATA / "ag_news" / "train_sample_alps10k.tsv"
    if not (c4_path.is_file() and ag_path.is_file()):
        pytest.skip(f"shared datasets not found at {DATA} (see shared/datasets/README.md)")
    c4 = [json.loads(line)["text"] for line in c4_path.read_text(encoding="utf-8").splitlines()]
    ag = [line.split("\t")[0] for line in ag_path.read_text(encoding="utf-8").splitlines()[:3000]]
    texts = c4 + ag
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


def _reference(path: Path) -> dict[str, str]:
    """``{removed id: reason}`` from ``MinHashDedup.run`` over the records in shard, then position order."""
    docs: list[Document] = []
    for rank in range(2):
        docs += read_documents([path], shard=Shard(rank, 2, CHUNK))
    return {d.id: v.reason for d, v in MinHashDedup().run(docs) if not v.keep}


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
    assert phases == ["summarize", "decide", "apply"] and result.shards_run == 5


def test_a_crash_in_the_apply_phase_resumes(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = runner._load_drops
    crashed: list[str] = []

    def crash_once(path: str) -> dict[int, str]:
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
    assert (result.shards_run, result.shards_skipped) == (1, 4)  # 2 summaries, decide, 1 apply
    kept, removed = _outcome(result)
    assert removed == _reference(corpus) and len(kept) + len(removed) == 3750
