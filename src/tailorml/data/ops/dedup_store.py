"""The files ``minhash_dedup``'s ``summarize`` writes per shard, and positioned reads of them.

Per shard stem (``_work/<stage>/summary-00000``)::

    .sig.u32                   every record's signature, n x num_perm uint32
    .sets.u32, .sets.idx.i64   each record's sorted unique shingle hashes, end to end,
                               and where each record's start (n + 1 offsets)
    .ids.utf8, .ids.idx.i64    the record ids the same way
    .band-007.kp               band 7's (key uint64, position uint32) of the records
                               with shingles, in runs sorted by key, then position
    .summary.json              n, the band layout and each run's length per band;
                               written last, so its presence says the rest is whole

Nothing is held for the whole shard while writing: records stream through
in batches, and band keys are sorted in runs of ``RUN_ROWS`` records (the
way datatrove writes sorted signature files per bucket, but bounded for any
shard size). Readers use ``os.pread`` rather than memory maps: pages of a
map that ``decide`` touches at random would count in its resident memory
until unmapped, and over 10 million records that is gigabytes.
"""

from __future__ import annotations

import bisect
import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tailorml.data.ops.dedup_lsh import lsh_bands

RUN_ROWS = 1 << 18  # records per sorted run of band keys (22 bands x 8 B x 262k = 46 MB held)
KEY_POS = np.dtype([("key", "<u8"), ("pos", "<u4")])  # packed: 12 bytes per entry
_TWO_I64 = struct.Struct("<2q")


def path_of(stem: Path, suffix: str) -> Path:
    return stem.with_name(f"{stem.name}.{suffix}")


def band_path(stem: Path, band: int) -> Path:
    return path_of(stem, f"band-{band:03d}.kp")


def _tmp(path: Path) -> Path:
    # The ``.tmp-`` mark is what the runner deletes when it finds one left by a crash.
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


class SummaryWriter:
    """Appends batches of records to a shard's summary files; ``close`` publishes them."""

    def __init__(self, stem: Path, num_perm: int, bands: int, rows: int):
        self.stem, self.num_perm, self.bands, self.rows = stem, num_perm, bands, rows
        stem.parent.mkdir(parents=True, exist_ok=True)
        names = ["sig.u32", "sets.u32", "sets.idx.i64", "ids.utf8", "ids.idx.i64"]
        names += [band_path(stem, b).name.removeprefix(stem.name + ".") for b in range(bands)]
        self.paths = [path_of(stem, n) for n in names]
        self.files = [open(_tmp(p), "wb") for p in self.paths]  # noqa: SIM115 - closed in close
        self.n = 0
        self.set_end = self.id_end = 0
        np.zeros(1, np.int64).tofile(self.files[2])
        np.zeros(1, np.int64).tofile(self.files[4])
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []  # (keys, positions) of a run
        self.pending_rows = 0
        self.runs: list[int] = []  # entries per run, the same in every band

    def add(
        self, ids: Sequence[str], signatures: np.ndarray, sets: np.ndarray, set_counts: np.ndarray
    ) -> None:
        """One batch: its ids, signatures, and unique shingle hashes end to end with their counts."""
        sig, values, sidx, blob, iidx = self.files[:5]
        signatures.astype(np.uint32, copy=False).tofile(sig)
        sets.astype(np.uint32, copy=False).tofile(values)
        (self.set_end + np.cumsum(set_counts, dtype=np.int64)).tofile(sidx)
        self.set_end += int(set_counts.sum())
        encoded = [i.encode() for i in ids]
        blob.write(b"".join(encoded))
        (self.id_end + np.cumsum([len(e) for e in encoded], dtype=np.int64)).tofile(iidx)
        self.id_end += sum(map(len, encoded))
        # Records without shingles (all-MAX32 signatures) match nothing, as in the in-memory form.
        valid = np.flatnonzero(~(signatures == np.uint32(0xFFFFFFFF)).all(axis=1))
        keys = lsh_bands(signatures[valid], self.bands, self.rows)
        self.pending.append((keys, (valid + self.n).astype(np.uint32)))
        self.n += len(ids)
        self.pending_rows += len(ids)
        if self.pending_rows >= RUN_ROWS:
            self._flush_run()

    def _flush_run(self) -> None:
        if not self.pending:
            return
        keys = np.concatenate([k for k, _ in self.pending])
        pos = np.concatenate([p for _, p in self.pending])
        self.pending, self.pending_rows = [], 0
        out = np.empty(len(pos), KEY_POS)
        for band in range(self.bands):
            order = np.argsort(keys[:, band], kind="stable")  # positions ascend within a key
            out["key"], out["pos"] = keys[order, band], pos[order]
            out.tofile(self.files[5 + band])
        self.runs.append(len(pos))

    def close(self, ok: bool = True) -> None:
        """Publish every file under its final name (``ok``), or remove the partial ones."""
        if ok:
            self._flush_run()
        for fh in self.files:
            fh.close()
        if not ok:
            for p in self.paths:
                _tmp(p).unlink(missing_ok=True)
            return
        for p in self.paths:
            os.replace(_tmp(p), p)
        meta = {"n": self.n, "num_perm": self.num_perm, "bands": self.bands, "rows": self.rows,
                "runs": self.runs}  # fmt: skip
        meta_path = path_of(self.stem, "summary.json")
        _tmp(meta_path).write_text(json.dumps(meta))
        os.replace(_tmp(meta_path), meta_path)


def read_meta(stem: Path) -> dict[str, Any]:
    path = path_of(stem, "summary.json")
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.name} is missing: the summarize phase of this stage did not finish; "
            "rerun the pipeline (finished shards are kept)"
        )
    return json.loads(path.read_text())


def pread_array(fd: int, dtype: np.dtype, start: int, count: int) -> np.ndarray:
    """``count`` items of ``dtype`` from item ``start`` of an open file."""
    size = dtype.itemsize
    data = os.pread(fd, count * size, start * size)
    if len(data) != count * size:
        raise OSError(f"short read: {len(data)} of {count * size} bytes (a summary file is cut)")
    return np.frombuffer(data, dtype)


def _runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of consecutive values in sorted unique ``rows``."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate(([0], breaks))
    lengths = np.diff(np.concatenate((starts, [len(rows)])))
    return starts, lengths


class SummaryReader:
    """Positioned reads over every shard's summary, by global row (shard, then position)."""

    def __init__(self, stems: Sequence[Path]):
        self.stems = list(stems)
        self.meta = [read_meta(s) for s in self.stems]
        self.offsets = np.cumsum([0, *(m["n"] for m in self.meta)])
        self._starts = self.offsets.tolist()  # bisect on a list: ~10x a numpy call per row
        self.n = int(self.offsets[-1])
        self.num_perm = self.meta[0]["num_perm"] if self.meta else 0
        self._fds: list[dict[str, int]] = [{} for _ in self.stems]

    def _fd(self, shard: int, suffix: str) -> int:
        fds = self._fds[shard]
        if suffix not in fds:
            fds[suffix] = os.open(path_of(self.stems[shard], suffix), os.O_RDONLY)
        return fds[suffix]

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard, position) of global rows."""
        shard = np.searchsorted(self.offsets, rows, "right") - 1
        return shard, rows - self.offsets[shard]

    def signatures(self, rows: np.ndarray) -> np.ndarray:
        """Signatures of sorted unique global ``rows``, one positioned read per consecutive run."""
        out = np.empty((len(rows), self.num_perm), np.uint32)
        if len(rows) == 0:
            return out
        width = np.dtype((np.uint32, self.num_perm))
        starts, lengths = _runs(rows)
        shards, positions = self.locate(rows[starts])
        for s, length, shard, pos in zip(starts.tolist(), lengths.tolist(), shards.tolist(),
                                          positions.tolist(), strict=True):  # fmt: skip
            # A run of consecutive rows may cross into the next shard: split it there.
            while length:
                take = min(length, int(self.offsets[shard + 1]) - int(self.offsets[shard]) - pos)
                out[s : s + take] = pread_array(self._fd(shard, "sig.u32"), width, pos, take)
                s, length, shard, pos = s + take, length - take, shard + 1, 0
        return out

    def _ragged(self, row: int, values: str, index: str, itemsize: int) -> bytes:
        # Called once per compared record: plain Python, no numpy scalar calls.
        shard = bisect.bisect_right(self._starts, row) - 1
        pos = row - self._starts[shard]
        lo, hi = _TWO_I64.unpack(os.pread(self._fd(shard, index), 16, pos * 8))
        data = os.pread(self._fd(shard, values), (hi - lo) * itemsize, lo * itemsize)
        if len(data) != (hi - lo) * itemsize:
            raise OSError(f"short read in {values} of {self.stems[shard].name} (a file is cut)")
        return data

    def shingle_set(self, row: int) -> np.ndarray:
        """The sorted unique shingle hashes of one global row."""
        data = self._ragged(row, "sets.u32", "sets.idx.i64", 4)
        return np.frombuffer(data, np.uint32)

    def record_id(self, row: int) -> str:
        return self._ragged(row, "ids.utf8", "ids.idx.i64", 1).decode()

    def close(self) -> None:
        for fds in self._fds:
            for fd in fds.values():
                os.close(fd)
            fds.clear()
