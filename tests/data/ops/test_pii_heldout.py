"""detect_pii on the dev split of the held-out mixed Chinese/English set (benchmarks/data/pii_heldout).

The test split is the benchmark's and was never used for tuning; the dev
split, built from other sentences and half the templates, is what the
patterns were developed against, and these bounds keep them there.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tailorml.data.ops.pii_detect import detect_pii

DEV = Path(__file__).resolve().parents[3] / "benchmarks" / "data" / "pii_heldout" / "dev.jsonl"


@pytest.fixture(scope="module")
def dev() -> list[dict]:
    # Committed with the benchmark: a missing split fails the test, never skips it.
    return [json.loads(line) for line in DEV.open(encoding="utf-8")]


def test_recall_per_type_and_look_alikes_kept(dev: list[dict]) -> None:
    found_gold, gold, decoys, redacted = Counter(), Counter(), Counter(), Counter()
    for rec in dev:
        spans = detect_pii(rec["text"])
        for g in rec["spans"]:
            if g["type"] == "PERSON":
                continue  # opt-in, tested in test_pii_names
            gold[g["type"]] += 1
            found_gold[g["type"]] += any(
                s.type == g["type"] and s.start < g["end"] and g["start"] < s.end for s in spans
            )
        for d in rec["decoys"]:
            decoys[d["kind"]] += 1
            redacted[d["kind"]] += any(s.start < d["end"] and d["start"] < s.end for s in spans)
    recall = {t: found_gold[t] / gold[t] for t in gold}
    assert len(recall) == 9 and min(recall.values()) >= 0.97, recall
    # Measured: 0 of 360 look-alikes redacted (versions, bad octets, order numbers,
    # wrong ID check characters, dates, amounts).
    assert sum(redacted.values()) <= 0.01 * sum(decoys.values()), redacted
