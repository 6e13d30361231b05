"""LSH banding and the greedy keep-first resolution that near-dedup's two forms share.

``minhash_dedup`` runs either in memory (``MinHashDedup.run``: every band
sorted in one array) or staged over files (``dedup_buckets``: every band
merged from sorted runs on disk). Both build their candidate pairs with
``bucket_pairs`` and settle them with ``settle``, so the two forms find the
same duplicates by construction, not by a test's luck.

A candidate pair is one 64-bit code, ``later << 32 | earlier``: sorting
codes sorts pairs by the later row, then the earlier, which is the order
``settle`` needs, and ``np.unique`` dedupes and orders them in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from tailorml.data.ops.dedup_signatures import MinHashParams

# Odd 64-bit multipliers that fold a band's rows into one bucket key.
_BAND_MULT = np.random.default_rng(20240608).integers(1, 2**63, 1024, dtype=np.uint64) | 1
# Candidate bands are tuned for this much below the threshold when pairs are confirmed exactly.
_CANDIDATE_MARGIN = 0.1
# Candidates whose estimate is this many standard deviations below the threshold skip the
# exact comparison: at 112 hashes a pair at the threshold falls there once in ~10**8.
_ESTIMATE_SIGMAS = 5.5
LOW32 = np.uint64(0xFFFFFFFF)
MAX_ROWS = 1 << 32  # a pair code holds each row in 32 bits


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


def bands_for(params: MinHashParams, exact: bool) -> tuple[int, int]:
    """(bands, rows per band) for ``params``: tuned a little below the threshold when ``exact``."""
    if params.bands:
        return params.bands, params.num_perm // params.bands
    target = max(params.threshold - _CANDIDATE_MARGIN, 0.05) if exact else params.threshold
    return optimal_bands(round(target, 4), params.num_perm)


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


def estimate_floor(params: MinHashParams) -> float:
    """Candidates estimated below this are not compared exactly (see ``_ESTIMATE_SIGMAS``)."""
    sigma = (params.threshold * (1 - params.threshold) / params.num_perm) ** 0.5
    return params.threshold - _ESTIMATE_SIGMAS * sigma


def bucket_pairs(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Pair codes of one band's buckets, from keys and rows sorted by key, then row.

    Every bucket must be whole in the arrays. Each member is linked to its
    predecessor and to the bucket's first member: enough for the greedy
    resolution to reach every kept member (a bucket of m costs 2m pairs,
    not m**2/2). Codes may repeat; callers ``np.unique`` them.
    """
    same = np.flatnonzero(keys[1:] == keys[:-1])
    if len(same) == 0:
        return np.empty(0, np.uint64)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    first = rows[starts[np.searchsorted(starts, same + 1, "right") - 1]]
    later = rows[same + 1].astype(np.uint64) << np.uint64(32)
    return np.concatenate([later | rows[same].astype(np.uint64), later | first.astype(np.uint64)])


def split_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(earlier rows, later rows) of pair codes, as int64."""
    return (codes & LOW32).astype(np.int64), (codes >> np.uint64(32)).astype(np.int64)


def candidate_codes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Sorted distinct pair codes of the rows that share a bucket in some band (in memory)."""
    if len(signatures) >= MAX_ROWS:
        raise ValueError(f"near-dedup handles at most {MAX_ROWS - 1} records in one run")
    # Texts without shingles (all-MAX32 signatures) are similar to nothing: they get no keys,
    # as in the staged form, whose summaries leave them out of the band files.
    valid = np.flatnonzero(~(signatures == np.uint32(0xFFFFFFFF)).all(axis=1))
    keys = lsh_bands(signatures[valid], bands, rows)
    codes = []
    for band in range(bands):
        order = np.argsort(keys[:, band], kind="stable")  # stable: ascending rows in a bucket
        codes.append(bucket_pairs(keys[order, band], valid[order]))
    return np.unique(np.concatenate(codes)) if codes else np.empty(0, np.uint64)


Similarity = Callable[[int, int], float]


def settle(
    earlier: np.ndarray,
    later: np.ndarray,
    kept_before: np.ndarray,
    similarity: Similarity,
    threshold: float,
) -> dict[int, tuple[int, float]]:
    """Greedy keep-first over candidate pairs sorted by later row, then earlier row.

    ``kept_before[p]`` is the kept row of ``earlier[p]`` when that row was
    settled by an earlier call (itself if kept), or -1 when it is settled
    here. Returns ``{removed row: (kept row, Jaccard)}`` in ascending order.

    Rows are settled in ascending order, so the kept row of ``i`` is final
    when ``j > i`` is reached. Each pair is compared only while ``j`` is
    still kept (a bucket of m copies costs m - 1 comparisons), and against
    ``i``'s kept row when ``i`` itself was removed.
    """
    removed: dict[int, tuple[int, float]] = {}
    missed: set[int] = set()  # kept rows already found below the threshold for this j
    current = -1
    for i, j, before in zip(earlier.tolist(), later.tolist(), kept_before.tolist(), strict=True):
        if j != current:
            current, missed = j, set()
        elif j in removed:
            continue
        k = before if before >= 0 else removed.get(i, (i, 1.0))[0]
        if k in missed:
            continue
        s = similarity(k, j)
        if s >= threshold:
            removed[j] = (k, s)
        else:
            missed.add(k)
    return removed
