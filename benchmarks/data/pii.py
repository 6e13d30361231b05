"""PII detection quality per entity type: TailorML's ``detect_pii`` vs presidio-analyzer.

Two sets. **held-out** (``pii_heldout/test-v3.jsonl`` beside this file; ``--split test-v2`` and
``--split test`` for versions 2 and 1, seen since; ``--split dev-v3`` for tuning): real
Chinese and English sentences with planted PII of every type and look-alikes
that must not be redacted, built and frozen before the detector was tuned
for it (``pii_heldout/PROVENANCE.md``). Reported per type: precision and
recall (overlap), and per look-alike kind the share redacted (overlapped by
any finding). Presidio runs on it with its English pipeline, as a user
without a Chinese model would run it; types it does not claim (CN_ID,
API_KEY, URL_CREDENTIALS) show "-".

**English** (``../shared/datasets/pii_presidio_synth/synth_dataset_v2.jsonl``
(1,500 template sentences filled with fake PII; gold spans with character
offsets, see its PROVENANCE.md). Scored are the entity types both sides
claim to detect, under common names:

    EMAIL (EMAIL_ADDRESS), PHONE (PHONE_NUMBER), CREDIT_CARD, IBAN (IBAN_CODE),
    US_SSN, IP_ADDRESS, PERSON

TailorML runs twice: ``detect_pii`` (the patterns, its default) and the
``pii_redact`` operator with ``PERSON`` opted in (the patterns plus spaCy's
small English NER). Presidio runs in its own virtual environment with the
offline spaCy model (``tools/presidio_run.py``), default recognizers and
threshold. A prediction matches a gold span of the same type when they
overlap ("overlap") or have the same boundaries after stripping spaces and
punctuation at the ends ("exact"). precision = matched predictions /
predictions, recall = matched gold spans / gold spans, per type.

**cost**: milliseconds per record of the default patterns on PII-poor text
(C4 pages, ChnSentiCorp reviews), what every record of a pipeline pays.

Run: ``.venv/bin/python benchmarks/data/pii.py [--set heldout|english|cost|all] [--label NAME]``;
to score an older version, put its ``src`` first on ``PYTHONPATH``.
Results go to ``benchmarks/work/results/pii[-<label>].json`` and stdout as Markdown.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, VENVS, WORK, run_tool  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "pii_presidio_synth" / "synth_dataset_v2.jsonl"
HELDOUT_DIR = Path(__file__).resolve().parent / "pii_heldout"
HELDOUT = HELDOUT_DIR / "test-v3.jsonl"  # test.jsonl and test-v2.jsonl were seen: --split
# Dataset / presidio names -> the common names scored here (TailorML's names).
COMMON = {
    "EMAIL_ADDRESS": "EMAIL",
    "EMAIL": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "PHONE": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "IBAN": "IBAN",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "PERSON": "PERSON",
}
TYPES = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "PERSON"]
HELDOUT_TYPES = [
    "EMAIL",
    "API_KEY",
    "PHONE",
    "CN_ID",
    "CREDIT_CARD",
    "IBAN",
    "IP_ADDRESS",
    "URL_CREDENTIALS",
    "US_SSN",
    "PERSON",
]
DECOY_KINDS = ["VERSION", "BAD_OCTET", "ORDER_NO", "BAD_CN_ID", "DATE", "AMOUNT", "NOT_NAME"]
# Types presidio's default recognizers claim (the held-out set's other types show "-").
PRESIDIO_TYPES = {"EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "PERSON"}
_EDGE = " \t\n.,;:!?\"'()[]<>"

Span3 = tuple[int, int, str]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _EDGE:
        start += 1
    while end > start and text[end - 1] in _EDGE:
        end -= 1
    return start, end


def match_counts(
    texts: list[str], gold: list[list[Span3]], pred: list[list[Span3]], types: list[str] = TYPES
) -> dict:
    """Per type: gold, predicted, and matched counts under overlap and exact criteria."""
    out = {t: dict.fromkeys(("gold", "pred", "tp_pred", "tp_gold", "exact"), 0) for t in types}
    for text, g_spans, p_spans in zip(texts, gold, pred, strict=True):
        for t in types:
            g = [_trim(text, s, e) for s, e, k in g_spans if k == t]
            p = [_trim(text, s, e) for s, e, k in p_spans if k == t]
            c = out[t]
            c["gold"] += len(g)
            c["pred"] += len(p)
            c["tp_pred"] += sum(any(ps < ge and gs < pe for gs, ge in g) for ps, pe in p)
            c["tp_gold"] += sum(any(ps < ge and gs < pe for ps, pe in p) for gs, ge in g)
            c["exact"] += len(set(g) & set(p))
    for c in out.values():
        c["precision"] = round(c["tp_pred"] / c["pred"], 3) if c["pred"] else None
        c["recall"] = round(c["tp_gold"] / c["gold"], 3) if c["gold"] else None
        c["exact_precision"] = round(c["exact"] / c["pred"], 3) if c["pred"] else None
        c["exact_recall"] = round(c["exact"] / c["gold"], 3) if c["gold"] else None
    return out


def decoy_counts(decoys: list[list[tuple[int, int, str]]], pred: list[list[Span3]]) -> dict:
    """Per look-alike kind: how many there are and how many any finding overlaps."""
    out = {k: {"n": 0, "redacted": 0} for k in DECOY_KINDS}
    for d_spans, p_spans in zip(decoys, pred, strict=True):
        for ds, de, kind in d_spans:
            out[kind]["n"] += 1
            out[kind]["redacted"] += any(ps < de and ds < pe for ps, pe, _ in p_spans)
    n = sum(c["n"] for c in out.values())
    red = sum(c["redacted"] for c in out.values())
    out["all"] = {"n": n, "redacted": red}
    for c in out.values():
        c["share"] = round(c["redacted"] / c["n"], 4) if c["n"] else None
    return out


def tailorml_predictions(texts: list[str], person: bool) -> tuple[list[list[Span3]], float]:
    from tailorml.data.ops.pii import PiiRedactor
    from tailorml.data.ops.pii_detect import ENTITY_TYPES

    op = PiiRedactor(entities=[*ENTITY_TYPES, "PERSON"] if person else list(ENTITY_TYPES))
    op.setup()
    find = op.find
    find(texts[0])  # warm-up: lazy imports and dictionaries load outside the timing
    start = time.perf_counter()
    spans = [[(s.start, s.end, s.type) for s in find(t)] for t in texts]
    return spans, time.perf_counter() - start


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown(results: dict[str, dict], types: list[str] = TYPES) -> str:
    names = list(results)
    head = "| type | gold | " + " | ".join(f"{n} P / R (exact P / R)" for n in names) + " |"
    lines = [head, "|---|---|" + "---|" * len(names)]
    for t in types:
        gold = results[names[0]]["scores"][t]["gold"]
        cells = []
        for n in names:
            c = results[n]["scores"][t]
            cells.append(
                f"{_fmt(c['precision'])} / {_fmt(c['recall'])} "
                f"({_fmt(c['exact_precision'])} / {_fmt(c['exact_recall'])})"
            )
        lines.append(f"| {t} | {gold} | " + " | ".join(cells) + " |")
    lines.append(
        "| ms per record | | " + " | ".join(f"{results[n]['ms_per_doc']:.2f}" for n in names) + " |"
    )
    return "\n".join(lines)


def heldout_markdown(results: dict[str, dict]) -> str:
    names = list(results)
    lines = [
        "| type | gold | " + " | ".join(f"{n} P / R" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for t in HELDOUT_TYPES:
        gold = results[names[0]]["scores"][t]["gold"]
        cells = []
        for n in names:
            c = results[n]["scores"][t]
            claimed = n != "presidio" or t in PRESIDIO_TYPES
            cells.append(f"{_fmt(c['precision'])} / {_fmt(c['recall'])}" if claimed else "-")
        lines.append(f"| {t} | {gold} | " + " | ".join(cells) + " |")
    lines.append("| **look-alikes redacted** | | " + " | ".join("" for _ in names) + " |")
    for k in [*DECOY_KINDS, "all"]:
        n = results[names[0]]["decoys"][k]["n"]
        if not n:
            continue  # a kind this split does not plant (NOT_NAME is version 2's)
        cells = [
            f"{results[m]['decoys'][k]['redacted']} ({100 * results[m]['decoys'][k]['share']:.1f} %)"
            for m in names
        ]
        lines.append(f"| {k} | {n} | " + " | ".join(cells) + " |")
    lines.append(
        "| ms per record | | " + " | ".join(f"{results[n]['ms_per_doc']:.3f}" for n in names) + " |"
    )
    return "\n".join(lines)


def heldout(path: Path = HELDOUT) -> dict[str, dict]:
    """TailorML (patterns; +PERSON) and presidio on a held-out mixed Chinese/English split."""
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    texts = [r["text"] for r in rows]
    gold = [[(s["start"], s["end"], s["type"]) for s in r["spans"]] for r in rows]
    decoys = [[(s["start"], s["end"], s["kind"]) for s in r["decoys"]] for r in rows]
    results: dict[str, dict] = {}
    for name, person in (("tailorml", False), ("tailorml +PERSON", True)):
        pred, seconds = tailorml_predictions(texts, person)
        results[name] = {
            "scores": match_counts(texts, gold, pred, HELDOUT_TYPES),
            "decoys": decoy_counts(decoys, pred),
            "ms_per_doc": 1000 * seconds / len(texts),
        }
    workdir = WORK / "runs" / f"pii-presidio-heldout-{path.stem}"
    if not (VENVS / "presidio" / "bin" / "python").exists():
        print("presidio is not installed (see benchmarks/README.md): TailorML only")
    elif (m := run_tool("presidio", ["--input", str(path)], workdir, mode="pii")).rc == 0:
        raw = json.loads((workdir / "predictions.json").read_text())
        pred = [[(s, e, COMMON[k]) for s, e, k, _ in spans if k in COMMON] for spans in raw]
        results["presidio"] = {
            "scores": match_counts(texts, gold, pred, HELDOUT_TYPES),
            "decoys": decoy_counts(decoys, pred),
            "ms_per_doc": 1000 * m.pipeline_s / len(texts),
        }
    return results


def english() -> dict[str, dict]:
    """TailorML and presidio on presidio-research's English synthetic set."""
    if not DATA.is_file():
        raise SystemExit(f"No PII data set at {DATA} (see shared/datasets/README.md).")
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    texts = [r["full_text"] for r in rows]
    gold = [
        [
            (s["start_position"], s["end_position"], COMMON[s["entity_type"]])
            for s in r["spans"]
            if s["entity_type"] in COMMON
        ]
        for r in rows
    ]
    results: dict[str, dict] = {}
    for name, person in (("tailorml detect_pii", False), ("tailorml +PERSON", True)):
        pred, seconds = tailorml_predictions(texts, person)
        results[name] = {
            "scores": match_counts(texts, gold, pred),
            "ms_per_doc": 1000 * seconds / len(texts),
        }
    workdir = WORK / "runs" / "pii-presidio"
    if not (VENVS / "presidio" / "bin" / "python").exists():
        print("presidio is not installed (see benchmarks/README.md): TailorML only")
    elif (m := run_tool("presidio", ["--input", str(DATA)], workdir, mode="pii")).rc == 0:
        raw = json.loads((workdir / "predictions.json").read_text())
        pred = [[(s, e, COMMON[k]) for s, e, k, _ in spans if k in COMMON] for spans in raw]
        results["presidio"] = {
            "scores": match_counts(texts, gold, pred),
            "ms_per_doc": 1000 * m.pipeline_s / len(texts),
            "peak_pss_mb": m.peak_pss_mb,
        }
    return results


def cost() -> dict[str, float]:
    """Milliseconds per record of the default patterns on text that is mostly PII-free.

    The case a pipeline pays on every record: 300 C4 web pages and the 1,200
    ChnSentiCorp dev reviews (read from the shared folder, not copied), best of 3.
    """
    from tailorml.data.ops.pii import PiiRedactor

    shared = ROOT.parent / "shared" / "datasets"
    c4 = [
        json.loads(line)["text"]
        for line in (shared / "web_c4_sample" / "c4_demo.jsonl").open(encoding="utf-8")
    ]
    lines = (shared / "chnsenticorp" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    reviews = [line.split("\t")[2] for line in lines]
    op = PiiRedactor()
    op.find(reviews[0])
    out = {}
    for name, texts in (("c4 web pages", c4), ("chnsenticorp reviews", reviews)):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for text in texts:
                op.find(text)
            best = min(best, time.perf_counter() - start)
        out[name] = round(1000 * best / len(texts), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=["heldout", "english", "cost", "all"], default="all")
    parser.add_argument("--label", default="", help="suffix of the results file (e.g. before)")
    parser.add_argument(
        "--split",
        choices=["test-v3", "test-v2", "test", "dev-v3", "dev"],
        default="test-v3",
        help="held-out split: test-v3 (default), test-v2 and test (versions 2 and 1, seen), "
        "dev-v3 and dev (for tuning)",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average at start: {load}")
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report: dict = {"date": stamp, "load": load}
    if args.set in ("heldout", "all"):
        report["heldout"] = heldout(HELDOUT_DIR / f"{args.split}.jsonl")
        report["split"] = args.split
        print(f"\nheld-out mixed Chinese/English set ({args.split}.jsonl)\n")
        print(heldout_markdown(report["heldout"]))
    if args.set in ("english", "all"):
        report["english"] = english()
        print("\nEnglish synthetic set (presidio-research)\n")
        print(markdown(report["english"]))
    if args.set in ("cost", "all"):
        report["cost"] = cost()
        print(f"\nms per record, default entities: {report['cost']}")
    out = WORK / "results" / (f"pii-{args.label}.json" if args.label else "pii.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
