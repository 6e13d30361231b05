"""Decontamination: ``decontaminate`` drops training records that overlap an evaluation set.

Two methods:

- ``ngram`` (default), as GPT-3 did (Brown et al. 2020, appendix C): a record
  is contaminated when it shares any word 13-gram with an evaluation record.
  Evaluation records shorter than 13 words count as one n-gram of their full
  length when they have at least ``min_words`` words (shorter ones would
  match everywhere and are ignored).
- ``minhash``: a record is contaminated when its estimated Jaccard similarity
  with an evaluation record reaches ``threshold`` (LSH candidates, confirmed
  on the full signature), which also catches light rewording.

The evaluation file is JSONL, JSON (a list of records), CSV, TSV or plain
text (one record per line).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field

from tailorml.data.core import (
    PARAMS_CONFIG,
    TEXT_FIELDS,
    Document,
    GlobalStep,
    Verdict,
    iter_texts,
    resource,
    shown_name,
)
from tailorml.data.ops.dedup_minhash import estimated_jaccard, lsh_bands, optimal_bands
from tailorml.data.ops.dedup_signatures import (
    MinHashParams,
    minhash_signatures,
    ngram_hashes,
    word_hashes,
)
from tailorml.errors import FileFormatError, InvalidRequestError
from tailorml.registry import register


class DecontaminateParams(BaseModel):
    model_config = PARAMS_CONFIG

    path: str = resource("file")
    """The evaluation file whose records must not appear in training data."""
    fields: list[str] | None = None
    """Columns or keys of the evaluation file to read; by default its free-text fields."""
    method: Literal["ngram", "minhash"] = "ngram"
    ngram: int = Field(default=13, ge=1)
    """Words per n-gram for the ``ngram`` method."""
    min_words: int = Field(default=8, ge=1)
    """Evaluation records shorter than ``ngram`` words are used whole if at least this long."""
    threshold: float = Field(default=0.7, gt=0.0, lt=1.0)
    """Estimated Jaccard at which the ``minhash`` method flags a record."""
    num_perm: int = Field(default=112, ge=16, le=1024)
    shingle: int = Field(default=5, ge=1)
    """Words per shingle for the ``minhash`` method."""
    batch_size: int = Field(default=1024, ge=1, le=65536)


def read_eval_texts(path: Path, fields: list[str] | None = None) -> list[str]:
    """The text of each record of an evaluation file (see the module docstring for formats)."""
    if not path.is_file():
        raise InvalidRequestError(
            f"Evaluation file {shown_name(path)!r} does not exist; give an existing "
            "JSONL, JSON, CSV, TSV or text file.",
            param="path",
        )
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as f:
            if suffix == ".tsv":
                rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
            else:
                rows = list(csv.DictReader(f))
        if not rows:
            return []
        columns = (
            fields
            or [c for c in rows[0] if c in TEXT_FIELDS]
            or [c for c, v in rows[0].items() if v and not v.strip().lstrip("-").isdigit()]
        )
        return ["\n".join(r.get(c) or "" for c in columns) for r in rows]
    if suffix in (".jsonl", ".json"):
        raw = path.read_text(encoding="utf-8")
        try:
            if suffix == ".json":
                records = json.loads(raw)
            else:
                records = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise FileFormatError(
                f"Evaluation file {shown_name(path)!r} is not valid JSON ({e.msg}, line "
                f"{e.lineno}); fix it or give it as JSONL, CSV or text."
            ) from e
        if isinstance(records, dict):
            records = [records]
        texts = []
        for rec in records:
            if isinstance(rec, str):
                texts.append(rec)
            elif fields:
                texts.append("\n".join(str(rec.get(c, "")) for c in fields))
            else:
                texts.append("\n".join(t for _, t in iter_texts(rec)))
        return texts
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@register("data_op", "decontaminate")
class Decontaminator(GlobalStep):
    """Drop records that overlap any record of an evaluation file; the reason names which."""

    name: ClassVar[str] = "decontaminate"
    Params: ClassVar[type[BaseModel]] = DecontaminateParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self._ready = False
        self._ngrams: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._minhash = MinHashParams(
            num_perm=self.params.num_perm,
            ngram=self.params.shingle,
            threshold=self.params.threshold,
        )

    def setup(self) -> None:
        if self._ready:
            return
        p = self.params
        texts = read_eval_texts(Path(p.path), p.fields)
        if p.method == "ngram":
            by_len: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
            for i, words in enumerate(word_hashes(texts)):
                n = min(p.ngram, len(words))
                if n < p.min_words and n < p.ngram:
                    continue
                hashes, owners = by_len.setdefault(n, ([], []))
                hashes.append(ngram_hashes(words, n))
                owners.append(np.full(len(hashes[-1]), i, np.int64))
            for n, (hashes, owners) in by_len.items():
                h, o = np.concatenate(hashes), np.concatenate(owners)
                order = np.argsort(h, kind="stable")
                self._ngrams[n] = (h[order], o[order])
        else:
            self._signatures = minhash_signatures(texts, self._minhash)
            self._bands, self._rows = optimal_bands(p.threshold, p.num_perm)
            keys = lsh_bands(self._signatures, self._bands, self._rows)
            self._buckets: list[dict[int, list[int]]] = [{} for _ in range(self._bands)]
            for i, row in enumerate(keys.tolist()):
                for band, key in enumerate(row):
                    self._buckets[band].setdefault(key, []).append(i)
        self._ready = True

    def _ngram_hit(self, words: np.ndarray) -> str | None:
        for n, (table, owners) in self._ngrams.items():
            if len(words) < n:
                continue
            h = ngram_hashes(words, n)
            pos = np.searchsorted(table, h).clip(max=len(table) - 1)
            hit = np.flatnonzero(table[pos] == h)
            if len(hit):
                return f"{n}-gram overlap with evaluation record {int(owners[pos[hit[0]]]) + 1}"
        return None

    def _minhash_hits(self, texts: list[str]) -> list[str | None]:
        sigs = minhash_signatures(texts, self._minhash)
        keys = lsh_bands(sigs, self._bands, self._rows).tolist()
        out: list[str | None] = []
        for sig, row in zip(sigs, keys, strict=True):
            cand = {j for band, key in enumerate(row) for j in self._buckets[band].get(key, ())}
            best, best_j = -1.0, 0.0
            if cand:
                idx = np.fromiter(cand, np.int64, len(cand))
                sims = estimated_jaccard(self._signatures[idx], sig)
                k = int(sims.argmax())
                best, best_j = int(idx[k]), float(sims[k])
            out.append(
                f"near-duplicate of evaluation record {best + 1} (estimated Jaccard {best_j:.2f})"
                if best >= 0 and best_j >= self.params.threshold
                else None
            )
        return out

    def _decide(self, batch: list[Document]) -> Iterator[tuple[Document, Verdict]]:
        texts = [d.text for d in batch]
        if self.params.method == "ngram":
            reasons = [self._ngram_hit(w) for w in word_hashes(texts)]
        else:
            reasons = self._minhash_hits(texts)
        for doc, reason in zip(batch, reasons, strict=True):
            yield doc, (Verdict.drop(f"contaminated: {reason}") if reason else Verdict.ok())

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        self.setup()
        batch: list[Document] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) >= self.params.batch_size:
                yield from self._decide(batch)
                batch = []
        yield from self._decide(batch)
