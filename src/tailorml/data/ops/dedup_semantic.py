"""Semantic deduplication: ``semantic_dedup`` drops records whose meaning repeats an earlier one.

Records are embedded with a sentence encoder (all-MiniLM-L6-v2 by default,
shipped offline as a Python package; mean pooling, unit length, no
gradients), texts sorted by length into batches so padding stays small. A
record is dropped when its cosine similarity with an earlier *kept* record
reaches ``threshold``, so each cluster keeps its first record, as the other
dedup steps do.

This catches paraphrases that share few n-grams, at the price of running a
model: use it after exact and MinHash dedup have removed the cheap cases.
MiniLM's vocabulary is English; for Chinese, name a multilingual encoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from tailorml.data.core import PARAMS_CONFIG, Document, GlobalStep, Verdict, resource, shown_name
from tailorml.errors import ModelUnavailableError
from tailorml.registry import register


class SemanticDedupParams(BaseModel):
    model_config = PARAMS_CONFIG

    model: str = resource("model", "minilm-l6")
    """A sentence-encoder folder, or a catalog name (``minilm-l6``)."""
    threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    """Cosine similarity at and above which two records are duplicates."""
    batch_size: int = Field(default=64, ge=1, le=4096)
    max_length: int = Field(default=256, ge=8, le=8192)
    """Tokens read per record; the rest is ignored."""
    block_size: int = Field(default=1024, ge=1, le=65536)
    """Records compared against the kept ones per matrix product."""


def resolve_encoder(name_or_path: str) -> Path:
    """The folder of an encoder given as a folder or a catalog name."""
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return folder
    from tailorml.models.catalog import catalog, find_base
    from tailorml.models.sources import package_dir

    spec = find_base(name_or_path)
    if spec is not None and spec.architecture == "encoder" and spec.source == "pypi-folder":
        package, _, rest = spec.locator.partition("/")
        return package_dir(package) / rest
    known = ", ".join(s.name for s in catalog() if s.architecture == "encoder")
    raise ModelUnavailableError(
        f"No encoder {shown_name(name_or_path)!r}: give a model folder or a catalog encoder ({known}).",
        param="model",
    )


@register("data_op", "semantic_dedup")
class SemanticDedup(GlobalStep):
    """Drop records whose embedding is within ``threshold`` cosine of an earlier kept record."""

    name: ClassVar[str] = "semantic_dedup"
    Params: ClassVar[type[BaseModel]] = SemanticDedupParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self._model: Any = None
        self._tokenizer: Any = None

    def setup(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        folder = resolve_encoder(self.params.model)
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        self._model = AutoModel.from_pretrained(folder).eval()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings (``len(texts) x dim``, float32) in the order of ``texts``."""
        import torch

        self.setup()
        p = self.params
        order = np.argsort([len(t) for t in texts], kind="stable")
        dim = self._model.config.hidden_size
        out = np.zeros((len(texts), dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), p.batch_size):
                idx = order[start : start + p.batch_size]
                enc = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=p.max_length,
                    return_tensors="pt",
                )
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.float().numpy()
        return out

    def duplicate_of(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each row, the earlier kept row it duplicates (itself if kept) and that cosine."""
        n = len(emb)
        kept_of = np.arange(n)
        cosine = np.ones(n, np.float32)
        kept = np.zeros(n, bool)
        threshold, block = self.params.threshold, self.params.block_size
        for start in range(0, n, block):
            stop = min(n, start + block)
            hit = emb[start:stop] @ emb[:stop].T >= threshold
            # Only earlier rows count: row r of the block is record start + r.
            hit &= np.arange(stop)[None, :] < np.arange(start, stop)[:, None]
            has_hit = hit.any(axis=1)
            kept[start:stop] = ~has_hit  # no earlier look-alike at all: kept
            # The rest depend on which earlier rows were kept, so go in order.
            for r in np.flatnonzero(has_hit).tolist():
                i = start + r
                cand = np.flatnonzero(hit[r])
                cand = cand[kept[cand]]
                if len(cand) == 0:
                    kept[i] = True
                    continue
                sims = emb[cand] @ emb[i]
                k = int(sims.argmax())
                kept_of[i], cosine[i] = cand[k], sims[k]
        return kept_of, cosine

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        docs = list(docs)
        kept_of, cosine = self.duplicate_of(self.embed([d.text for d in docs]))
        for i, doc in enumerate(docs):
            j = int(kept_of[i])
            if j == i:
                yield doc, Verdict.ok()
            else:
                yield (
                    doc,
                    Verdict.drop(f"semantic duplicate of {docs[j].id} (cosine {cosine[i]:.3f})"),
                )
