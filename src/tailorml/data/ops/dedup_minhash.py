"""Near-duplicate removal with MinHash and LSH banding: ``minhash_dedup``.

The pieces are plain functions so the runner can split the work into stages
as datatrove does (signatures per shard, then buckets, clusters and the
filter): ``shingle_hashes`` -> ``minhash_signatures`` -> ``lsh_bands`` /
``find_duplicate_clusters``.

Why hand-written rather than ``datasketch.MinHash``: datasketch hashes every
shingle with SHA-1 and permutes one document at a time. Here a batch of
documents is hashed at once: each distinct word once (xxh3), n-grams by a
polynomial over word hashes, and all permutations of all shingles of the
batch in one numpy multiply-add, then a segmented minimum. Measured on the
C4 sample this is many times faster than ``MinHash.bulk`` (see the test
module and the report).

Shingles are word n-grams of the casefolded words; text that is mostly
Chinese or Japanese (``is_cjk``) uses character n-grams instead, since it has
no spaces to split words on.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import ClassVar

import numpy as np
import regex
from pydantic import BaseModel, ConfigDict, Field

from tailorml.data.core import Document, GlobalStep, Verdict
from tailorml.data.ops.normalize import is_cjk
from tailorml.registry import register

_ASCII_WORD_RE = re.compile(r"[a-z0-9]+")
_WORD_RE = re.compile(r"\w+")  # stdlib re: faster than `regex` for \w
_NON_WORD_RE = regex.compile(r"[\W_]+")
_MAX32 = np.uint32(0xFFFFFFFF)
# Fixed (not seeded) n-gram multipliers: a shingle must hash the same in every
# process and run, whatever the permutation seed.
_NGRAM_MULT = np.random.default_rng(20240607).integers(1, 2**63, 64, dtype=np.uint64) | 1
_CHUNK_ELEMENTS = 1 << 21  # permutations x shingles per numpy block (8 MiB of uint32)


class MinHashParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_perm: int = Field(default=112, ge=16, le=1024)
    """Hash functions per signature; more is more exact and slower."""
    ngram: int = Field(default=5, ge=1, le=64)
    """Words per shingle."""
    char_ngram: int = Field(default=5, ge=1, le=64)
    """Characters per shingle for Chinese/Japanese text."""
    threshold: float = Field(default=0.7, gt=0.0, lt=1.0)
    """Estimated Jaccard similarity at and above which two records are duplicates."""
    bands: int | None = None
    """LSH bands; by default chosen to balance missed and false candidates at ``threshold``."""
    seed: int = 1
    """Seed of the permutations (signatures are only comparable under the same seed)."""
    batch_size: int = Field(default=2048, ge=1)
    """Documents hashed together in one numpy pass."""


def _finalize(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, then the high 32 bits: spreads n-gram hashes uniformly."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return (h >> np.uint64(32)).astype(np.uint32)


def _ngrams(units: np.ndarray, n: int) -> np.ndarray:
    """Polynomial hash of every run of ``n`` units (all of them if fewer): wrapping uint64."""
    n = min(n, len(units))
    m = len(units) - n + 1
    h = units[:m] * _NGRAM_MULT[0]
    for k in range(1, n):
        h = h + units[k : k + m] * _NGRAM_MULT[k]
    return h


def _word_list(text: str) -> list[str]:
    if text.isascii():
        return _ASCII_WORD_RE.findall(text.lower())
    return _WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold())


def _word_ids(texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
    """Per text, the ids of its words; and the xxh3 hash of each id's word."""
    import xxhash

    vocab: defaultdict[str, int] = defaultdict()
    vocab.default_factory = vocab.__len__  # a new word gets the next id
    ids = [list(map(vocab.__getitem__, _word_list(text))) for text in texts]
    hash_word = xxhash.xxh3_64_intdigest
    table = np.fromiter((hash_word(w.encode()) for w in vocab), np.uint64, len(vocab))
    return ids, table


def word_hashes(texts: Sequence[str]) -> list[np.ndarray]:
    """The 64-bit hash of each casefolded word of each text (punctuation dropped).

    Each distinct word of the batch is hashed once, with xxh3, so the values
    are the same in every process and run.
    """
    ids, table = _word_ids(texts)
    return [table[np.asarray(i, np.intp)] for i in ids]


def char_codes(text: str) -> np.ndarray:
    """The code points of a text's word characters (casefolded, NFKC), as uint64."""
    chars = _NON_WORD_RE.sub("", unicodedata.normalize("NFKC", text).casefold())
    return np.frombuffer(chars.encode("utf-32-le"), np.uint32).astype(np.uint64)


def ngram_hashes(units: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every run of ``n`` units (one run of all units if there are fewer)."""
    return _ngrams(units, n) if len(units) else units


def _flat_word_shingles(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """All texts' word n-gram hashes in one array, and how many belong to each text.

    One numpy pass over the whole batch instead of a few per text: n-grams are
    hashed across text boundaries and those that straddle one are left out.
    """
    ids, table = _word_ids(texts)
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    units = table[np.fromiter(itertools.chain.from_iterable(ids), np.intp, int(lengths.sum()))]
    ends = np.cumsum(lengths)
    starts = ends - lengths
    full = np.maximum(lengths - n + 1, 0)  # texts with at least n words
    counts = np.where((lengths > 0) & (lengths < n), 1, full)
    out = np.empty(int(counts.sum()), np.uint64)
    offsets = np.cumsum(counts) - counts
    if full.sum():
        h = _ngrams(units, n)
        within = np.arange(int(full.sum())) - np.repeat(np.cumsum(full) - full, full)
        out[np.repeat(offsets, full) + within] = h[np.repeat(starts, full) + within]
    for d in np.flatnonzero((lengths > 0) & (lengths < n)).tolist():
        # Fewer words than n: the whole text is its one shingle.
        out[offsets[d]] = _ngrams(units[starts[d] : ends[d]], n)[0]
    return _finalize(out), counts


def _flat_shingles(texts: Sequence[str], params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    cjk = [is_cjk(t) for t in texts]
    if not any(cjk):
        return _flat_word_shingles(texts, params.ngram)
    return _flatten(shingle_hashes(texts, params))


def _flatten(shingles: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.fromiter(map(len, shingles), np.int64, len(shingles))
    flat = np.concatenate(shingles) if len(shingles) else np.empty(0, np.uint32)
    return flat.astype(np.uint32, copy=False), counts


def shingle_hashes(texts: Sequence[str], params: MinHashParams) -> list[np.ndarray]:
    """The 32-bit shingle hashes of each text (an empty array for a text without words)."""
    cjk = [is_cjk(t) for t in texts]
    words = [t for t, c in zip(texts, cjk, strict=True) if not c]
    flat, counts = _flat_word_shingles(words, params.ngram)
    word_parts = iter(np.split(flat, np.cumsum(counts)[:-1]) if len(words) else [])
    out = []
    for text, c in zip(texts, cjk, strict=True):
        if c:
            units = char_codes(text)
            out.append(
                _finalize(_ngrams(units, params.char_ngram))
                if len(units)
                else units.astype(np.uint32)
            )
        else:
            out.append(next(word_parts))
    return out


def _permutations(params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(params.seed)
    a = rng.integers(1, 2**32, params.num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, params.num_perm, dtype=np.uint64).astype(np.uint32)
    return a[:, None], b[:, None]


def signatures_of_shingles(shingles: Sequence[np.ndarray], params: MinHashParams) -> np.ndarray:
    """MinHash signatures (``len(shingles) x num_perm``, uint32) of given shingle-hash arrays.

    The permutations are ``a*x + b mod 2**32`` with odd ``a``: on inputs that
    are already uniform hashes this estimates Jaccard as well as the
    ``mod 2**61-1`` family (measured: same bias and spread over 1,500 random
    pairs) at half the cost, since it stays in 32-bit SIMD lanes. A text
    without shingles gets all-0xFFFFFFFF, which ``find_duplicate_clusters``
    ignores.
    """
    return _signatures(*_flatten(shingles), params)


def _signatures(flat: np.ndarray, counts: np.ndarray, params: MinHashParams) -> np.ndarray:
    a, b = _permutations(params)
    sig = np.full((len(counts), params.num_perm), _MAX32, np.uint32)
    docs = np.flatnonzero(counts)
    if len(docs) == 0:
        return sig
    starts = np.concatenate(([0], np.cumsum(counts[docs])[:-1]))
    block = max(1, _CHUNK_ELEMENTS // params.num_perm)
    buf = np.empty((params.num_perm, block), np.uint32)
    for b0 in range(0, len(flat), block):
        b1 = min(len(flat), b0 + block)
        view = buf[:, : b1 - b0]
        np.multiply(a, flat[None, b0:b1], out=view)
        np.add(view, b, out=view)
        # Documents overlapping this block, with their first shingle inside it.
        lo = int(np.searchsorted(starts, b0, "right")) - 1
        hi = int(np.searchsorted(starts, b1, "left"))
        seg = np.maximum(starts[lo:hi], b0) - b0
        part = np.minimum.reduceat(view, seg, axis=1).T
        rows = docs[lo:hi]
        sig[rows] = np.minimum(sig[rows], part)
    return sig


def minhash_signatures(texts: Iterable[str], params: MinHashParams | None = None) -> np.ndarray:
    """MinHash signatures of texts, ``len(texts) x num_perm`` uint32, computed in batches."""
    params = params or MinHashParams()
    parts, batch = [], []
    for text in texts:
        batch.append(text)
        if len(batch) >= params.batch_size:
            parts.append(_signatures(*_flat_shingles(batch, params), params))
            batch = []
    if batch or not parts:
        parts.append(_signatures(*_flat_shingles(batch, params), params))
    return np.concatenate(parts)


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.1) -> tuple[int, int]:
    """(bands, rows) minimising the weighted missed and false candidate rates around ``threshold``.

    The criterion is datasketch's (integrals of the S-curve below and above
    the threshold), but weighted towards recall: every candidate pair is
    confirmed on its full signature, so a false candidate costs one
    comparison while a missed one is a duplicate kept. At 0.7 and 112
    permutations this gives 18 bands of 6 rows (a pair at Jaccard 0.75 is a
    candidate 97% of the time) where equal weights give 12 x 9 (61%).
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
        keys[:, band] = (part * _NGRAM_MULT[:rows]).sum(axis=1)  # wraps mod 2**64
    return keys


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Share of equal signature positions, row by row."""
    return (sig_a == sig_b).mean(axis=-1)


def duplicate_of(signatures: np.ndarray, params: MinHashParams | None = None) -> np.ndarray:
    """For each row, the index of the row it duplicates (itself when it is kept).

    Candidates come from LSH buckets; each is confirmed on the full signature
    (estimated Jaccard >= threshold) before clusters are joined, and each
    cluster keeps its earliest row.
    """
    params = params or MinHashParams()
    n = len(signatures)
    bands = params.bands or optimal_bands(params.threshold, params.num_perm)[0]
    rows = params.num_perm // bands
    valid = ~(signatures == _MAX32).all(axis=1)
    keys = lsh_bands(signatures, bands, rows)
    order_all = np.arange(n)
    pairs = []
    for band in range(bands):
        k = keys[:, band]
        order = np.argsort(k, kind="stable")
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
    parent = order_all.copy()
    if not pairs:
        return parent
    both = np.concatenate(pairs).astype(np.int64)
    code = np.unique(both[:, 0] * n + both[:, 1])
    cand = np.stack([code // n, code % n], 1)
    cand = cand[cand[:, 0] != cand[:, 1]]
    sims = estimated_jaccard(signatures[cand[:, 0]], signatures[cand[:, 1]])
    confirmed = cand[sims >= params.threshold]

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in confirmed.tolist():
        ri, rj = root(i), root(j)
        if ri != rj:  # the earlier row becomes the root: "keep the first"
            parent[max(ri, rj)] = min(ri, rj)
    return np.fromiter((root(i) for i in range(n)), np.int64, n)


def find_duplicate_clusters(
    signatures: np.ndarray, ids: Sequence[str], params: MinHashParams | None = None
) -> dict[str, str]:
    """``{duplicate id: kept id}`` for every record to drop; records not in it are kept."""
    kept = duplicate_of(signatures, params)
    return {ids[i]: ids[int(k)] for i, k in enumerate(kept) if k != i}


@register("data_op", "minhash_dedup")
class MinHashDedup(GlobalStep):
    """Drop records whose word n-grams overlap an earlier record's at the Jaccard threshold."""

    name: ClassVar[str] = "minhash_dedup"
    Params: ClassVar[type[BaseModel]] = MinHashParams

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        docs = list(docs)
        signatures = minhash_signatures((d.text for d in docs), self.params)
        kept = duplicate_of(signatures, self.params)
        for i, doc in enumerate(docs):
            k = int(kept[i])
            if k == i:
                yield doc, Verdict.ok()
            else:
                jaccard = float(estimated_jaccard(signatures[i], signatures[k]))
                yield (
                    doc,
                    Verdict.drop(
                        f"near-duplicate of {docs[k].id} (estimated Jaccard {jaccard:.2f})"
                    ),
                )
