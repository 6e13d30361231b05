"""decontaminate: C4 documents with SpamAssassin dev e-mails planted in them, and reworded C4 sentences."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from tailorml.data.core import Document
from tailorml.data.ops.dedup_decontaminate import Decontaminator, read_eval_texts
from tests import fixture_data


@pytest.fixture(scope="module")
def eval_file() -> Path:
    """200 e-mails, TSV ``label`` and ``text``: the evaluation set to keep out of training."""
    return fixture_data.spam_path("dev")


@pytest.fixture(scope="module")
def eval_texts() -> list[str]:
    return [text for _, text in fixture_data.spam_rows("dev")]


def words(text: str) -> list[str]:
    """Words as the n-gram method counts them: runs of letters and digits."""
    return re.findall(r"[^\W_]+", text)


def plant(doc: str, sentence: str, rng: random.Random) -> str:
    """Insert an evaluation sentence between two paragraphs of a web page, as a scrape would."""
    paragraphs = doc.split("\n")
    paragraphs.insert(rng.randrange(len(paragraphs) + 1), sentence)
    return "\n".join(paragraphs)


def test_ngram_overlap_finds_planted_test_records(
    c4: list[str], eval_texts: list[str], eval_file: Path
) -> None:
    rng = random.Random(0)
    sizes = [len(words(s)) for s in eval_texts]
    long_records = [i for i, n in enumerate(sizes) if n >= 13]
    short_records = [i for i, n in enumerate(sizes) if 8 <= n < 13]
    tiny_records = [i for i, n in enumerate(sizes) if n < 8]
    # The dev split holds 196 e-mails of 13 words or more, 2 of 8-12 and 2 shorter.
    assert len(short_records) == 2 and len(tiny_records) == 2
    chosen = long_records[:28] + short_records
    planted = {}
    docs = []
    for i, text in enumerate(c4[:120]):
        if i < 30:
            text = plant(text, eval_texts[chosen[i]], rng)
            planted[f"c4:{i}"] = chosen[i]
        elif i < 32:  # under min_words (8): too short to mean anything, never matched
            text = plant(text, eval_texts[tiny_records[i - 30]], rng)
        docs.append(Document(f"c4:{i}", {"text": text}))
    op = Decontaminator(path=str(eval_file))
    results = list(op.run(docs))
    assert [d.id for d, _ in results] == [d.id for d in docs]
    dropped = {d.id: v.reason for d, v in results if not v.keep}
    assert set(dropped) == set(planted)  # and none of the 90 other pages
    reason = dropped["c4:0"]
    assert reason.startswith("contaminated: 13-gram overlap with evaluation record ")
    # Records are numbered from 1 in file order (after the TSV header).
    assert reason.endswith(f"record {planted['c4:0'] + 1}")
    short = dropped["c4:28"]  # an 8-12 word record counts as one n-gram of its length
    n = sizes[planted["c4:28"]]
    assert 8 <= n < 13
    assert short.startswith(f"contaminated: {n}-gram overlap with evaluation record ")


def test_minhash_finds_reworded_evaluation_records(
    pairs: list[dict], c4: list[str], tmp_path: Path
) -> None:
    eval_file = tmp_path / "eval.jsonl"
    # Sentences of C4 pages that c4_demo_200.jsonl does not hold.
    sentences = [p["a"] for p in pairs if len(p["a"].split()) >= 20][:50]
    assert len(sentences) == 50
    eval_file.write_text("\n".join(json.dumps({"prompt": s, "completion": "x"}) for s in sentences))
    # Quoted with a lead-in and the first word dropped: a light rewording that
    # exact n-gram matching of short records can miss but shingle overlap keeps.
    reworded = ["As reported : " + s.split(" ", 1)[1] for s in sentences[:20]]
    docs = [Document(f"r:{i}", {"text": t}) for i, t in enumerate(reworded)]
    docs += [Document(f"c4:{i}", {"text": t}) for i, t in enumerate(c4[:40])]
    op = Decontaminator(path=str(eval_file), method="minhash")
    dropped = {d.id: v.reason for d, v in op.run(docs) if not v.keep}
    assert set(dropped) == {f"r:{i}" for i in range(20)}
    assert "near-duplicate of evaluation record 1 (estimated Jaccard" in dropped["r:0"]


def test_reading_evaluation_files(eval_file: Path, tmp_path: Path, eval_texts: list[str]) -> None:
    assert read_eval_texts(eval_file) == eval_texts  # the text column, not the label
    (tmp_path / "e.json").write_text(
        json.dumps([{"messages": [{"role": "user", "content": "hi there"}]}])
    )
    assert read_eval_texts(tmp_path / "e.json") == ["hi there"]
    (tmp_path / "e.txt").write_text(f"{eval_texts[0]}\n\n{eval_texts[1]}\n")
    assert read_eval_texts(tmp_path / "e.txt") == [eval_texts[0], eval_texts[1]]
    with pytest.raises(Exception, match="does not exist"):
        Decontaminator(path=str(tmp_path / "missing.jsonl")).setup()
    with pytest.raises(ValidationError):
        Decontaminator(path="x", method="exact")


def test_a_record_matches_whatever_script_the_page_around_it_uses(
    eval_texts: list[str], eval_file: Path
) -> None:
    # Found on the e-mails: "CORRUPT_MSGID" was two words in an all-ASCII text and one
    # word in a text holding any other character, so a planted record went unseen in
    # pages with a curly quote. Words are the same whatever else the text holds.
    record = next(t for t in eval_texts if "_" in t and len(t.split()) >= 13)
    op = Decontaminator(path=str(eval_file))
    for page in (f"Intro.\n{record}\nEnd.", f"Intro \u2019quoted\u2019.\n{record}\nEnd \u4e2d."):
        ((_, verdict),) = op.run([Document("p", {"text": page})])
        assert not verdict.keep, page
    from tailorml.data.ops.dedup_signatures import word_hashes

    plain, marked = word_hashes(["snake_case words", "snake_case words \u2019"])
    assert len(plain) == 3 and list(marked[:3]) == list(plain)
