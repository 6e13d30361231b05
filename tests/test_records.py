"""Training-file records: the embedding pair format and its optional hard negative."""

from __future__ import annotations

import json

import pytest

from tailorml.errors import FileFormatError
from tailorml.records import EmbeddingPairRecord, parse_record, read_records, record_to_dict


def test_an_embedding_pair_may_carry_a_negative() -> None:
    pair = parse_record({"anchor": "a cat", "positive": "a kitten"})
    assert pair == EmbeddingPairRecord("a cat", "a kitten")
    assert pair.negative is None and record_to_dict(pair) == {
        "anchor": "a cat",
        "positive": "a kitten",
    }
    line = {"anchor": "a cat", "positive": "a kitten", "negative": "a car"}
    triple = parse_record(line, "embedding")
    assert isinstance(triple, EmbeddingPairRecord) and triple.negative == "a car"
    assert record_to_dict(triple) == line
    # A null negative is the same as none.
    assert parse_record({"anchor": "a", "positive": "b", "negative": None}).negative is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("negative", "reason"), [("  ", "'negative' is empty"),
                                                  (3, "'negative' must be a string, got int")])  # fmt: skip
def test_a_bad_negative_is_reported_with_its_line(tmp_path, negative, reason) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pairs.jsonl"
    lines = [
        {"anchor": "a", "positive": "b"},
        {"anchor": "c", "positive": "d", "negative": negative},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(FileFormatError) as info:
        read_records(path)
    assert info.value.problems == [(2, reason)]
