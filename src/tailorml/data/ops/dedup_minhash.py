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

In a pipeline the step runs in stages (``ShardedGlobalStep``), none of
which holds the corpus: each worker writes its shard's signatures, ids,
shingle-hash sets and sorted runs of band keys (``summarize``,
``dedup_store``); one task per band merges that band's runs from every
shard into candidate pairs (``merge``, ``dedup_buckets``); one task settles
the pairs partition by partition, confirming them on the stored sets
(``decide``); the workers then drop the records it named. ``run`` does the
same in memory, for library use; both build and settle pairs with the same
functions (``dedup_lsh``), so they give the same verdicts in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from tailorml.data.core import Document, ShardedGlobalStep, Verdict
from tailorml.data.ops.dedup_buckets import merge_band, resolve
from tailorml.data.ops.dedup_lsh import (
    bands_for,
    candidate_codes,
    estimate_floor,
    estimated_jaccard,
    exact_jaccard,
    lsh_bands,
    optimal_bands,
    settle,
    split_codes,
)
from tailorml.data.ops.dedup_signatures import (
    MinHashParams,
    _flat_shingles,
    _signatures,
    minhash_signatures,
    shingle_hashes,
)
from tailorml.data.ops.dedup_store import SummaryWriter
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


def _resolve(
    signatures: np.ndarray, params: MinHashParams, read_texts: TextReader | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the kept row it duplicates (itself when kept) and their Jaccard (1.0 if kept).

    ``read_texts`` gives rows' texts for the exact comparison; ``None``
    confirms on the signatures' estimate instead.
    """
    n = len(signatures)
    earlier, later = split_codes(
        candidate_codes(signatures, *bands_for(params, read_texts is not None))
    )
    est = estimated_jaccard(signatures[earlier], signatures[later])
    similarity: Callable[[int, int], float]
    if read_texts is None:
        hopeful = est >= params.threshold
        similarity = lambda i, j: float(estimated_jaccard(signatures[i], signatures[j]))  # noqa: E731
    else:
        hopeful = est >= estimate_floor(params)
        sets = _ShingleSets(read_texts, params)
        sets.load(np.concatenate((earlier[hopeful], later[hopeful])).tolist())
        similarity = sets.jaccard
    earlier, later = earlier[hopeful], later[hopeful]
    found = settle(earlier, later, np.full(len(earlier), -1), similarity, params.threshold)
    kept_of, jaccard = np.arange(n, dtype=np.int64), np.ones(n)
    for j, (k, s) in found.items():
        kept_of[j], jaccard[j] = k, s
    return kept_of, jaccard


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
        )
        del signatures
        for i, (doc, k, j) in enumerate(zip(docs, kept_of.tolist(), jaccard.tolist(), strict=True)):
            if k == i:
                yield doc, Verdict.ok()
            else:
                yield doc, Verdict.drop(f"near-duplicate of {docs[k].id} (Jaccard {j:.2f})")

    def summarize(self, docs: Iterable[Document], stem: Path) -> None:
        """Write the shard's signatures, ids, shingle sets and sorted band-key runs (``dedup_store``).

        The shingle sets (4 bytes per distinct shingle, ~0.7x the text) are
        computed here anyway, in the workers; storing them lets ``decide``
        confirm candidates without reading and shingling texts again.
        """
        bands, rows = bands_for(self.params, exact=True)
        writer = SummaryWriter(stem, self.params.num_perm, bands, rows)
        ok = False
        try:
            for batch in _batches(docs, self.params.batch_size):
                flat, counts = _flat_shingles([d.text for d in batch], self.params)
                owner = np.repeat(np.arange(len(batch), dtype=np.uint64), counts)
                keys = np.unique((owner << np.uint64(32)) | flat.astype(np.uint64))
                set_counts = np.bincount((keys >> np.uint64(32)).astype(np.intp),
                                         minlength=len(batch))  # fmt: skip
                writer.add([d.id for d in batch], _signatures(flat, counts, self.params),
                           keys.astype(np.uint32), set_counts)  # fmt: skip
            ok = True
        finally:
            writer.close(ok)

    def merge_tasks(self) -> int:
        """One merge task per band, as datatrove runs one buckets task per bucket."""
        return bands_for(self.params, exact=True)[0]

    def merge(self, stems: list[Path], part: int, parts: int) -> None:
        """Merge bands ``part``, ``part + parts``, ... from every shard into candidate pairs."""
        for band in range(part, self.merge_tasks(), parts):
            merge_band(stems, band)

    def decide(
        self, stems: list[Path], docs_of: Callable[[int], Iterator[Document]]
    ) -> Iterator[tuple[int, int, str]]:
        """``(shard, position, reason)`` of each record to drop, in order, from the merged pairs.

        Candidates are confirmed on the stored shingle sets, so no record is
        read back (``docs_of`` is not needed).
        """
        return resolve(stems, self.params, self.merge_tasks())


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
