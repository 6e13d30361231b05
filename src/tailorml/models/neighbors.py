"""The training-record index stored with a trained model: which records taught it an answer.

At the end of training every training record (up to ``MAX_INDEXED``) is
embedded in the tuned model's own representation: the mean of its last
hidden states over the record's text, L2-normalized, exactly as the serving
engine embeds an input with the same model. The vectors go to
``neighbors.safetensors`` (float16: half the bytes, and cosine ranks hold
to three decimals) and each record's line and a preview to
``neighbors.jsonl``. Evaluation writes the index, the serving engine reads
it to answer ``explain: {"neighbors": k}``; the format lives here, below
both.

The previews are the tenant's own training data, kept in the tenant's own
model folder and shown only to callers of that model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorml.models.atomic import atomic_write_bytes

INDEX_VECTORS = "neighbors.safetensors"
INDEX_RECORDS = "neighbors.jsonl"
MAX_INDEXED = 20000
PREVIEW_CHARS = 300
MAX_NEIGHBORS = 50


@dataclass
class NeighborIndex:
    """Unit vectors (one row per indexed record) and what to show of each record."""

    vectors: Any  # numpy float32 [n, dim]
    entries: list[dict[str, Any]]

    def nearest(self, query: Any, k: int) -> list[dict[str, Any]]:
        """The ``k`` records most similar to the unit vector ``query``, most similar first,
        each entry with its cosine ``similarity``."""
        import numpy as np

        scores = self.vectors @ np.asarray(query, dtype=np.float32)
        k = min(k, len(self.entries))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [{**self.entries[i], "similarity": float(scores[i])} for i in top]


def preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


def write_index(model_dir: Path, vectors: Any, entries: list[dict[str, Any]]) -> None:
    """Store the index beside the model (each file atomically; the records file last, so a
    reader that finds it finds the vectors too)."""
    import numpy as np
    from safetensors.numpy import save

    if len(vectors) != len(entries):
        raise ValueError("one vector per entry")
    model_dir = Path(model_dir)
    blob = save({"vectors": np.asarray(vectors, dtype=np.float16)})
    atomic_write_bytes(model_dir / INDEX_VECTORS, blob)
    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
    atomic_write_bytes(model_dir / INDEX_RECORDS, lines.encode())


def read_index(model_dir: Path) -> NeighborIndex | None:
    """The index stored with a model, or None when it has none."""
    from safetensors.numpy import load_file

    model_dir = Path(model_dir)
    records, vectors = model_dir / INDEX_RECORDS, model_dir / INDEX_VECTORS
    if not (records.is_file() and vectors.is_file()):
        return None
    entries = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    matrix = load_file(str(vectors))["vectors"].astype("float32")
    if len(matrix) != len(entries):
        return None  # a half-replaced index: treat as none rather than answer wrongly
    return NeighborIndex(matrix, entries)
