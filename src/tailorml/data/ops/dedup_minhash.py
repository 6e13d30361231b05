"""Near-duplicate removal with MinHash and LSH banding: ``minhash_dedup``.

Signatures come from ``dedup_signatures``; this module groups them. Each
band of rows of a signature is a bucket key; records sharing a bucket are
candidates. Signatures only *find* candidates: when the texts are at hand
(always, in ``MinHashDedup``) every candidate pair is confirmed on the
*exact* Jaccard of the two records' shingle-hash sets, so no pair below the
threshold is removed. An estimate from 112 hashes has a standard deviation
of ~0.045 near 0.7, which removed a fifth of the pairs at true Jaccard
0.6-0.7 when it decided (benchmarks/RESULTS.md, section 3). The bands are
therefore chosen for candidate recall a little below the threshold: a false
candidate costs one set comparison, a missed one is a duplicate kept.

A record is removed when it is confirmed similar to an earlier *kept*
record (greedy, in input order), so the reason always names a kept record
at or above the threshold, and no two kept records are a confirmed pair.

In a pipeline the step runs in stages (``ShardedGlobalStep``): each worker
writes its shard's signatures, ids and sorted shingle-hash sets
(``summarize``); one small step clusters all signatures and confirms
candidates on the stored sets through memory maps (``decide``); the
workers then drop the records it named. ``run`` does the same in memory,
for library use, and both give the same verdicts in the same order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from tailorml.data.core import Document, ShardedGlobalStep, Verdict
from tailorml.data.ops.dedup_signatures import (
    MAX32,
    MinHashParams,
    _flat_shingles,
    _signatures,
    minhash_signatures,
    shingle_hashes,
)
from tailorml.registry import register

__all__ = [
    "MinHashDedup",
    "MinHashParams",
    "duplicate_of",
    "estimated_jaccard",
    "exact_jaccard",
    "find_duplicate_clusters",
    "lsh_bands",
    "minhash_signatures",
    "optimal_bands",
    "shingle_hashes",
]

# Odd 64-bit multipliers that fold a band's rows into one bucket key.
_BAND_MULT = np.random.default_rng(20240608).integers(1, 2**63, 1024, dtype=np.uint64) | 1
# Candidate bands are tuned for this much below the threshold when pairs are confirmed exactly.
_CANDIDATE_MARGIN = 0.1
# Candidates whose estimate is this many standard deviations below the threshold skip the
# exact comparison: at 112 hashes a pair at the threshold falls there once in ~10**8.
_ESTIMATE_SIGMAS = 5.5


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.1) -> tuple[int, int]:
    """(bands, rows) minimising the weighted missed and false candidate rates around ``threshold``.

    The criterion is datasketch's (integrals of the S-curve below and above
    the threshold), but weighted towards recall: every candidate pair is
    confirmed, so a false candidate costs one comparison while a missed one
    is a duplicate kept. At 0.7 and 112 permutations this gives 18 bands of
    6 rows (a pair at Jaccard 0.75 is a candidate 97% of the time) where
    equal weights give 12 x 9 (61%).
    """
    best, best_err = (1, num_perm), float("inf")
    lo, hi = np.linspace(0.0, threshold, 200), np.linspace(threshold, 1.0, 200)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(1 - (1 - lo**rows) ** bands, lo)
            fn = np.trapezoid((1 - hi**rows) ** bands, hi)
            err = fp_weight * fp + (1 - fp_weight) * fn
            if err < best_err:
                best, best_err = (bands, rows), err
    return best


def lsh_bands(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit bucket key per document and band (``n x bands``); equal keys share a bucket."""
    keys = np.empty((len(signatures), bands), np.uint64)
    for band in range(bands):
        part = signatures[:, band * rows : (band + 1) * rows].astype(np.uint64)
        keys[:, band] = (part * _BAND_MULT[:rows]).sum(axis=1)  # wraps mod 2**64
    return keys


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Share of equal signature positions, row by row."""
    return (sig_a == sig_b).mean(axis=-1)


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted, duplicate-free hash arrays (0.0 when either is empty)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    pos = np.minimum(np.searchsorted(b, a), len(b) - 1)
    inter = int(np.count_nonzero(b[pos] == a))
    return inter / (len(a) + len(b) - inter)


def _bands_for(params: MinHashParams, exact: bool) -> tuple[int, int]:
    if params.bands:
        return params.bands, params.num_perm // params.bands
    target = max(params.threshold - _CANDIDATE_MARGIN, 0.05) if exact else params.threshold
    return optimal_bands(round(target, 4), params.num_perm)


def _candidates(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Distinct pairs ``(i, j)``, ``i < j``, that share a bucket in some band (``m x 2``)."""
    n = len(signatures)
    valid = ~(signatures == MAX32).all(axis=1)  # texts without shingles are similar to nothing
    keys = lsh_bands(signatures, bands, rows)
    pairs = []
    for band in range(bands):
        k = keys[:, band]
        order = np.argsort(k, kind="stable")  # stable: ascending rows inside a bucket
        sk = k[order]
        same = np.flatnonzero((sk[1:] == sk[:-1]) & valid[order[1:]] & valid[order[:-1]])
        if len(same) == 0:
            continue
        # Link each member to its predecessor and to the bucket's first member.
        _, first_pos = np.unique(sk, return_index=True)
        bucket_first = order[first_pos[np.searchsorted(sk[first_pos], sk[same + 1])]]
        later = order[same + 1]
        pairs.append(np.stack([order[same], later], 1))
        pairs.append(np.stack([bucket_first, later], 1))
    if not pairs:
        return np.empty((0, 2), np.int64)
    both = np.concatenate(pairs).astype(np.int64)
    code = np.unique(both[:, 0] * n + both[:, 1])
    cand = np.stack([code // n, code % n], 1)
    return cand[cand[:, 0] != cand[:, 1]]


TextReader = Callable[[list[int]], Iterable[str]]
"""Given ascending row numbers, yields those rows' texts in that order."""


class _ShingleSets:
    """Sorted unique shingle hashes of the records that need them, computed once each.

    Only records in candidate pairs get one (uint32, 4 bytes per distinct
    shingle), so memory follows the duplicates, not the corpus. Texts are
    asked for in ascending row order, so a caller can read them back from
    shard files in one pass.
    """

    def __init__(self, read_texts: TextReader, params: MinHashParams):
        self.read_texts, self.params = read_texts, params
        self.sets: dict[int, np.ndarray] = {}

    def load(self, rows: Iterable[int]) -> None:
        missing = sorted({i for i in rows if i not in self.sets})
        texts = iter(self.read_texts(missing))
        step = self.params.batch_size
        for b in range(0, len(missing), step):
            chunk = missing[b : b + step]
            hashes = shingle_hashes([next(texts) for _ in chunk], self.params)
            # One sort for the whole batch (row in the high bits) instead of one per record.
            owner = np.repeat(np.arange(len(chunk), dtype=np.uint64), list(map(len, hashes)))
            keys = np.unique((owner << np.uint64(32)) | np.concatenate(hashes).astype(np.uint64))
            values = keys.astype(np.uint32)  # the low 32 bits: the shingle hash
            bounds = np.searchsorted(keys >> np.uint64(32), np.arange(len(chunk) + 1))
            for t, i in enumerate(chunk):
                self.sets[i] = values[bounds[t] : bounds[t + 1]]

    def jaccard(self, i: int, j: int) -> float:
        self.load((i, j))
        return exact_jaccard(self.sets[i], self.sets[j])


class _StoredShingleSets:
    """Shingle sets that ``summarize`` wrote per shard, read through memory maps.

    Each shard's file holds every record's sorted unique shingle hashes end
    to end (uint32); ``<stem>.lengths.npy`` says how many belong to each.
    Only the pages of compared records are read, so memory stays bounded.
    """

    def __init__(self, stems: list[Path], offsets: np.ndarray):
        self.offsets = offsets
        self.values = [np.memmap(_sets_path(s), np.uint32, "r") if _has_data(s) else None
                       for s in stems]  # fmt: skip
        self.starts = [np.concatenate(([0], np.cumsum(np.load(_lengths_path(s))))) for s in stems]

    def _set(self, row: int) -> np.ndarray:
        shard = int(np.searchsorted(self.offsets, row, "right")) - 1
        pos = row - int(self.offsets[shard])
        values = self.values[shard]
        if values is None:
            return np.empty(0, np.uint32)
        return values[self.starts[shard][pos] : self.starts[shard][pos + 1]]

    def jaccard(self, i: int, j: int) -> float:
        return exact_jaccard(self._set(i), self._set(j))


def _resolve(
    signatures: np.ndarray,
    params: MinHashParams,
    read_texts: TextReader | _StoredShingleSets | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the kept row it duplicates (itself when kept) and their Jaccard (1.0 if kept).

    ``read_texts`` gives rows' texts (or their stored shingle sets) for the
    exact comparison; ``None`` confirms on the signatures' estimate instead.
    """
    n = len(signatures)
    bands, rows = _bands_for(params, read_texts is not None)
    cand = _candidates(signatures, bands, rows)
    est = estimated_jaccard(signatures[cand[:, 0]], signatures[cand[:, 1]])
    similarity: Callable[[int, int], float]
    if read_texts is None:
        cand = cand[est >= params.threshold]
        similarity = lambda i, j: float(estimated_jaccard(signatures[i], signatures[j]))  # noqa: E731
    else:
        sigma = (params.threshold * (1 - params.threshold) / params.num_perm) ** 0.5
        cand = cand[est >= params.threshold - _ESTIMATE_SIGMAS * sigma]
        if isinstance(read_texts, _StoredShingleSets):
            similarity = read_texts.jaccard
        else:
            sets = _ShingleSets(read_texts, params)
            sets.load(cand.ravel().tolist())
            similarity = sets.jaccard
    order = np.lexsort((cand[:, 0], cand[:, 1]))  # by later row, then earlier
    kept_of = list(range(n))  # plain ints: numpy scalars are slower in this loop
    jaccard = np.ones(n)
    missed: set[tuple[int, int]] = set()
    # Rows are settled in ascending order, so kept_of[i] is final when row j > i is reached.
    # Each pair is compared only while j is still kept (a bucket of m copies costs m - 1
    # comparisons, not one per pair), and against i's kept row when i itself was removed.
    for i, j in cand[order].tolist():
        if kept_of[j] != j:
            continue
        k = kept_of[i]
        if (k, j) in missed:
            continue
        s = similarity(k, j)
        if s >= params.threshold:
            kept_of[j], jaccard[j] = k, s
        else:
            missed.add((k, j))
    return np.asarray(kept_of, np.int64), jaccard


def duplicate_of(
    signatures: np.ndarray, params: MinHashParams | None = None, texts: Sequence[str] | None = None
) -> np.ndarray:
    """For each row, the index of the kept row it duplicates (itself when it is kept).

    With ``texts`` (the rows' texts), candidates are confirmed on the exact
    Jaccard of their shingle sets; without, on the estimate from the
    signatures (for callers that only have signatures, less precise).
    """
    reader = None if texts is None else lambda rows: (texts[i] for i in rows)
    return _resolve(signatures, params or MinHashParams(), reader)[0]


def find_duplicate_clusters(
    signatures: np.ndarray,
    ids: Sequence[str],
    params: MinHashParams | None = None,
    texts: Sequence[str] | None = None,
) -> dict[str, str]:
    """``{duplicate id: kept id}`` for every record to drop; records not in it are kept."""
    kept = duplicate_of(signatures, params, texts)
    return {ids[i]: ids[int(k)] for i, k in enumerate(kept) if k != i}


@register("data_op", "minhash_dedup")
class MinHashDedup(ShardedGlobalStep):
    """Drop records whose n-gram shingles overlap an earlier kept record's at the Jaccard threshold."""

    name: ClassVar[str] = "minhash_dedup"
    Params: ClassVar[type[BaseModel]] = MinHashParams

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        docs = list(docs)
        signatures = minhash_signatures((d.text for d in docs), self.params)
        # Texts are rebuilt for the few candidate records rather than all held at once.
        kept_of, jaccard = _resolve(
            signatures, self.params, lambda rows: (docs[i].text for i in rows)
        )  # type: ignore[arg-type]
        del signatures
        for i, (doc, k, j) in enumerate(zip(docs, kept_of.tolist(), jaccard.tolist(), strict=True)):
            if k == i:
                yield doc, Verdict.ok()
            else:
                yield doc, Verdict.drop(f"near-duplicate of {docs[k].id} (Jaccard {j:.2f})")

    def summarize(self, docs: Iterable[Document], stem: Path) -> None:
        """Write the shard's signatures, ids and sorted shingle sets next to ``stem``.

        The shingle sets (4 bytes per distinct shingle, ~0.7x the text) are
        computed here anyway, in the workers; storing them lets ``decide``
        confirm candidates without reading and shingling texts again.
        """
        ids: list[str] = []
        sigs: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        sets_path = _sets_path(stem)
        tmp = sets_path.with_name(f"{sets_path.name}.tmp-{os.getpid()}")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            for batch in _batches(docs, self.params.batch_size):
                ids += (d.id for d in batch)
                flat, counts = _flat_shingles([d.text for d in batch], self.params)
                sigs.append(_signatures(flat, counts, self.params))
                owner = np.repeat(np.arange(len(batch), dtype=np.uint64), counts)
                keys = np.unique((owner << np.uint64(32)) | flat.astype(np.uint64))
                keys.astype(np.uint32).tofile(fh)
                lengths.append(
                    np.bincount((keys >> np.uint64(32)).astype(np.intp), minlength=len(batch))
                )
        os.replace(tmp, sets_path)
        empty = np.empty((0, self.params.num_perm), np.uint32)
        _save_atomic(
            _lengths_path(stem), np.concatenate(lengths) if lengths else np.empty(0, np.int64)
        )
        _save_atomic(_sig_path(stem), np.concatenate(sigs) if sigs else empty)
        _save_atomic(_ids_path(stem), np.array(ids, dtype=str))

    def decide(
        self, stems: list[Path], docs_of: Callable[[int], Iterator[Document]]
    ) -> list[dict[int, str]]:
        """Cluster every shard's signatures; per shard, ``{position: reason}`` of the drops.

        Candidates are confirmed on the stored shingle sets, so no record is
        read back (``docs_of`` is not needed).
        """
        parts = [np.load(_sig_path(s)) for s in stems]
        offsets = np.cumsum([0, *map(len, parts)])
        signatures = np.concatenate(parts)
        del parts

        kept_of, jaccard = _resolve(signatures, self.params, _StoredShingleSets(stems, offsets))
        ids = [np.load(_ids_path(s), mmap_mode="r") for s in stems]
        drops: list[dict[int, str]] = [{} for _ in stems]
        for j in np.flatnonzero(kept_of != np.arange(len(kept_of))).tolist():
            k = int(kept_of[j])
            sj, sk = (int(np.searchsorted(offsets, r, "right")) - 1 for r in (j, k))
            kept_id = ids[sk][k - offsets[sk]]
            drops[sj][j - int(offsets[sj])] = (
                f"near-duplicate of {kept_id} (Jaccard {jaccard[j]:.2f})"
            )
        return drops


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _sets_path(stem: Path) -> Path:
    return stem.with_name(stem.name + ".sets.u32")


def _lengths_path(stem: Path) -> Path:
    return stem.with_name(stem.name + ".lengths.npy")


def _has_data(stem: Path) -> bool:
    return _sets_path(stem).stat().st_size > 0  # np.memmap refuses an empty file


def _sig_path(stem: Path) -> Path:
    return stem.with_name(stem.name + ".sig.npy")


def _ids_path(stem: Path) -> Path:
    return stem.with_name(stem.name + ".ids.npy")


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """``np.save`` under a temporary name, renamed when complete (a crash leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)
