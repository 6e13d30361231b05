"""What a reader may hold: record, decompressed-size and ratio caps, and the readers that keep them.

``ReadLimits`` is set by whoever runs a pipeline (an operator, or the
platform from its settings), never by a recipe: a tenant writes ``read:``.
The pieces here are what ``readers`` builds on: a gzip stream that stops at
the caps, bounded reads and line skips, a CSV line source that bounds a
whole row, and the decoded size of each Parquet row before it becomes
Python objects.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import IO, Any

from tailorml.errors import FileFormatError, InvalidRequestError

MiB = 1024**2
SKIP_PIECE = MiB  # what skipping an oversized line holds at a time
BUFFER = 1 << 16  # read buffer: fewer system calls than the 8 KiB default on long lines


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What a reader may hold or expand; the caller's (operator's) choice, never a recipe's.

    ``max_ratio`` applies once a compressed file has expanded past
    ``ratio_floor_bytes``: real text compresses less than 20x, a
    decompression bomb about 1000x, and a small file may legitimately be a
    run of one repeated record. ``max_json_bytes`` caps a JSON (not JSONL)
    file, which is parsed whole.
    """

    max_record_bytes: int = 8 * MiB
    max_decompressed_bytes: int = 2048 * MiB
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 16 * MiB
    max_json_bytes: int = 256 * MiB

    def __post_init__(self) -> None:
        bad = [f.name for f in dataclass_fields(self) if not getattr(self, f.name) > 0]
        if bad:
            raise InvalidRequestError(f"ReadLimits: {', '.join(bad)} must be positive.")


class InflatedStream(io.RawIOBase):
    """The decompressed bytes of a gzip file, stopped at the caps of ``ReadLimits``.

    A raw stream under a ``BufferedReader``: the check runs once per buffer
    fill, not per line, so it costs the hot path nothing.
    """

    def __init__(self, path: Path, name: str, limits: ReadLimits):
        super().__init__()
        self._raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="rb")
        self._name, self._limits, self._out = name, limits, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._gz.readinto(buffer)
        self._out += n
        lim = self._limits
        if self._out > lim.max_decompressed_bytes:
            self._refuse(f"expands past {lim.max_decompressed_bytes} bytes")
        # The raw position runs ahead of what was inflated, so the ratio errs on the lenient side.
        if self._out > lim.ratio_floor_bytes and self._out > lim.max_ratio * self._raw.tell():
            self._refuse(f"expands more than {lim.max_ratio:g} times its compressed size")
        return n

    def _refuse(self, why: str) -> None:
        raise FileFormatError(
            f"{self._name} {why} when decompressed, which looks like a decompression bomb: "
            "upload the records uncompressed or split into smaller files (the limit is the "
            "operator's, ReadLimits)."
        )

    def close(self) -> None:
        try:
            self._gz.close()
            self._raw.close()
        finally:
            super().close()


def open_binary(path: Path, name: str, limits: ReadLimits) -> IO[bytes]:
    """``path`` opened for reading, inflated through the caps when it is gzipped."""
    if path.suffix.lower() == ".gz":
        return io.BufferedReader(InflatedStream(path, name, limits), BUFFER)
    return open(path, "rb", buffering=BUFFER)


def read_capped(fh: IO[bytes], cap: int) -> bytes | None:
    """The rest of ``fh`` if it holds at most ``cap`` bytes, else None (holding ``cap`` at most)."""
    data = fh.read(cap + 1)
    return None if len(data) > cap else data


def skip_line(fh: IO[bytes]) -> None:
    """Read past the rest of an oversized line, a bounded piece at a time."""
    while True:
        piece = fh.readline(SKIP_PIECE)
        if not piece or piece.endswith(b"\n"):
            return


def too_large(what: str, cap: int) -> str:
    return f"{what} is over the {cap}-byte record limit; skipped (split it into smaller records)"


class RowTooLarge(Exception):
    """Raised by the line source of a CSV reader when one row outgrows the record limit."""


def bounded_lines(fh: IO[str], cap: int, pending: list[int]) -> Iterator[str]:
    """The lines of ``fh`` for ``csv.reader``, none longer than ``cap`` and no row either.

    ``pending[0]`` counts the characters of the row being read; the caller
    zeroes it after each row. A quoted field may span lines, so a row is
    bounded here, not only a line.
    """
    readline = fh.readline
    while True:
        line = readline(cap + 1)
        if not line:
            return
        pending[0] += len(line)
        if pending[0] > cap:
            raise RowTooLarge
        yield line


def row_bytes(arr: Any) -> Any:
    """Bytes each row of an Arrow array holds once decoded, as a numpy int64 array.

    Strings and binaries count their length, dictionaries the length of the
    value each row points at, lists and structs the sum of their children, so
    a row's size is known before it becomes Python objects.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t, n = arr.type, len(arr)
    if pa.types.is_dictionary(t):
        sizes = row_bytes(arr.dictionary)
        idx = arr.indices.fill_null(0).to_numpy(zero_copy_only=False)
        return sizes[idx] if len(sizes) else np.zeros(n, np.int64)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        return pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_large_binary(t):
        return pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        child = np.concatenate([[0], np.cumsum(row_bytes(arr.values))])
        offsets = arr.offsets.to_numpy(zero_copy_only=False)
        return child[offsets[1:]] - child[offsets[:-1]]
    if pa.types.is_struct(t):
        total = np.zeros(n, np.int64)
        for child in arr.flatten():
            total += row_bytes(child)
        return total
    try:
        width = t.bit_width // 8
    except ValueError:  # not fixed-width (a fixed-size list, an extension type): share out
        width = arr.nbytes // max(n, 1)
    return np.full(n, width, np.int64)
