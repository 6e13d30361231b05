"""Junk recall and genuine loss of the short-text filters, beside Gopher's ``quality``.

Genuine records are real short texts from ``../shared/datasets``: Chinese
reviews (ChnSentiCorp train), English movie-review phrases and sentences
(SST-2 train, a third of them one or two words), English news titles (AG
News test), English and Chinese instructions (Alpaca, alpaca_zh, BELLE).
Into them the script plants junk of seven kinds at a fixed seed, each
built from its own lists and random draws, not from the filters' lists:
repeated characters, repeated phrases, a repeated sentence (a genuine one,
2-4 times), keyboard mash, symbol lines, placeholder replies (some not in
``boilerplate``'s shipped list) and templated spam (a few templates whose
numbers vary, 30-150 copies each).

Each filter set runs in this process over the shuffled mix, as a recipe
would: the new filters (``boilerplate``, ``repetition``, ``gibberish``,
then ``frequent_text``), each alone, and ``quality`` at its defaults (what a
user would otherwise pick) and with ``min_words: 1``. Reported: recall per
junk kind, the share of genuine records removed (per source) and the
per-record cost of each filter. The genuine sets are not clean: records a
filter removes from them are listed for a reader to judge.

    .venv/bin/python benchmarks/data/short_text_quality.py [--seed 0] [--out DIR]

writes its figures to ``benchmarks/work/results/short_text_quality.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import string
import time
from collections import Counter, defaultdict
from pathlib import Path

from tailorml.data.core import Document, Filter, GlobalStep
from tailorml.data.ops.boilerplate import BoilerplateFilter, FrequentTextFilter
from tailorml.data.ops.gibberish import GibberishFilter
from tailorml.data.ops.quality import GopherQualityFilter
from tailorml.data.ops.repetition import RepetitionFilter

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT / ".." / "shared" / "datasets"
RESULTS = ROOT / "benchmarks" / "work" / "results"


def _tsv(path: Path, column: str) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    i = lines[0].split("\t").index(column)
    return [line.split("\t")[i].strip() for line in lines[1:]]


def genuine(rng: random.Random) -> list[tuple[str, str]]:
    """(source, text) of real short records."""
    out: list[tuple[str, str]] = []
    zh = _tsv(DATASETS / "chnsenticorp" / "train.tsv", "text_a")
    out += [("chnsenticorp", t) for t in rng.sample(zh, 4000)]
    sst = _tsv(DATASETS / "sst2" / "train.tsv", "text_a")
    out += [("sst2", t) for t in rng.sample(sst, 4000)]
    with open(DATASETS / "ag_news" / "test.csv", encoding="utf-8", newline="") as f:
        titles = [row[1] for row in csv.reader(f)]
    out += [("ag_news_titles", t) for t in rng.sample(titles, 3000)]
    alpaca = [
        json.loads(line)["instruction"]
        for line in (DATASETS / "instruct_alpaca_en" / "alpaca_5000.jsonl").open(encoding="utf-8")
    ]
    out += [("alpaca_en", t) for t in rng.sample(alpaca, 2000)]
    for name in ("alpaca_zh_demo.jsonl", "Belle_open_source_1k.jsonl"):
        path = DATASETS / "instruct_zh" / name
        rows = [json.loads(line)["instruction"] for line in path.open(encoding="utf-8")]
        out += [(name.split(".")[0], t) for t in rows]
    return [(s, t) for s, t in out if t.strip()]


ZH_CHARS = "好哈啊赞顶呵嗯哦喔嘿棒爽"
EN_UNITS = ["a", "z", "o", "ha", "lol", "h", "6", "x", "hm", "wow", "1", "呵", "嘻"]
SEPARATORS = ["", " ", ", ", "，", "！", "!", "。", " ", "~"]
PHRASES_ZH = [
    "非常不错的",
    "好评",
    "很好",
    "赞",
    "五星好评",
    "不错",
    "好吃",
    "推荐",
    "质量很好",
    "快递很快",
]
PHRASES_EN = ["great", "very good", "nice", "love it", "good product", "recommend", "awesome"]
ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
SYMBOL_UNITS = list("!?.~*#=-_+@$%^&/\\|") + [
    "！",
    "？",
    "。",
    "…",
    "～",
    "★",
    "☆",
    "👍",
    "😂",
    "❤",
]
PLACEHOLDERS = [
    "默认好评",
    "默认好评！",
    "系统默认好评",
    "评价方未及时做出评价,系统默认好评!",
    "此用户没有填写评价。",
    "此用户未填写评价内容",
    "该用户未填写评价",
    "用户未及时评价，系统默认好评",
    "无",
    "无。",
    "暂无",
    "暂无评价",
    "N/A",
    "n/a",
    "NA",
    "None",
    "null",
    "No comment.",
    "This user did not leave a review.",
    "The customer did not leave a review",
    "ＮＯ ＣＯＭＭＥＮＴ",
    # Not in the shipped list: what a list alone misses.
    "该用户觉得商品较好，给出了好评",
    "好评 默认",
    "No review was written for this product",
]
TEMPLATES = [
    "加微信{n}领取优惠券，先到先得",
    "刷单兼职日赚{n}元，联系QQ{m}",
    "Buy cheap watches at www.watch{n}.com use code {m} for 50% off",
    "Congratulations! You have won a ${n} gift card, call {m} now",
    "本店新品上市，咨询电话{m}，前{n}名下单送礼品",
]


def plant(rng: random.Random, genuine_texts: list[str]) -> list[tuple[str, str]]:
    """(kind, text) of junk records, built from the lists above and random draws."""
    out: list[tuple[str, str]] = []
    for _ in range(300):
        unit = rng.choice(list(ZH_CHARS) + EN_UNITS)
        k = rng.randint(max(3, 8 // len(unit)), 20)
        sep = rng.choice(["", "", "", " "]) if len(unit) > 1 else ""
        tail = rng.choice(["", "", "！", "!!", "~", "。"])
        out.append(("repeated_char", sep.join([unit] * k) + tail))
    for _ in range(300):
        phrase = rng.choice(PHRASES_ZH + PHRASES_EN)
        k = rng.randint(3, 10)
        out.append(("repeated_phrase", rng.choice(SEPARATORS).join([phrase] * k)))
    short = [t for t in genuine_texts if 15 <= len(t) <= 80]
    for _ in range(300):
        sentence = rng.choice(short)
        k = rng.randint(2, 4)
        out.append(("repeated_sentence", rng.choice([" ", "", "\n", "  "]).join([sentence] * k)))
    for _ in range(300):
        style = rng.randrange(5)
        if style == 0:  # a run along a row, maybe repeated
            row = rng.choice(ROWS)
            i = rng.randrange(len(row) - 3)
            run = row[i : rng.randint(i + 4, len(row))]
            text = run[::-1] if rng.random() < 0.3 else run
            text = text * rng.randint(1, 3)
        elif style == 1:  # home-row and nearby keys at random
            text = "".join(rng.choice("asdfghjklqweruiop") for _ in range(rng.randint(6, 18)))
        elif style == 2:  # random case and digits
            pool = string.ascii_letters + string.digits
            text = "".join(rng.choice(pool) for _ in range(rng.randint(6, 16)))
        elif style == 3:  # several mash words
            text = " ".join(
                "".join(rng.choice("sdfghjkxcvbnm") for _ in range(rng.randint(3, 8)))
                for _ in range(rng.randint(2, 5))
            )
        else:  # random letters, any key
            text = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(6, 14)))
        out.append(("keyboard_mash", text))
    for _ in range(300):
        units = rng.sample(SYMBOL_UNITS, rng.randint(1, 4))
        text = "".join(rng.choice(units) for _ in range(rng.randint(3, 20)))
        out.append(("symbol_line", text))
    for _ in range(300):
        out.append(("boilerplate", rng.choice(PLACEHOLDERS)))
    for template in TEMPLATES:
        for _ in range(rng.randint(30, 150)):
            n, m = rng.randint(10, 9999), rng.randint(10**6, 10**9)
            out.append(("templated_spam", template.format(n=n, m=m)))
    return out


def apply(ops: list, docs: list[Document]) -> tuple[dict[str, str], dict[str, float]]:
    """Run filters and global steps in order; the reason per removed id and seconds per op."""
    removed: dict[str, str] = {}
    seconds: dict[str, float] = {}
    alive = docs
    for op in ops:
        start = time.perf_counter()
        if isinstance(op, Filter):
            kept = []
            for doc in alive:
                verdict = op.keep(doc)
                if verdict.keep:
                    kept.append(doc)
                else:
                    removed[doc.id] = verdict.reason
        else:
            assert isinstance(op, GlobalStep)
            kept = []
            for doc, verdict in op.run(iter(alive)):
                if verdict.keep:
                    kept.append(doc)
                else:
                    removed[doc.id] = verdict.reason
        seconds[op.name] = seconds.get(op.name, 0.0) + time.perf_counter() - start
        alive = kept
    return removed, seconds


def conversations() -> list[Document]:
    """The shared chat sets as OpenAI messages: what the chat recipe's filters see."""
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    docs = []
    for name in ("sharegpt_zh_1K_format.jsonl", "glaive_toolcall_en_demo.jsonl"):
        path = DATASETS / "chat_sharegpt" / name
        for k, line in enumerate(path.open(encoding="utf-8")):
            turns = json.loads(line)["conversations"]
            messages = [
                {"role": roles.get(t["from"], "tool"), "content": t["value"]} for t in turns
            ]
            docs.append(Document(f"{name}:{k}", {"messages": messages}))
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = os.getloadavg()
    rng = random.Random(args.seed)
    real = genuine(rng)
    junk = plant(rng, [t for _, t in real])
    rows = [(f"g{i}", "genuine", s, t) for i, (s, t) in enumerate(real)]
    rows += [(f"j{i}", k, "planted", t) for i, (k, t) in enumerate(junk)]
    rng.shuffle(rows)
    docs = [Document(i, {"text": t}) for i, _, _, t in rows]
    kinds = {i: k for i, k, _, _ in rows}
    sources = {i: s for i, _, s, _ in rows}
    texts = {i: t for i, _, _, t in rows}
    configs = {
        "new filters": [
            BoilerplateFilter(),
            RepetitionFilter(),
            GibberishFilter(),
            FrequentTextFilter(),
        ],
        "boilerplate": [BoilerplateFilter()],
        "repetition": [RepetitionFilter()],
        "gibberish": [GibberishFilter()],
        "frequent_text": [FrequentTextFilter()],
        "quality (defaults)": [GopherQualityFilter()],
        "quality (min_words 1)": [GopherQualityFilter(min_words=1)],
    }
    per_kind = Counter(kinds.values())
    per_source = Counter(s for i, s in sources.items() if kinds[i] == "genuine")
    report: dict = {
        "load_at_start": [round(x, 2) for x in load],
        "seed": args.seed,
        "records": len(docs),
        "genuine": per_kind["genuine"],
        "junk": len(junk),
        "per_kind": dict(per_kind),
        "configs": {},
    }
    for name, ops in configs.items():
        removed, seconds = apply(ops, docs)
        hit = Counter(kinds[i] for i in removed)
        lost_by_source = Counter(sources[i] for i in removed if kinds[i] == "genuine")
        junk_removed = sum(n for k, n in hit.items() if k != "genuine")
        report["configs"][name] = {
            "junk_recall": round(junk_removed / len(junk), 4),
            "recall_per_kind": {
                k: round(hit[k] / per_kind[k], 4) for k in sorted(per_kind) if k != "genuine"
            },
            "genuine_removed": hit["genuine"],
            "genuine_removed_share": round(hit["genuine"] / per_kind["genuine"], 4),
            "genuine_removed_per_source": {
                s: f"{lost_by_source[s]}/{per_source[s]}" for s in sorted(per_source)
            },
            "us_per_record": {op: round(1e6 * sec / len(docs), 2) for op, sec in seconds.items()},
            "genuine_removed_examples": [
                {"source": sources[i], "text": texts[i][:120], "reason": r}
                for i, r in sorted(removed.items())
                if kinds[i] == "genuine"
            ][:40],
            "junk_missed_examples": {
                k: [texts[i][:80] for i in kinds if kinds[i] == k and i not in removed][:8]
                for k in sorted(per_kind)
                if k != "genuine"
            },
        }
    chats = conversations()
    report["chat_conversations_removed"] = {}
    for op in (BoilerplateFilter(), RepetitionFilter(), GibberishFilter()):
        removed, _ = apply([op], chats)
        report["chat_conversations_removed"][op.name] = {
            "removed": f"{len(removed)}/{len(chats)}",
            "examples": [f"{i}: {r}" for i, r in sorted(removed.items())[:5]],
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "short_text_quality.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1)
    )
    print(f"load {report['load_at_start']}, seed {args.seed}, {len(docs)} records")
    print(f"({per_kind['genuine']} genuine, {len(junk)} planted junk: {dict(per_kind)})\n")
    kinds_sorted = [k for k in sorted(per_kind) if k != "genuine"]
    print("| filters | junk recall | " + " | ".join(kinds_sorted) + " | genuine removed |")
    print("|---|---|" + "---|" * len(kinds_sorted) + "---|")
    for name, r in report["configs"].items():
        cells = " | ".join(f"{r['recall_per_kind'][k]:.3f}" for k in kinds_sorted)
        share = r["genuine_removed_share"]
        print(
            f"| {name} | {r['junk_recall']:.3f} | {cells} | {r['genuine_removed']} ({share:.2%}) |"
        )
    print("\nper-record cost (us) and genuine removed per source:")
    for name, r in report["configs"].items():
        print(f"  {name}: {r['us_per_record']}  {r['genuine_removed_per_source']}")
    print(f"\nchat conversations removed: {report['chat_conversations_removed']}")
    new = report["configs"]["new filters"]
    print("\ngenuine records the new filters removed:")
    for ex in new["genuine_removed_examples"]:
        print(f"  [{ex['source']}] {ex['text']!r}  <- {ex['reason']}")
    print("\njunk the new filters missed:")
    missed: dict[str, list[str]] = defaultdict(list, new["junk_missed_examples"])
    for kind, examples in missed.items():
        if examples:
            print(f"  {kind}: {examples}")


if __name__ == "__main__":
    main()
