"""Staged near-dedup past one process's memory: merge band runs into pairs, then settle them.

After ``summarize`` (``dedup_store``), two steps remain, and neither holds
the corpus:

- ``merge_band`` (the ``merge`` phase, one task per band, in the workers;
  datatrove's "buckets" stage): a k-way merge of the band's sorted runs
  from every shard. Where datatrove pops one signature at a time from a
  heap, this merge moves blocks: every entry below the smallest last key
  buffered from an unfinished run is final, so it is cut, sorted with
  numpy and passed on whole buckets at a time. Candidate pairs go to one
  file per *partition* of later rows (``pairs-b007-p00003.u64``).
- ``resolve`` (the ``decide`` phase, one task): partition by partition in
  row order, read the pairs of every band, drop those whose signature
  estimate is hopeless, confirm the rest on the stored shingle sets
  (exact Jaccard) and settle them greedily, exactly as the in-memory form
  does (``dedup_lsh.settle``). Rows settled in earlier partitions are
  looked up in two sorted arrays of removed rows and their kept rows, so
  memory follows the duplicates, not the records.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from tailorml.data.ops.dedup_lsh import (
    MAX_ROWS,
    bucket_pairs,
    estimate_floor,
    estimated_jaccard,
    exact_jaccard,
    settle,
    split_codes,
)
from tailorml.data.ops.dedup_signatures import MinHashParams
from tailorml.data.ops.dedup_store import KEY_POS, SummaryReader, band_path, pread_array, read_meta

BLOCK = 1 << 15  # entries read from a run at a time (393 KB)
MIN_PARTITION_BITS = 18  # 2**18 later rows per partition: at worst (all copies) ~90 MB of pairs
MAX_PARTITIONS = 256  # pair files per band, so the files a merge task holds open stay few
CHUNK = 1 << 16  # pairs whose signatures are read together (at most 58 MB at 112 hashes)


def partition_bits(n: int) -> int:
    """log2 of the later rows per partition: ``MIN_PARTITION_BITS``, more past 67M records."""
    bits = MIN_PARTITION_BITS
    while (n >> bits) >= MAX_PARTITIONS:
        bits += 1
    return bits


def pairs_path(work: Path, band: int, part: int) -> Path:
    return work / f"pairs-b{band:03d}-p{part:05d}.u64"


class _Run:
    """One sorted run of a shard's band file, read a block at a time, rows made global."""

    def __init__(self, fd: int, start: int, count: int, row_offset: int):
        self.fd, self.next, self.end, self.row_offset = fd, start, start + count, row_offset

    @property
    def done(self) -> bool:
        return self.next >= self.end

    def read(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        take = min(size, self.end - self.next)
        entries = pread_array(self.fd, KEY_POS, self.next, take)
        self.next += take
        return entries["key"].copy(), entries["pos"].astype(np.int64) + self.row_offset


def _merged(runs: Sequence[_Run], block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(keys, rows) sorted by key, then row, in pieces that never split a bucket."""
    bufs = [run.read(block) for run in runs]
    while True:
        # Unread entries of a run are >= its last buffered key, so every key below the
        # smallest such key is final (and so is its whole bucket).
        open_runs = [int(bufs[x][0][-1]) for x, run in enumerate(runs) if not run.done]
        bound = min(open_runs) if open_runs else None
        keys, rows = [], []
        for x, (k, r) in enumerate(bufs):
            cut = len(k) if bound is None else int(np.searchsorted(k, np.uint64(bound)))
            if cut:
                keys.append(k[:cut])
                rows.append(r[:cut])
                bufs[x] = (k[cut:], r[cut:])
        if len(keys) == 1:
            yield keys[0], rows[0]  # one run is sorted already
        elif keys:
            k, r = np.concatenate(keys), np.concatenate(rows)
            order = np.lexsort((r, k))
            yield k[order], r[order]
        if bound is None:
            return
        for x, run in enumerate(runs):
            k, r = bufs[x]
            if not run.done and (len(k) == 0 or int(k[-1]) == bound):
                more_k, more_r = run.read(block)
                bufs[x] = (np.concatenate((k, more_k)), np.concatenate((r, more_r)))


def merge_band(stems: Sequence[Path], band: int) -> None:
    """Merge one band's runs from every shard; write its candidate pairs per partition."""
    metas = [read_meta(s) for s in stems]
    offsets = np.cumsum([0, *(m["n"] for m in metas)]).tolist()
    n = offsets[-1]
    if n >= MAX_ROWS:
        raise ValueError(f"near-dedup handles at most {MAX_ROWS - 1} records in one run")
    bits = partition_bits(n)
    parts = (n >> bits) + 1
    work = stems[0].parent
    fds = [os.open(band_path(s, band), os.O_RDONLY) for s in stems]
    runs = []
    for fd, meta, offset in zip(fds, metas, offsets, strict=False):
        start = 0
        for count in meta["runs"]:
            runs.append(_Run(fd, start, count, offset))
            start += count
    paths = [pairs_path(work, band, p) for p in range(parts)]
    tmps = [p.with_name(f"{p.name}.tmp-{os.getpid()}") for p in paths]
    outs = [open(t, "wb") for t in tmps]  # noqa: SIM115 - closed below
    ok = False
    try:
        edges = np.arange(parts + 1, dtype=np.uint64) << np.uint64(32 + bits)
        for keys, rows in _merged(runs, BLOCK):
            codes = np.unique(bucket_pairs(keys, rows))  # sorted: partitions are contiguous
            bounds = np.searchsorted(codes, edges)
            for p in np.flatnonzero(np.diff(bounds)).tolist():
                codes[bounds[p] : bounds[p + 1]].tofile(outs[p])
        ok = True
    finally:
        for fh in outs:
            fh.close()
        for fd in fds:
            os.close(fd)
        for tmp, path in zip(tmps, paths, strict=True):
            if ok:
                os.replace(tmp, path)
            else:
                tmp.unlink(missing_ok=True)


def _kept_rows(rows: np.ndarray, removed: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The kept row of each of ``rows`` given sorted ``removed`` rows and their ``kept`` rows."""
    if len(removed) == 0:
        return rows
    pos = np.minimum(np.searchsorted(removed, rows), len(removed) - 1)
    return np.where(removed[pos] == rows, kept[pos], rows)


def _hopeful(
    earlier: np.ndarray, later: np.ndarray, reader: SummaryReader, floor: float
) -> np.ndarray:
    """Which pairs' signature estimate reaches ``floor``, reading signatures a chunk at a time."""
    keep = np.empty(len(earlier), bool)
    for c in range(0, len(earlier), CHUNK):
        e, lt = earlier[c : c + CHUNK], later[c : c + CHUNK]
        rows = np.unique(np.concatenate((e, lt)))
        sig = reader.signatures(rows)
        est = estimated_jaccard(sig[np.searchsorted(rows, e)], sig[np.searchsorted(rows, lt)])
        keep[c : c + CHUNK] = est >= floor
    return keep


def resolve(
    stems: Sequence[Path], params: MinHashParams, bands: int
) -> Iterator[tuple[int, int, str]]:
    """``(shard, position, reason)`` of every record to drop, in shard, then position order."""
    reader = SummaryReader(stems)
    if reader.n == 0:
        return
    bits = partition_bits(reader.n)
    work = stems[0].parent
    floor = estimate_floor(params)
    shingle_set = lru_cache(maxsize=4096)(reader.shingle_set)  # kept rows are asked again

    def similarity(i: int, j: int) -> float:
        return exact_jaccard(shingle_set(i), shingle_set(j))

    removed = kept = np.empty(0, np.int64)
    try:
        for part in range((reader.n >> bits) + 1):
            files = [pairs_path(work, b, part) for b in range(bands)]
            codes = np.unique(np.concatenate([np.fromfile(f, np.uint64) for f in files]))
            earlier, later = split_codes(codes)
            del codes
            hopeful = _hopeful(earlier, later, reader, floor)
            earlier, later = earlier[hopeful], later[hopeful]
            settled_before = earlier < (part << bits)
            before = np.where(settled_before, _kept_rows(earlier, removed, kept), -1)
            found = settle(earlier, later, before, similarity, params.threshold)
            if not found:
                continue
            rows = np.fromiter(found, np.int64, len(found))
            shards, positions = reader.locate(rows)
            for (k, s), shard, pos in zip(found.values(), shards.tolist(), positions.tolist(),
                                          strict=True):  # fmt: skip
                yield shard, pos, f"near-duplicate of {reader.record_id(k)} (Jaccard {s:.2f})"
            removed = np.concatenate((removed, rows))
            kept = np.concatenate((kept, np.fromiter((k for k, _ in found.values()), np.int64)))
    finally:
        reader.close()
