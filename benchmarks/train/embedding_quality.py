"""Retrieval quality of a fine-tuned embedder against its base, measured through /v1/embeddings.

Data: the MSR Paraphrase Corpus (``../shared/datasets/dedup_pairs``, Dolan & Brockett 2005,
Microsoft Research's research-use licence: PROVENANCE.md there). Its official split is used
as is: the train file's paraphrase pairs (label 1, 2,753) are the fine-tuning set, as
``{"anchor": sentence 1, "positive": sentence 2}``; the test file (never trained on) is the
retrieval benchmark: each distinct sentence 1 of a paraphrase pair is a query, the corpus
is every distinct sentence 2 of the test file (1,725 pairs: the non-paraphrases' sentences
stay in as distractors, and they are hard ones, written about the same news story), and a
query's relevant documents are the sentences 2 it is paired with as a paraphrase. The
copy's double-encoding damage is repaired and ``<QUOTE>`` put back as ``"`` first.

The fine-tune goes through the platform as a tenant would do it: the file is uploaded,
a job created (full fine-tuning of all-MiniLM-L6-v2, 1 epoch, batch 32, learning rate
2e-5: the task's defaults at multiplier 1), and run by a worker (the trainer in its own
process). Both models are then asked for every query and document embedding through
``/v1/embeddings`` of the app in process (FastAPI's real stack through ``TestClient``),
and ranked by cosine. Reported: MRR@10 and nDCG@10 (binary relevance), and recall@1.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train/embedding_quality.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "datasets" / "dedup_pairs"
BASE = "minilm-l6"
ADMIN = {"Authorization": "Bearer admin-bench-key"}
K = 10


def _clean(text: str) -> str:
    try:
        text = text.encode("latin-1").decode("utf-8")  # the copy's double encoding
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return text.replace("<QUOTE>", '"').strip()


def read_pairs(name: str) -> list[tuple[int, str, str, str, str]]:
    """``(label, id 1, id 2, sentence 1, sentence 2)`` per line of an MSRP file."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()[1:]
    rows = []
    for line in lines:
        label, id1, id2, s1, s2 = line.split("\t")
        rows.append((int(label), id1, id2, _clean(s1), _clean(s2)))
    return rows


def retrieval_set() -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """Queries and corpus (by sentence id) and each query's relevant documents."""
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for label, id1, id2, s1, s2 in read_pairs("msr_paraphrase_test.txt"):
        corpus[id2] = s2
        if label == 1:
            queries[id1] = s1
            relevant.setdefault(id1, set()).add(id2)
    return queries, corpus, relevant


def scores(ranked: list[list[str]], qids: list[str], relevant: dict[str, set[str]]) -> dict:
    """MRR@K, nDCG@K (binary gains) and recall@1 over the queries."""
    mrr = ndcg = hit1 = 0.0
    for qid, docs in zip(qids, ranked, strict=True):
        rel = relevant[qid]
        first = next((r for r, d in enumerate(docs[:K], start=1) if d in rel), None)
        mrr += 1 / first if first else 0.0
        dcg = sum(1 / math.log2(r + 1) for r, d in enumerate(docs[:K], start=1) if d in rel)
        ideal = sum(1 / math.log2(r + 1) for r in range(1, min(len(rel), K) + 1))
        ndcg += dcg / ideal
        hit1 += 1.0 if docs and docs[0] in rel else 0.0
    n = len(qids)
    return {"mrr@10": mrr / n, "ndcg@10": ndcg / n, "recall@1": hit1 / n}


def embed(client: Any, headers: dict[str, str], model: str, texts: list[str]) -> Any:
    import numpy as np

    rows = []
    for start in range(0, len(texts), 128):
        res = client.post("/v1/embeddings", headers=headers,
                          json={"model": model, "input": texts[start : start + 128]})  # fmt: skip
        assert res.status_code == 200, res.text
        rows += [d["embedding"] for d in res.json()["data"]]
    return np.asarray(rows, dtype=np.float32)


def evaluate(client: Any, headers: dict[str, str], model: str) -> dict[str, Any]:
    import numpy as np

    queries, corpus, relevant = retrieval_set()
    qids, dids = list(queries), list(corpus)
    started = time.monotonic()
    q = embed(client, headers, model, [queries[i] for i in qids])
    d = embed(client, headers, model, [corpus[i] for i in dids])
    top = np.argsort(-(q @ d.T), axis=1)[:, :K]
    ranked = [[dids[j] for j in row] for row in top]
    out = scores(ranked, qids, relevant)
    out["embed_seconds"] = time.monotonic() - started
    return out


def fine_tune(client: Any, headers: dict[str, str], settings: Any, work: Path) -> str:
    """Upload the train positives, create the job, run it with a worker; the model's id."""
    from tailorml.platform.jobs.worker import Worker

    rows = [r for r in read_pairs("msr_paraphrase_train.txt") if r[0] == 1]
    path = work / "msrp_train_pairs.jsonl"
    path.write_text("".join(json.dumps({"anchor": r[3], "positive": r[4]}) + "\n" for r in rows))
    with path.open("rb") as fh:
        res = client.post("/v1/files", headers=headers, data={"purpose": "fine-tune"},
                          files={"file": (path.name, fh, "application/jsonl")})  # fmt: skip
    assert res.status_code == 200, res.text
    body = {"model": BASE, "training_file": res.json()["id"], "suffix": "msrp",
            "hyperparameters": {"n_epochs": 1, "batch_size": 32},
            "method": {"type": "supervised"}}  # fmt: skip
    job = client.post("/v1/fine_tuning/jobs", headers=headers, json=body)
    assert job.status_code == 200, job.text
    Worker(settings).run(max_jobs=1)
    done = client.get(f"/v1/fine_tuning/jobs/{job.json()['id']}", headers=headers).json()
    assert done["status"] == "succeeded", done
    print(f"fine-tuned {done['fine_tuned_model']}: {len(rows)} pairs, "
          f"{done.get('trained_tokens')} trained tokens")  # fmt: skip
    return str(done["fine_tuned_model"])


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    from fastapi.testclient import TestClient

    from tailorml.platform.api.app import create_app
    from tailorml.platform.settings import Settings

    print(f"load before: {os.getloadavg()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        settings = Settings(
            data_dir=work / "data", database_url=f"sqlite:///{work / 'tailor.db'}",
            master_secret="bench-secret", admin_key="admin-bench-key",
        )  # fmt: skip
        app = create_app(settings)
        with TestClient(app) as client:
            res = client.post("/admin/tenants", json={"name": "bench"}, headers=ADMIN)
            headers = {"Authorization": f"Bearer {res.json()['api_key']}"}
            base = evaluate(client, headers, BASE)
            started = time.monotonic()
            model = fine_tune(client, headers, settings, work)
            train_seconds = time.monotonic() - started
            tuned = evaluate(client, headers, model)
            print(f"load after: {os.getloadavg()}; fine-tuning job {train_seconds:.0f} s")
        app.state.tailor.engine.dispose()
    queries, corpus, _ = retrieval_set()
    print(f"{len(queries)} queries, {len(corpus)} documents (MSRP test split)")
    for name, row in (("base " + BASE, base), ("fine-tuned", tuned)):
        print(f"{name:>18}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
