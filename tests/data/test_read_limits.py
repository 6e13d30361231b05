"""Read limits: what each reader does with a record, a file or an archive past its cap.

Small caps (kilobytes) stand in for the defaults (megabytes) so the tests
stay fast; the security suite (tests/security/test_api4_*) runs the
defaults against a real bomb.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tailorml.data.readers import ReadLimits, ReadOptions, input_files, read_documents
from tailorml.errors import FileFormatError, InvalidRequestError

KiB = 1024
SMALL = ReadLimits(max_record_bytes=4 * KiB, ratio_floor_bytes=64 * KiB, max_json_bytes=16 * KiB)


def _jsonl(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_long_jsonl_line_is_reported_and_the_next_line_is_read(tmp_path: Path) -> None:
    big = json.dumps({"text": "x" * (10 * KiB)})
    src = _jsonl(tmp_path / "a.jsonl", ['{"text": "one"}', big, '{"text": "three"}'])
    docs = list(read_documents([src], limits=SMALL))
    assert [d.meta["line"] for d in docs] == [1, 2, 3]
    assert docs[0].fields == {"text": "one"} and docs[2].fields == {"text": "three"}
    assert "over the 4096-byte record limit" in docs[1].meta["read_error"]
    assert len(docs[1].fields["raw"]) <= 2000  # the report keeps a head, not the record


def test_a_line_exactly_at_the_cap_is_read(tmp_path: Path) -> None:
    body = json.dumps({"text": ""})
    row = body[:-2] + "y" * (4 * KiB - len(body)) + '"}'
    assert len(row) == 4 * KiB
    docs = list(read_documents([_jsonl(tmp_path / "a.jsonl", [row, row])], limits=SMALL))
    assert all("read_error" not in d.meta for d in docs) and len(docs) == 2


def test_jsonl_keeps_what_json_accepts_and_reports_bad_bytes_per_line(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_bytes(b'{"v": NaN}\n{"t": "\xff\xfe"}\n\n   \n{"t": "\\ud800"}\n[1]\n{"t": "ok"}\n')
    docs = list(read_documents([src]))
    assert [d.meta["line"] for d in docs] == [1, 2, 5, 6, 7]
    assert docs[0].fields["v"] != docs[0].fields["v"]  # NaN, as json reads it
    assert "not valid UTF-8" in docs[1].meta["read_error"]
    assert docs[2].fields == {"t": "\ud800"}  # a lone surrogate, as before
    assert "expected a JSON object" in docs[3].meta["read_error"]
    assert docs[4].fields == {"t": "ok"}


def test_gzip_past_the_absolute_cap_stops_with_the_file_named(tmp_path: Path) -> None:
    rows = [json.dumps({"text": f"record {i} " + "abc" * 20}) for i in range(4000)]
    src = tmp_path / "sub" / "big.jsonl.gz"
    src.parent.mkdir()
    src.write_bytes(gzip.compress("\n".join(rows).encode()))
    limits = ReadLimits(max_decompressed_bytes=64 * KiB, max_ratio=1000)
    with pytest.raises(FileFormatError) as err:
        list(read_documents([tmp_path], limits=limits))
    assert err.value.message.startswith("sub/big.jsonl.gz expands past 65536 bytes")
    assert str(tmp_path) not in err.value.message


def test_gzip_ratio_applies_only_past_the_floor(tmp_path: Path) -> None:
    # One record repeated: about 300x, legitimately, but small; past the floor it is refused.
    row = json.dumps({"text": "the same sentence, again and again"}) + "\n"
    small = tmp_path / "small.jsonl.gz"
    small.write_bytes(gzip.compress(row.encode() * 1000))  # 44 KiB expanded
    assert len(list(read_documents([small], limits=SMALL))) == 1000
    big = tmp_path / "big.jsonl.gz"
    big.write_bytes(gzip.compress(row.encode() * 20000))  # 880 KiB expanded
    with pytest.raises(FileFormatError, match="more than 100 times its compressed size"):
        list(read_documents([big], limits=SMALL))


def test_corrupt_and_truncated_gzip_are_named_without_paths(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl.gz").write_bytes(b"not gzip at all")
    whole = gzip.compress(b'{"text": "x"}\n' * 5000)
    (tmp_path / "b.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    for name, why in (("a.jsonl.gz", "not a gzip file"), ("b.jsonl.gz", "truncated")):
        with pytest.raises(FileFormatError) as err:
            list(read_documents([tmp_path / name]))
        assert err.value.message.startswith(name) and why in err.value.message
        assert str(tmp_path) not in err.value.message


def test_a_json_array_over_its_cap_is_refused_with_the_fix(tmp_path: Path) -> None:
    src = tmp_path / "a.json"
    src.write_text(json.dumps([{"text": "x" * 100}] * 200))  # 23 KiB
    assert len(list(read_documents([src]))) == 200
    with pytest.raises(FileFormatError, match="convert it to JSONL"):
        list(read_documents([src], limits=SMALL))


def test_text_and_html_over_the_record_cap_are_reported(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("word " * 2000)
    (tmp_path / "ok.txt").write_text("short")
    (tmp_path / "page.html").write_text("<html><body>" + "<p>x</p>" * 1000 + "</body></html>")
    docs = {d.meta["source"]: d for d in read_documents([tmp_path], limits=SMALL)}
    assert "over the 4096-byte record limit" in docs["big.txt"].meta["read_error"]
    assert docs["ok.txt"].fields == {"text": "short"}
    assert "read_error" in docs["page.html"].meta
    lines = tmp_path / "lines"
    lines.mkdir()
    (lines / "l.txt").write_bytes(b"first\n" + b"y" * (8 * KiB) + b"\nthird\n\xff\n")
    per_line = list(read_documents([lines], ReadOptions(text_unit="line"), limits=SMALL))
    assert [d.fields.get("text") for d in per_line] == ["first", None, "third", None]
    assert "record limit" in per_line[1].meta["read_error"]
    assert "UTF-8" in per_line[3].meta["read_error"]


def test_csv_fields_up_to_the_cap_read_and_a_larger_row_stops_the_file(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    # 200 KiB fields are over the csv module's own default (128 KiB) but within the cap.
    src.write_text(f'text,label\n"{"z" * 200 * KiB}",1\nfine,0\n')
    assert [d.fields["label"] for d in read_documents([src])] == ["1", "0"]
    src.write_text(f'text,label\nfine,0\n"{"z" * 8 * KiB}\n{"q" * 8 * KiB}",1\nlater,1\n')
    docs = list(read_documents([src], limits=SMALL))
    assert docs[0].fields == {"text": "fine", "label": "0"}
    assert (
        "record limit" in docs[1].meta["read_error"]
        and "rest of the file" in (docs[1].meta["read_error"])
    )
    assert len(docs) == 2


def test_parquet_rows_over_the_cap_are_reported_without_being_converted(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "text": ["a", "b" * (8 * KiB), "c"],
            "tags": [["x"], ["y"] * 3, ["z" * (5 * KiB)]],
        }
    )
    src = tmp_path / "t.parquet"
    pq.write_table(table, src)
    docs = list(read_documents([src], limits=SMALL))
    assert docs[0].fields == {"text": "a", "tags": ["x"]}
    assert [d.meta["line"] for d in docs if "read_error" in d.meta] == [2, 3]


def test_a_parquet_dictionary_bomb_is_refused(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    # One 64 KiB value, dictionary-encoded, repeated 2,000 times: 128 MiB decoded.
    column = pa.DictionaryArray.from_arrays(pa.array([0] * 2000), pa.array(["v" * 64 * KiB]))
    src = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"text": column}), src, compression="zstd")
    assert src.stat().st_size < 64 * KiB
    with pytest.raises(FileFormatError, match="bomb.parquet expands"):
        list(read_documents([src], ReadOptions(batch_size=64)))


def test_limits_must_be_positive() -> None:
    with pytest.raises(InvalidRequestError, match="max_ratio"):
        ReadLimits(max_ratio=0)


def test_inputs_are_named_relative_to_what_was_given(tmp_path: Path) -> None:
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        _jsonl(tmp_path / sub / "part.jsonl", ['{"text": "a"}'])
    other = tmp_path / "other"
    other.mkdir()
    _jsonl(other / "part.jsonl", ['{"text": "b"}'])
    found = input_files([tmp_path / "x", tmp_path / "y", other / "part.jsonl"])
    assert [f.name for f in found] == ["part.jsonl", "part.jsonl", "part.jsonl"]
    assert len({f.stem for f in found}) == 3  # ids stay distinct even so
    named = input_files([tmp_path])
    assert [f.name for f in named] == ["other/part.jsonl", "x/part.jsonl", "y/part.jsonl"]
    with pytest.raises(InvalidRequestError) as err:
        input_files([tmp_path / "missing.jsonl"])
    assert "missing.jsonl" in err.value.message and str(tmp_path) not in err.value.message


def test_deeply_nested_lines_and_bad_meta_are_reported_not_raised(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    bad_meta = json.dumps({"text": "x", "_meta": "[[["})
    src = _jsonl(tmp_path / "a.jsonl", [deep, bad_meta, '{"text": "ok"}'])
    docs = list(read_documents([src]))
    assert "nested too deeply" in docs[0].meta["read_error"]
    assert "_meta is invalid JSON" in docs[1].meta["read_error"]
    assert docs[2].fields == {"text": "ok"}
