"""Do the attributions of ``/v1/classifications`` point at the words that decide? A deletion test.

A MiniLM classifier is fine-tuned on SST-2 sentences (the real loop), served by
the real engine, and asked ``explain: true`` for SST-2 dev sentences. For each
sentence the k tokens with the highest attribution to the predicted label are
removed and the predicted label's probability is measured again; the same is
done with k tokens drawn at random (several draws). Faithful attributions make
the probability fall more when the top tokens go than when random ones go
(the "deletion" or comprehensiveness test of DeYoung et al., ERASER 2020).

    .venv/bin/python benchmarks/eval/attribution_deletion.py [--n-train 2000] [--n-dev 200]

Prints one JSON object: the drop in probability for each removed fraction,
top against random, the share of sentences where the top tokens' drop is the
larger, the mean |convergence delta|, the classifier's dev accuracy and the
load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"
FRACTIONS = (0.1, 0.2, 0.3, 0.5)
RANDOM_DRAWS = 5
SEED = 42


def _sst2(split: str, n: int) -> list:  # type: ignore[type-arg]
    from tailorml.records import ClassificationRecord

    lines = (DATASETS / "sst2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    out = []
    for line in lines[:n]:
        label, text = line.split("\t", 1)
        out.append(ClassificationRecord(text.strip(), "positive" if label == "1" else "negative"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-dev", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from tailorml.eval.classification import load_classifier
    from tailorml.models.sources import materialize
    from tailorml.serve import Engine, ModelRef
    from tailorml.train.loop import TrainSpec, train

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="attr-deletion-"))
    base = materialize("minilm-l6", work / "cache")
    spec = TrainSpec(
        task="classification", method="full", n_epochs=1, batch_size=16, learning_rate=5e-5,
        seed=SEED, max_length=128, eval_every=10**9, checkpoint_every=10**9,
        early_stopping_patience=None, report=False,
    )  # fmt: skip
    started = time.time()
    result = train(spec, base, _sst2("train", args.n_train), _sst2("dev", 100), work / "run",
                   on_event=lambda e: None)  # fmt: skip
    train_s = time.time() - started
    dev = _sst2("dev", 872)[-args.n_dev :]  # the last n: the first 100 were validation

    engine = Engine()
    ref = ModelRef.from_folder("ft:minilm:bench:sst2:1", result.model_dir)
    model, tokenizer, labels = load_classifier(result.model_dir)
    special = set(tokenizer.all_special_ids)

    def probability(ids: list[int], target: int) -> float:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits
        return float(torch.softmax(logits, -1)[0, target])

    rng = random.Random(SEED)
    drops: dict[str, dict[str, list[float]]] = {
        f"{f:.0%}": {"top": [], "random": []} for f in FRACTIONS
    }
    deltas, correct = [], 0
    started = time.time()
    for start in range(0, len(dev), 16):
        chunk = dev[start : start + 16]
        answers, _ = engine.classify(ref, [r.text for r in chunk], explain=True)
        for record, answer in zip(chunk, answers, strict=True):
            correct += answer["label"] == record.label
            ex = answer["explanation"]
            deltas.append(abs(ex["convergence_delta"]))
            ids = tokenizer(record.text, truncation=True, max_length=128)["input_ids"]
            target = labels.index(answer["label"])
            full = probability(ids, target)
            words = [i for i, t in enumerate(ids) if t not in special]
            ranked = sorted(words, key=lambda i: -ex["attributions"][i])
            for fraction in FRACTIONS:
                k = max(1, round(fraction * len(words)))
                key = f"{fraction:.0%}"
                kept = [t for i, t in enumerate(ids) if i not in set(ranked[:k])]
                drops[key]["top"].append(full - probability(kept, target))
                draws = []
                for _ in range(RANDOM_DRAWS):
                    gone = set(rng.sample(words, k))
                    draws.append(
                        full - probability([t for i, t in enumerate(ids) if i not in gone], target)
                    )
                drops[key]["random"].append(statistics.fmean(draws))
    explain_s = time.time() - started
    out = {
        "n_train": args.n_train,
        "n_dev": len(dev),
        "dev_accuracy": correct / len(dev),
        "train_seconds": round(train_s, 1),
        "explain_seconds_per_sentence": round(explain_s / len(dev), 3),
        "mean_abs_convergence_delta": statistics.fmean(deltas),
        "deletion": {
            key: {
                "top_drop": statistics.fmean(v["top"]),
                "random_drop": statistics.fmean(v["random"]),
                "ratio": statistics.fmean(v["top"]) / max(statistics.fmean(v["random"]), 1e-9),
                "top_larger_share": sum(t > r for t, r in zip(v["top"], v["random"], strict=True))
                / len(v["top"]),
            }
            for key, v in drops.items()
        },
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
