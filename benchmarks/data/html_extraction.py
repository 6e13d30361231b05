"""Main-text extraction quality of ``html_to_text`` on the 181 pages of the ScrapingHub benchmark.

Data: ``../shared/datasets/web_article_extraction`` (raw HTML pages and the
human-checked gold ``articleBody`` of each). Settings measured: every
distinct ``html_to_text`` step of the shipped recipes (``recipes/*.yaml``),
the operator's defaults, and its documented switches (``favor_precision``,
``favor_recall``, ``fast``) so a tenant can see the trade-off.

Score: token precision, recall and F1 of the extracted text against the gold
text, tokens being casefolded ``\\w+`` runs compared as multisets (computed
here, independently of ``tailorml.data.ops.html.extraction_scores``), as
the mean over pages ("macro") and over all tokens pooled ("micro"). A page
where nothing was extracted scores 0 recall.

Run: ``.venv/bin/python benchmarks/data/html_extraction.py``. Results go to
``benchmarks/work/results/html_extraction.json`` and stdout as Markdown.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, WORK  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "web_article_extraction"
_TOKEN_RE = re.compile(r"\w+")


def tokens(text: str) -> Counter:
    return Counter(_TOKEN_RE.findall(text.casefold()))


def recipe_settings() -> dict[str, dict]:
    """``{label: params}`` for every distinct html_to_text step of the shipped recipes."""
    found: dict[str, dict] = {}
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        for step in yaml.safe_load(path.read_text())["steps"]:
            if step.get("op") == "html_to_text":
                params = {k: v for k, v in step.items() if k != "op"}
                found.setdefault(
                    json.dumps(params, sort_keys=True), {"recipes": [], "params": params}
                )
                found[json.dumps(params, sort_keys=True)]["recipes"].append(path.stem)
    return {f"recipe {'+'.join(v['recipes'])}": v["params"] for v in found.values()}


def evaluate(params: dict, pages: list[tuple[str, str]]) -> dict:
    from tailorml.data.ops.html import HtmlToTextMapper

    op = HtmlToTextMapper(**params)
    op.setup()
    per_page = []
    overlap = n_pred = n_gold = empty = 0
    start = time.perf_counter()
    for html, gold in pages:
        pred = op.extract(html) or ""
        empty += not pred.strip()
        p, g = tokens(pred), tokens(gold)
        common = sum((p & g).values())
        np_, ng = sum(p.values()), sum(g.values())
        precision = common / np_ if np_ else 0.0
        recall = common / ng if ng else 0.0
        f1 = 2 * precision * recall / (precision + recall) if common else 0.0
        per_page.append((precision, recall, f1))
        overlap, n_pred, n_gold = overlap + common, n_pred + np_, n_gold + ng
    seconds = time.perf_counter() - start
    micro_p, micro_r = overlap / n_pred, overlap / n_gold
    return {
        "params": params,
        "precision": statistics.mean(x[0] for x in per_page),
        "recall": statistics.mean(x[1] for x in per_page),
        "f1": statistics.mean(x[2] for x in per_page),
        "f1_median": statistics.median(x[2] for x in per_page),
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": 2 * micro_p * micro_r / (micro_p + micro_r),
        "pages_empty": empty,
        "ms_per_page": 1000 * seconds / len(pages),
    }


def main() -> None:
    if not DATA.is_dir():
        raise SystemExit(f"No web_article_extraction data at {DATA}.")
    print(f"load average at start: {os.getloadavg()}")
    gold = json.loads((DATA / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id, item in sorted(gold.items()):
        with gzip.open(DATA / "html" / f"{page_id}.html.gz", "rt", encoding="utf-8") as fh:
            pages.append((fh.read(), item["articleBody"]))
    base = {"field": "html", "target": "text"}
    # Where a recipe only names its fields, it runs the defaults: one row says both.
    settings: dict[str, dict] = {}
    default_label = "defaults"
    for label, params in recipe_settings().items():
        params = {k: v for k, v in params.items() if k not in base}
        if params:
            settings[label] = params
        else:
            default_label += f" (= {label})"
    settings[default_label] = {}
    settings["favor_precision"] = {"favor_precision": True}
    settings["favor_recall"] = {"favor_recall": True}
    settings["fast"] = {"fast": True}
    results = {}
    for label, params in settings.items():
        results[label] = evaluate(params, pages)
        r = results[label]
        print(f"{label}: F1 {r['f1']:.3f} P {r['precision']:.3f} R {r['recall']:.3f}", flush=True)
    out = WORK / "results" / "html_extraction.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    out.write_text(json.dumps({"date": stamp, "pages": len(pages), "results": results}, indent=1))
    print(
        "| settings | precision | recall | F1 (mean) | F1 (median) | micro P / R / F1 | "
        "empty pages | ms/page |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, r in results.items():
        print(
            f"| {label} `{json.dumps(r['params'])}` | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['f1']:.3f} | {r['f1_median']:.3f} | {r['micro_precision']:.3f} / "
            f"{r['micro_recall']:.3f} / {r['micro_f1']:.3f} | {r['pages_empty']} | "
            f"{r['ms_per_page']:.0f} |"
        )


if __name__ == "__main__":
    main()
