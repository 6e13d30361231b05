"""The training-record index format: round trip, order of the nearest, a half-written index."""

from __future__ import annotations

import numpy as np
import pytest

from tailorml.models.neighbors import INDEX_RECORDS, NeighborIndex, read_index, write_index


def test_round_trip_and_nearest_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    vectors = np.eye(3, dtype=np.float32)
    entries = [{"line": n, "text": t} for n, t in enumerate(["a", "b", "c"], start=1)]
    write_index(tmp_path, vectors, entries)
    index = read_index(tmp_path)
    assert index is not None and index.entries == entries
    query = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    found = index.nearest(query, 2)
    assert [f["text"] for f in found] == ["b", "a"]
    assert found[0]["similarity"] == pytest.approx(0.8, abs=1e-3)
    assert len(index.nearest(query, 10)) == 3  # k above the size: all of them


def test_no_index_and_a_mismatched_one_read_as_none(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert read_index(tmp_path) is None
    write_index(tmp_path, np.eye(2, dtype=np.float32), [{"line": 1}, {"line": 2}])
    (tmp_path / INDEX_RECORDS).write_text('{"line": 1}\n')  # records of another index
    assert read_index(tmp_path) is None
    with pytest.raises(ValueError):
        write_index(tmp_path, np.eye(2), [{"line": 1}])
    assert isinstance(NeighborIndex(np.eye(1), [{}]).nearest(np.ones(1), 1), list)
