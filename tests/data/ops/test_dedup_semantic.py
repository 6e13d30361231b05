"""semantic_dedup with the offline all-MiniLM-L6-v2 encoder on C4 sentence pairs and pages."""

from __future__ import annotations

import numpy as np
import pytest

from tailorml.data.core import Document
from tailorml.data.ops.dedup_semantic import SemanticDedup, resolve_encoder
from tailorml.data.ops.normalize import TextNormalizer
from tailorml.errors import ModelUnavailableError

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def op() -> SemanticDedup:
    step = SemanticDedup(threshold=0.9)
    step.setup()
    return step


@pytest.fixture(scope="module")
def labelled(pairs: list[dict]) -> list[tuple[int, str, str]]:
    """25 near duplicates (a sentence and a copy with 2-5 % of words edited), then 25
    pairs of different sentences of one page (same topic): ``(1 or 0, a, b)``."""
    clean = TextNormalizer()
    pos = [(1, p["a"], p["b"]) for p in pairs if p["kind"] == "edited" and p["edit_rate"] <= 0.05]
    neg = [(0, p["a"], p["b"]) for p in pairs if p["kind"] == "other"]
    return [(label, clean.normalize(a), clean.normalize(b)) for label, a, b in pos[:25] + neg[:25]]


def test_embeddings_separate_near_duplicates(
    op: SemanticDedup, labelled: list[tuple[int, str, str]]
) -> None:
    a = op.embed([p[1] for p in labelled])
    b = op.embed([p[2] for p in labelled])
    assert a.shape == (50, 384) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cos = (a * b).sum(axis=1)
    # Measured on all 80 + 120 such pairs: median 0.99 for the edited copies, 0.30 for
    # two sentences of one page (same topic, so above unrelated text, but far apart).
    assert np.median(cos[:25]) > 0.95 and np.median(cos[25:]) < 0.5


def test_drops_near_duplicates_and_copies_keeps_the_rest(
    op: SemanticDedup, labelled: list[tuple[int, str, str]], c4: list[str]
) -> None:
    docs = [Document(f"a:{i}", {"text": a}) for i, (_, a, _) in enumerate(labelled)]
    docs += [Document(f"b:{i}", {"text": b}) for i, (_, _, b) in enumerate(labelled)]
    docs += [
        Document(f"copy:{i}", {"text": a.upper()}) for i, (_, a, _) in enumerate(labelled[:10])
    ]
    docs += [Document(f"c4:{i}", {"text": t[:600]}) for i, t in enumerate(c4[:10])]
    results = list(op.run(docs))
    assert [d.id for d, _ in results] == [d.id for d in docs]
    dropped = {d.id: v.reason for d, v in results if not v.keep}
    # A case-changed copy is the same text to an uncased encoder.
    for i in range(10):
        assert dropped[f"copy:{i}"].startswith(f"semantic duplicate of a:{i} (cosine ")
    assert not any(k.startswith("c4:") for k in dropped)
    assert not any(k.startswith("a:") for k in dropped)  # 50 different sentences
    pos_dropped = sum(f"b:{i}" in dropped for i in range(25))
    neg_dropped = sum(f"b:{i}" in dropped for i in range(25, 50))
    # Measured: 24 of the 25 edited copies reach cosine 0.9 with their sentence.
    assert pos_dropped >= 20 and neg_dropped == 0, (pos_dropped, neg_dropped)
    for i in range(25):
        if f"b:{i}" in dropped:
            assert dropped[f"b:{i}"].startswith(f"semantic duplicate of a:{i} (cosine ")


def test_encoder_resolution() -> None:
    assert (resolve_encoder("minilm-l6") / "config.json").is_file()
    with pytest.raises(ModelUnavailableError, match="catalog encoder"):
        resolve_encoder("smollm2-135m-instruct")
