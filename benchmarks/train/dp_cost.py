"""What differential privacy costs in accuracy: the same run with and without DP-SGD on SST-2.

all-MiniLM-L6-v2 (catalog ``minilm-l6``, offline) fine-tuned with LoRA (``--lora-r``, the query
and value projections, and the head) on the first ``--n-train`` sentences of SST-2's train split
(``../shared/datasets/sst2``, GLUE's copy; research use, see PROVENANCE.md there), scored on
the 872 sentences of SST-2 dev (never trained on; it is the run's validation file, evaluated
at the start and the end only). The runs share everything (seed, epochs, batch, learning rate,
warmup, max_length 64); a DP run adds Poisson batches of the same expected size, per-record
clipping at 1.0 and the noise opacus' RDP accountant asks for ``(epsilon, 1/(10 N))``, and
reports the epsilon it spent.

Why LoRA and not full fine-tuning: a DP step needs every trainable parameter's gradient per
record, and MiniLM's 11.7 M word-embedding parameters make that 32 x 11.7 M floats a step;
on this CPU a full DP step of 32 records took 15-19 s against 2 s for LoRA.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train/dp_cost.py [--epsilons 8 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SST2 = ROOT.parent / "shared" / "datasets" / "sst2"
SEED = 42


def _records(split: str, n: int | None) -> list[Any]:
    from tailorml.records import ClassificationRecord

    lines = (SST2 / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    records = []
    for line in lines[:n]:
        label, text = line.split("\t", 1)  # label first, then text_a (PROVENANCE.md)
        records.append(ClassificationRecord(text, "positive" if label == "1" else "negative"))
    return records


def run(epsilon: float | None, args: argparse.Namespace, base: Any, out: Path) -> dict[str, Any]:
    from tailorml.train.loop import TrainSpec, train
    from tailorml.train.spec import PrivacySpec

    spec = TrainSpec(
        task="classification",
        method="lora",
        lora_r=args.lora_r,
        lora_target_modules=args.lora_target_modules,
        n_epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=SEED,
        max_length=64,
        eval_every=10**9,  # validate at the start and the end only
        checkpoint_every=10**9,
        early_stopping_patience=None,
        differential_privacy=PrivacySpec(epsilon) if epsilon is not None else None,
    )
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = train(spec, base, _records("train", args.n_train), _records("dev", None), out,
                   on_event=lambda e: None)  # fmt: skip
    seconds = time.perf_counter() - start
    m = result.metrics
    return {
        "run": "no DP" if epsilon is None else f"DP, target ε={epsilon:g}",
        "dev_accuracy": m["valid_accuracy"],
        "dev_loss": m["valid_loss"],
        "base_dev_accuracy": m["base_valid_accuracy"],
        "epsilon_spent": m.get("epsilon_spent"),
        "delta": m.get("dp_delta"),
        "noise_multiplier": m.get("dp_noise_multiplier"),
        "steps": result.steps,
        "seconds": round(seconds, 1),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-target-modules", nargs="+", default=None)  # default: q, v
    parser.add_argument("--epsilons", type=float, nargs="+", default=[8.0, 1.0])
    args = parser.parse_args()
    from tailorml.models.sources import materialize

    with tempfile.TemporaryDirectory() as tmp:
        base = materialize("minilm-l6", Path(tmp) / "models")
        rows = []
        for n, epsilon in enumerate([None, *args.epsilons]):
            rows.append(run(epsilon, args, base, Path(tmp) / f"run-{n}"))
            print(json.dumps(rows[-1]), flush=True)
    print("| run | SST-2 dev accuracy | dev loss | ε spent (δ) | noise multiplier | steps | s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        spent = (
            f"{r['epsilon_spent']:.3f} ({r['delta']:.1e})"
            if r["epsilon_spent"] is not None
            else "-"
        )
        sigma = f"{r['noise_multiplier']:.3f}" if r["noise_multiplier"] is not None else "-"
        print(f"| {r['run']} | {r['dev_accuracy']:.4f} | {r['dev_loss']:.4f} | {spent} | "
              f"{sigma} | {r['steps']} | {r['seconds']} |")  # fmt: skip


if __name__ == "__main__":
    main()
