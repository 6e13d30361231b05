"""API4 unrestricted resource consumption: what a tenant's upload makes a reader hold.

Seen: a 298 KB ``.gz`` upload expanded to one 300 MB record (worker RSS 1.36
GB, 300 MB written to disk). Readers now read through ``ReadLimits``: a
record over the cap is reported and skipped without being held, and a
compressed file expanding past the absolute or the ratio cap stops with an
error that names the file by its relative name. Memory is measured with
tracemalloc (Python's allocations, which is where a record would live), with
the default limits, so each test fails on readers without caps.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tailorml.data.readers import read_documents
from tailorml.data.recipe import load_recipe
from tailorml.data.runner import run_pipeline
from tailorml.errors import FileFormatError
from tailorml.executors import ShardFailedError

MiB = 1024**2


def _peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()``'s result (or the exception it raised) and the peak bytes it allocated."""
    tracemalloc.start()
    try:
        try:
            out: Any = fn()
        except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bomb(path: Path, expanded: int) -> Path:
    """One JSONL record of ``expanded`` bytes of one letter, gzipped (about 1000x smaller)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    with path.open("wb") as fh:
        fh.write(z.compress(b'{"text": "'))
        block = b"a" * MiB
        for _ in range(expanded // MiB):
            fh.write(z.compress(block))
        fh.write(z.compress(b'"}\n') + z.flush())
    return path


def test_api4_a_gzip_bomb_stops_in_bounded_memory(tmp_path: Path) -> None:
    src = _bomb(tmp_path / "upload.jsonl.gz", 300 * MiB)
    assert src.stat().st_size < 400_000  # the 298 KB upload of the report
    out, peak = _peak(lambda: list(read_documents([src])))
    assert isinstance(out, FileFormatError), f"the bomb was read: {type(out).__name__}"
    assert out.message.startswith("upload.jsonl.gz expands more than 100 times")
    assert str(tmp_path) not in out.message
    assert peak < 48 * MiB, f"held {peak / MiB:.0f} MiB"


def test_api4_a_gzip_past_the_absolute_cap_stops(tmp_path: Path) -> None:
    from tailorml.data.limits import ReadLimits  # here: the other tests also run on old readers

    # Text that compresses like real text (about 4x), so only the absolute cap can stop it.
    words = [f"w{i * 7919 % 100003}" for i in range(2_000_000)]
    src = tmp_path / "big.jsonl.gz"
    with gzip.open(src, "wt", compresslevel=1) as fh:
        for i in range(0, len(words), 100):
            fh.write(json.dumps({"text": " ".join(words[i : i + 100])}) + "\n")
    limits = ReadLimits(max_decompressed_bytes=4 * MiB)
    out, peak = _peak(lambda: sum(1 for _ in read_documents([src], limits=limits)))
    assert isinstance(out, FileFormatError) and "expands past 4194304 bytes" in out.message
    assert peak < 16 * MiB


def test_api4_an_oversized_jsonl_record_is_reported_not_held(tmp_path: Path) -> None:
    src = tmp_path / "records.jsonl"
    with src.open("wb") as fh:
        fh.write(b'{"text": "' + b"b" * (64 * MiB) + b'"}\n')
        fh.write(b'{"text": "the next record is read"}\n')
    out, peak = _peak(lambda: list(read_documents([src])))
    assert not isinstance(out, Exception), out
    assert "over the 8388608-byte record limit" in out[0].meta["read_error"]
    assert out[1].fields == {"text": "the next record is read"}
    assert peak < 40 * MiB, f"held {peak / MiB:.0f} MiB"


def test_api4_a_bomb_fails_the_run_and_writes_no_records(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    _bomb(inputs / "f-1-upload.jsonl.gz", 64 * MiB)
    recipe = load_recipe("name: r\nsteps:\n  - op: normalize\n")
    with pytest.raises(ShardFailedError) as err:
        run_pipeline(recipe, [inputs], tmp_path / "out", workers=1, shards=1)
    assert "f-1-upload.jsonl.gz expands more than 100 times" in err.value.message
    assert str(tmp_path) not in err.value.message
    written = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written < MiB  # nothing like the 300 MB the unbounded reader wrote
