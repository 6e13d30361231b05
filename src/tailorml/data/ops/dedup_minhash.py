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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from tailorml.data.core import Document, GlobalStep, Verdict
from tailorml.data.ops.dedup_signatures import (
    MAX32,
    MinHashParams,
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


class _ShingleSets:
    """Sorted unique shingle hashes of the records that need them, computed once each.

    Only records in candidate pairs get one (uint32, 4 bytes per distinct
    shingle), so memory follows the duplicates, not the corpus.
    """

    def __init__(self, text_of: Callable[[int], str], params: MinHashParams):
        self.text_of, self.params = text_of, params
        self.sets: dict[int, np.ndarray] = {}

    def load(self, rows: Iterable[int]) -> None:
        missing = [i for i in dict.fromkeys(rows) if i not in self.sets]
        step = self.params.batch_size
        for b in range(0, len(missing), step):
            chunk = missing[b : b + step]
            hashes = shingle_hashes([self.text_of(i) for i in chunk], self.params)
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


def _resolve(
    signatures: np.ndarray, params: MinHashParams, text_of: Callable[[int], str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the kept row it duplicates (itself when kept) and their Jaccard (1.0 if kept).

    ``text_of(row)`` gives a row's text for the exact comparison; ``None``
    confirms on the signatures' estimate instead.
    """
    n = len(signatures)
    bands, rows = _bands_for(params, text_of is not None)
    cand = _candidates(signatures, bands, rows)
    est = estimated_jaccard(signatures[cand[:, 0]], signatures[cand[:, 1]])
    similarity: Callable[[int, int], float]
    if text_of is None:
        cand = cand[est >= params.threshold]
        similarity = lambda i, j: float(estimated_jaccard(signatures[i], signatures[j]))  # noqa: E731
    else:
        sigma = (params.threshold * (1 - params.threshold) / params.num_perm) ** 0.5
        cand = cand[est >= params.threshold - _ESTIMATE_SIGMAS * sigma]
        sets = _ShingleSets(text_of, params)
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
    return _resolve(
        signatures, params or MinHashParams(), texts.__getitem__ if texts is not None else None
    )[0]


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
class MinHashDedup(GlobalStep):
    """Drop records whose n-gram shingles overlap an earlier kept record's at the Jaccard threshold."""

    name: ClassVar[str] = "minhash_dedup"
    Params: ClassVar[type[BaseModel]] = MinHashParams

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        docs = list(docs)
        signatures = minhash_signatures((d.text for d in docs), self.params)
        # Texts are rebuilt for the few candidate records rather than all held at once.
        kept_of, jaccard = _resolve(signatures, self.params, lambda i: docs[i].text)  # type: ignore[arg-type]
        del signatures
        for i, (doc, k, j) in enumerate(zip(docs, kept_of.tolist(), jaccard.tolist(), strict=True)):
            if k == i:
                yield doc, Verdict.ok()
            else:
                yield doc, Verdict.drop(f"near-duplicate of {docs[k].id} (Jaccard {j:.2f})")
