"""decontaminate: C4 documents with SST-2 dev sentences planted in them, and reworded MRPC sentences."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from tailorml.data.core import Document
from tailorml.data.ops.dedup_decontaminate import Decontaminator, read_eval_texts


@pytest.fixture(scope="module")
def sst2_dev_file(datasets_dir: Path) -> Path:
    return datasets_dir / "sst2" / "dev.tsv"


def plant(doc: str, sentence: str, rng: random.Random) -> str:
    """Insert an evaluation sentence between two paragraphs of a web page, as a scrape would."""
    paragraphs = doc.split("\n")
    paragraphs.insert(rng.randrange(len(paragraphs) + 1), sentence)
    return "\n".join(paragraphs)


def test_ngram_overlap_finds_planted_test_sentences(
    c4: list[str], sst2: list[str], sst2_dev_file: Path
) -> None:
    rng = random.Random(0)
    long_sentences = [i for i, s in enumerate(sst2) if len(s.split()) >= 13]
    short_sentences = [i for i, s in enumerate(sst2) if 8 <= len(s.split()) < 13]
    planted = {}
    docs = []
    for i, text in enumerate(c4[:120]):
        if i < 30:
            j = long_sentences[i] if i < 15 else short_sentences[i]
            text = plant(text, sst2[j], rng)
            planted[f"c4:{i}"] = j
        docs.append(Document(f"c4:{i}", {"text": text}))
    op = Decontaminator(path=str(sst2_dev_file))
    results = list(op.run(docs))
    assert [d.id for d, _ in results] == [d.id for d in docs]
    dropped = {d.id: v.reason for d, v in results if not v.keep}
    assert set(dropped) == set(planted)  # and none of the 90 untouched pages
    reason = dropped["c4:0"]
    assert reason.startswith("contaminated: 13-gram overlap with evaluation record ")
    # Records are numbered from 1 in file order (after the TSV header).
    assert reason.endswith(f"record {planted['c4:0'] + 1}")


def test_minhash_finds_reworded_evaluation_records(
    mrpc: list[tuple[int, str, str]], c4: list[str], tmp_path: Path
) -> None:
    eval_file = tmp_path / "eval.jsonl"
    sentences = [a for _, a, _ in mrpc if len(a.split()) >= 20][:50]
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


def test_reading_evaluation_files(sst2_dev_file: Path, tmp_path: Path, sst2: list[str]) -> None:
    assert read_eval_texts(sst2_dev_file) == sst2  # the text column, not the label
    (tmp_path / "e.json").write_text(
        json.dumps([{"messages": [{"role": "user", "content": "hi there"}]}])
    )
    assert read_eval_texts(tmp_path / "e.json") == ["hi there"]
    (tmp_path / "e.txt").write_text(f"{sst2[0]}\n\n{sst2[1]}\n")
    assert read_eval_texts(tmp_path / "e.txt") == [sst2[0], sst2[1]]
    with pytest.raises(Exception, match="does not exist"):
        Decontaminator(path=str(tmp_path / "missing.jsonl")).setup()
    with pytest.raises(ValidationError):
        Decontaminator(path="x", method="exact")
