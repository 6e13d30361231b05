"""Readers and writers on the committed real data: formats, ids, sharding, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorml.data.core import Document
from tailorml.data.readers import ReadOptions, Shard, expand_inputs, page_url, read_documents
from tailorml.data.writers import JsonlWriter, ParquetWriter
from tailorml.errors import InvalidRequestError
from tests import fixture_data


def test_tsv_with_header_gets_ids_lines_and_renamed_fields(tmp_path: Path) -> None:
    src = tmp_path / "mail.tsv"
    src.write_text("".join(fixture_data.spam_path("dev").open().readlines()[:51]))
    docs = list(read_documents([src], ReadOptions(rename={"text": "body"})))
    assert len(docs) == 50
    first = docs[0]
    # The source is named relative to what was given (here the file itself), never by its path.
    assert first.id == "mail:2" and first.meta == {"source": "mail.tsv", "line": 2}
    assert set(first.fields) == {"label", "body"} and first.fields["label"] in ("ham", "spam")
    assert first.fields["body"] == fixture_data.spam_rows("dev")[0][1]


def test_headerless_quoted_csv_keeps_multiline_rows_and_reports_bad_rows(tmp_path: Path) -> None:
    # Topic, question and answers of chatterbot conversations, written as a quoted CSV;
    # one answer is split over two lines, as spreadsheets export a cell with a newline.
    rows = [[topic, conv[0], "\n".join(conv[1:])]
            for topic in ("ai", "trivia")
            for conv in fixture_data.conversations("english", (topic,))[:10]]  # fmt: skip
    rows[2][2] = rows[2][2].replace(" ", "\n", 1)
    lines = [",".join('"' + c.replace('"', '""') + '"' for c in row) for row in rows]
    lines.insert(5, '"ai","only two columns"')
    src = tmp_path / "topics.csv"
    src.write_text("\n".join(lines) + "\n")
    opts = ReadOptions(header=False, columns=["label", "title", "text"])
    docs = list(read_documents([src], opts))
    bad = [d for d in docs if "read_error" in d.meta]
    assert len(docs) == 21 and len(bad) == 1
    assert bad[0].meta["line"] == 7 and "expected 3 columns" in bad[0].meta["read_error"]
    assert docs[0].fields["title"] == "What is AI?" and docs[0].fields["label"] == "ai"
    assert docs[2].fields["text"] == rows[2][2] and "\n" in docs[2].fields["text"]


def test_jsonl_bad_lines_become_error_docs_not_gaps(tmp_path: Path) -> None:
    rows = fixture_data.c4_path().read_text().splitlines()[:10]
    rows[3] = rows[3][:40]  # a truncated line, as an interrupted upload leaves
    src = tmp_path / "c4.jsonl"
    src.write_text("\n".join(rows) + "\n")
    docs = list(read_documents([src]))
    assert [d.meta["line"] for d in docs] == list(range(1, 11))
    assert "invalid JSON" in docs[3].meta["read_error"]
    assert all("read_error" not in d.meta for i, d in enumerate(docs) if i != 3)


def test_html_folder_reads_gzipped_pages_with_urls() -> None:
    folder = fixture_data.pages_dir()
    docs = list(read_documents([folder], shard=Shard(0, 4, 1)))  # every 4th of 24 pages
    assert len(docs) == 6
    assert all(d.fields["html"].lstrip().lower().startswith("<") for d in docs)
    assert all(d.id.endswith(":1") and "." not in d.id for d in docs)
    # Four pages in five declare a canonical URL; the reader takes it from the <link>.
    urls = [d.fields["url"] for d in docs if "url" in d.fields]
    assert len(urls) >= 4 and all(u.startswith("https://news") for u in urls)


def test_page_url_reads_canonical_link() -> None:
    page = '<html><head><link rel="canonical" href="https://x.org/a"></head><body>b</body>'
    assert page_url(page) == "https://x.org/a"


def test_text_per_file_and_per_line(tmp_path: Path) -> None:
    texts = fixture_data.c4_docs()[:3]
    for i, t in enumerate(texts):
        (tmp_path / f"doc{i}.txt").write_text(t)
    per_file = list(read_documents([tmp_path]))
    assert [d.fields["text"] for d in per_file] == texts
    per_line = list(read_documents([tmp_path / "doc0.txt"], ReadOptions(text_unit="line")))
    assert len(per_line) == len([x for x in texts[0].splitlines() if x.strip()])


def test_shards_partition_the_records() -> None:
    src = fixture_data.reviews_path()
    ids = [d.id for d in read_documents([src])]
    parts = [[d.id for d in read_documents([src], shard=Shard(r, 3, 50))] for r in range(3)]
    assert len(ids) == 1634
    assert sorted(sum(parts, [])) == sorted(ids) and len(set(sum(parts, []))) == len(ids)
    assert all(500 < len(p) < 590 for p in parts)  # 33 chunks of 50 dealt round-robin


def test_missing_inputs_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError) as err:
        expand_inputs([tmp_path / "a.jsonl", tmp_path / "b.csv"])
    assert "a.jsonl" in err.value.message and "b.csv" in err.value.message


def test_same_stem_in_two_folders_gets_distinct_ids(tmp_path: Path) -> None:
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "part.jsonl").write_text('{"text": "a"}\n')
    ids = [d.id for d in read_documents([tmp_path])]
    assert len(set(ids)) == 2


def test_jsonl_and_parquet_round_trip_id_and_meta(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    src = fixture_data.glaive_path()
    docs = [d for _, d in zip(range(25), read_documents([src]), strict=False)]
    for writer in (JsonlWriter(tmp_path / "out.jsonl"), ParquetWriter(tmp_path / "o.parquet", 10)):
        with writer:
            for d in docs:
                writer.write(Document(d.id, d.fields, {**d.meta, "score": 0.5}))
        back = list(read_documents([writer.path]))
        assert [b.id for b in back] == [d.id for d in docs]
        assert back[7].fields == docs[7].fields and back[7].meta["score"] == 0.5


def test_writer_leaves_nothing_when_the_shard_fails(tmp_path: Path) -> None:
    target = tmp_path / "part-00000.jsonl"
    with pytest.raises(RuntimeError), JsonlWriter(target) as writer:
        writer.write(Document("a:1", {"text": "x"}))
        raise RuntimeError("worker died")
    assert list(tmp_path.iterdir()) == []


def test_dumps_handles_numpy_sets_and_huge_integers() -> None:
    import numpy as np

    from tailorml.data.writers import dumps

    row = {"score": np.float32(0.5), "vec": np.arange(3), "tags": {"a"}, "zh": "于丹", 1: "k"}
    assert json.loads(dumps(row)) == {"score": 0.5, "vec": [0, 1, 2], "tags": ["a"],
                                      "zh": "于丹", "1": "k"}  # fmt: skip
    assert "于丹" in dumps(row)  # UTF-8 kept readable, not \u-escaped
    assert json.loads(dumps({"id": 2**70})) == {"id": 2**70}  # beyond orjson's 64 bits
