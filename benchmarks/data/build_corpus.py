"""Build the data-preparation benchmark corpora from the real data sets in ../shared/datasets.

Two outputs, both JSONL ``{"id", "text"}`` with a ground-truth file beside them:

1. ``corpus.jsonl`` (throughput): every record of the shared text sets (C4,
   AG News, SST-2, Alpaca, MRPC, ChnSentiCorp, the gold texts of the web
   articles, ShareGPT-zh, Glaive, BELLE, Chinese Alpaca, the Presidio PII
   sentences), shuffled, plus injected copies placed after their source:
   exact copies, whitespace/case-only copies and word-edited copies whose
   true word-5-gram Jaccard to the source is known. ``corpus_truth.jsonl``
   lists every injected copy (``id``, ``of``, ``kind``, ``jaccard``).
   ``corpus_small.jsonl`` is its first 10 % for debugging runs.

2. ``quality.jsonl`` (near-dup precision/recall): pairs of a real C4 or AG
   News record and an edited copy, 400 pairs per Jaccard bin 0.5-0.6 ...
   0.9-1.0 (binned by the true Jaccard, computed after editing), plus exact
   and whitespace/case-only copies and unrelated negative controls. Sources
   are chosen so that no two of them (nor a source and a negative) have a
   Jaccard of 0.3 or more, so a pair's copy can only match its own source.
   ``quality_truth.json`` holds the pairs and the negatives.

"Jaccard" everywhere is the Jaccard similarity of the sets of word 5-grams of
the casefolded ``\\w+`` words (punctuation dropped), the definition all tools
under test approximate with MinHash.

Run: ``python benchmarks/data/build_corpus.py`` (about a minute; any Python 3.11).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "benchmarks" / "work" / "corpus"
NGRAM = 5
BINS = [(0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0)]
_WORD_RE = re.compile(r"\w+")
_SPLIT_RE = re.compile(r"(\s+)")


# --- Jaccard ground truth ------------------------------------------------------------------


def shingles(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The set of word n-grams of casefolded ``\\w+`` words (one n-gram of all words if fewer)."""
    words = _WORD_RE.findall(text.casefold())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


# --- Reading the shared data sets ------------------------------------------------------------


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _tsv(path: Path, skip_header: bool = True) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        if skip_header:
            next(rows, None)
        yield from rows


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p and p.strip())


def c4_texts(ds: Path) -> list[str]:
    return [r["text"] for r in _jsonl(ds / "web_c4_sample/c4_demo.jsonl")]


def ag_news_texts(ds: Path) -> list[str]:
    """Title + description of test.csv and train_head581.csv, descriptions of the ALPS sample."""
    out = []
    for name in ("test.csv", "train_head581.csv"):
        with (ds / "ag_news" / name).open(encoding="utf-8", newline="") as fh:
            out += [f"{title}. {desc}" for _, title, desc in csv.reader(fh)]
    out += [row[0] for row in _tsv(ds / "ag_news/train_sample_alps10k.tsv", False) if row]
    return out


def all_texts(ds: Path) -> list[tuple[str, str]]:
    """(source, text) for every record of the shared text sets."""
    out: list[tuple[str, str]] = [("c4", t) for t in c4_texts(ds)]
    out += [("ag_news", t) for t in ag_news_texts(ds)]
    for name in ("train.tsv", "dev.tsv"):
        out += [("sst2", row[1]) for row in _tsv(ds / "sst2" / name) if len(row) > 1]
    for r in _jsonl(ds / "instruct_alpaca_en/alpaca_5000.jsonl"):
        out.append(("alpaca", _join(r["instruction"], r["input"], r["output"])))
    for r in _jsonl(ds / "instruct_alpaca_en/seed_tasks.jsonl"):
        turns = [_join(i["input"], i["output"]) for i in r["instances"]]
        out.append(("alpaca_seed", _join(r["instruction"], *turns)))
    for name in ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt"):
        for row in _tsv(ds / "dedup_pairs" / name):
            out += [("mrpc", s) for s in row[3:5]]
    for row in _tsv(ds / "chnsenticorp/train.tsv"):
        out.append(("chnsenticorp", row[1]))
    for row in _tsv(ds / "chnsenticorp/dev.tsv"):
        out.append(("chnsenticorp", row[2]))
    gold = json.loads((ds / "web_article_extraction/ground-truth.json").read_text("utf-8"))
    out += [("web_gold", v["articleBody"]) for v in gold.values()]
    for name in ("sharegpt_zh_1K_format.jsonl", "glaive_toolcall_en_demo.jsonl"):
        for r in _jsonl(ds / "chat_sharegpt" / name):
            out.append((name.split("_")[0], _join(*(t["value"] for t in r["conversations"]))))
    for name in ("alpaca_zh_demo.jsonl", "Belle_open_source_1k.jsonl"):
        for r in _jsonl(ds / "instruct_zh" / name):
            out.append(("instruct_zh", _join(r["instruction"], r["input"], r["output"])))
    out += [
        ("pii", r["full_text"]) for r in _jsonl(ds / "pii_presidio_synth/synth_dataset_v2.jsonl")
    ]
    return [(s, t) for s, t in out if t.strip()]


# --- Making copies ---------------------------------------------------------------------------


def case_ws_copy(text: str, rng: random.Random) -> str:
    """The same words with other letter case and spacing (Jaccard 1.0 after casefolding)."""
    parts = _SPLIT_RE.split(text)
    style = rng.choice(["upper", "lower", "title", "mixed"])
    out = []
    for p in parts:
        if p.isspace():
            out.append(rng.choice([p, p + " ", "  ", "\n" if "\n" not in p else p, "\t"]))
        elif style == "mixed" and rng.random() < 0.3:
            out.append(p.swapcase())
        else:
            out.append({"upper": p.upper(), "lower": p.lower(), "title": p.title()}.get(style, p))
    return "  " + "".join(out) + " \n"


def _edit_once(words: list[list[str]], rng: random.Random, vocab: list[str], ends: bool) -> None:
    """One edit in place of ``[word, following space]`` pairs: substitute, delete, insert, swap.

    With ``ends`` the edit falls within three words of the start or the end.
    """
    n = len(words)
    if ends:
        i = rng.choice([rng.randrange(min(3, n)), n - 1 - rng.randrange(min(3, n))])
    else:
        i = rng.randrange(n)
    op = rng.random()
    if op < 0.4:
        words[i][0] = rng.choice(vocab)
    elif op < 0.6 and n > 8:
        del words[i]
    elif op < 0.85:
        words.insert(i, [rng.choice(vocab), " "])
    elif i + 1 < n:
        words[i][0], words[i + 1][0] = words[i + 1][0], words[i][0]


def edited_copy(
    text: str, lo: float, hi: float, rng: random.Random, vocab: list[str], tries: int = 6
) -> tuple[str, float] | None:
    """A word-edited copy with true Jaccard in ``[lo, hi)`` of ``text``, or None if not reached.

    Edits are applied one at a time (each word keeps the spacing that followed
    it) until the Jaccard falls into the range; a try that jumps past it is
    retried, later tries editing near the ends, where one edit touches fewer
    5-grams (what short documents need to stay above 0.9).
    """
    base = shingles(text)
    if len(base) < 4:
        return None
    tokens = _SPLIT_RE.split(text) + [""]
    for attempt in range(tries):
        words = [[w, s] for w, s in zip(tokens[::2], tokens[1::2], strict=False)]
        ends = attempt >= tries // 2
        for _ in range(4 * len(words)):
            _edit_once(words, rng, vocab, ends)
            candidate = "".join(w + s for w, s in words)
            j = jaccard(base, shingles(candidate))
            if j < lo:
                break
            if j < hi:
                return candidate, j
    return None


# --- The throughput corpus -------------------------------------------------------------------


def build_corpus(ds: Path, out: Path, seed: int, dup_share: float) -> None:
    rng = random.Random(seed)
    records = all_texts(ds)
    rng.shuffle(records)
    docs = [{"id": f"{src}-{i}", "text": t} for i, (src, t) in enumerate(records)]
    vocab = [w for d in rng.sample(docs, 3000) for w in d["text"].split()[:50]]
    # Copies go after their source, in a random later position.
    inserts: dict[int, list[dict]] = defaultdict(list)
    truth = []
    for i, doc in enumerate(docs):
        if rng.random() >= dup_share:
            continue
        # Only documents of 20+ word 5-grams can be edited to a chosen Jaccard.
        editable = len(doc["text"].split()) >= 24
        kind = rng.choices(["exact", "case_ws", "edited"], [1, 1, 2 if editable else 0])[0]
        text, j = doc["text"], 1.0
        if kind == "case_ws":
            text = case_ws_copy(text, rng)
        elif kind == "edited":
            lo = rng.choice([b[0] for b in BINS])
            made = edited_copy(text, lo, lo + 0.1, rng, vocab, tries=4)
            if made is None:
                kind = "exact"
            else:
                text, j = made
        copy = {"id": f"dup-{len(truth)}", "text": text}
        inserts[rng.randrange(i, len(docs))].append(copy)
        truth.append({"id": copy["id"], "of": doc["id"], "kind": kind, "jaccard": round(j, 4)})
    out.mkdir(parents=True, exist_ok=True)
    n_docs = n_bytes = 0
    small_limit = (len(docs) + len(truth)) // 10
    with (
        (out / "corpus.jsonl").open("w", encoding="utf-8") as fh,
        (out / "corpus_small.jsonl").open("w", encoding="utf-8") as small,
    ):
        for i, doc in enumerate(docs):
            for row in [doc, *inserts.get(i, [])]:
                line = json.dumps(row, ensure_ascii=False) + "\n"
                fh.write(line)
                if n_docs < small_limit:
                    small.write(line)
                n_docs += 1
                n_bytes += len(row["text"].encode("utf-8"))
    with (out / "corpus_truth.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(t) + "\n" for t in truth)
    kinds = defaultdict(int)
    for t in truth:
        kinds[t["kind"]] += 1
    print(
        f"corpus.jsonl: {n_docs} docs, {n_bytes / 1e6:.1f} MB of text, "
        f"{len(truth)} injected copies {dict(kinds)}"
    )


# --- The near-duplicate quality set ----------------------------------------------------------


def isolated_sources(texts: list[str], min_shingles: int, limit: float = 0.3) -> list[int]:
    """Indices of texts with no other text at Jaccard >= ``limit`` (nor an exact twin)."""
    sets = [shingles(t) for t in texts]
    index: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for g in s:
            index[g].append(i)
    keep = []
    for i, s in enumerate(sets):
        if len(s) < min_shingles:
            continue
        overlap: dict[int, int] = defaultdict(int)
        for g in s:
            for k in index[g]:
                if k != i:
                    overlap[k] += 1
        if all(c / (len(s) + len(sets[k]) - c) < limit for k, c in overlap.items()):
            keep.append(i)
    return keep


def build_quality(ds: Path, out: Path, seed: int, per_bin: int) -> None:
    rng = random.Random(seed + 1)
    c4 = c4_texts(ds)
    ag = ag_news_texts(ds)
    texts = c4 + ag
    source = ["c4"] * len(c4) + ["ag_news"] * len(ag)
    pool = isolated_sources(texts, min_shingles=12)
    rng.shuffle(pool)
    c4_pool = [i for i in pool if source[i] == "c4"]
    ag_pool = [i for i in pool if source[i] == "ag_news"]
    vocab = [w for i in rng.sample(ag_pool, 2000) for w in texts[i].split()]
    docs: list[dict] = []
    pairs: list[dict] = []

    def add_pair(i: int, copy: str, kind: str, j: float) -> None:
        a, b = f"q{len(docs)}", f"q{len(docs) + 1}"
        docs.extend([{"id": a, "text": texts[i]}, {"id": b, "text": copy}])
        pairs.append({"a": a, "b": b, "kind": kind, "jaccard": round(j, 4), "source": source[i]})

    c4_share = 0.1  # C4 has 300 documents: a tenth of each bin, the rest AG News
    for lo, hi in BINS:
        made = 0
        while made < per_bin:
            use_c4 = c4_pool and made < per_bin * c4_share
            i = (c4_pool if use_c4 else ag_pool).pop()
            result = edited_copy(texts[i], lo, hi, rng, vocab)
            if result is not None:
                add_pair(i, result[0], f"edited_{lo:.1f}-{hi:.1f}", result[1])
                made += 1
    for kind, count in (("exact", per_bin // 2), ("case_ws", per_bin // 2)):
        for _ in range(count):
            i = ag_pool.pop()
            add_pair(i, texts[i] if kind == "exact" else case_ws_copy(texts[i], rng), kind, 1.0)
    negatives = []
    for i in c4_pool[:40] + ag_pool[: 4 * per_bin]:
        negatives.append(f"q{len(docs)}")
        docs.append({"id": negatives[-1], "text": texts[i]})
    order = list(range(len(docs)))
    rng.shuffle(order)
    # A pair's source always comes before its copy, so "keep the first" keeps the source.
    position = {docs[k]["id"]: n for n, k in enumerate(order)}
    for p in pairs:
        if position[p["a"]] > position[p["b"]]:
            p["a"], p["b"] = p["b"], p["a"]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "quality.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(docs[k], ensure_ascii=False) + "\n" for k in order)
    truth = {"ngram": NGRAM, "pairs": pairs, "negatives": negatives}
    (out / "quality_truth.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
    print(f"quality.jsonl: {len(docs)} docs, {len(pairs)} pairs, {len(negatives)} negatives")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dup-share", type=float, default=0.45, help="share of docs copied")
    parser.add_argument("--per-bin", type=int, default=400, help="quality pairs per Jaccard bin")
    args = parser.parse_args()
    if not args.datasets.is_dir():
        raise SystemExit(f"No shared data sets at {args.datasets}; pass --datasets PATH.")
    build_corpus(args.datasets, args.out, args.seed, args.dup_share)
    build_quality(args.datasets, args.out, args.seed, args.per_bin)


if __name__ == "__main__":
    main()
