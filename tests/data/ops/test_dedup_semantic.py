"""semantic_dedup with the offline all-MiniLM-L6-v2 encoder on MRPC paraphrases and C4."""

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
def pairs(mrpc: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    clean = TextNormalizer()
    pos = [p for p in mrpc if p[0] == 1][:25]
    neg = [p for p in mrpc if p[0] == 0][:25]
    return [(label, clean.normalize(a), clean.normalize(b)) for label, a, b in pos + neg]


def test_embeddings_separate_paraphrases(
    op: SemanticDedup, pairs: list[tuple[int, str, str]]
) -> None:
    a = op.embed([p[1] for p in pairs])
    b = op.embed([p[2] for p in pairs])
    assert a.shape == (50, 384) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cos = (a * b).sum(axis=1)
    # Measured on 100 + 100 test pairs: median 0.83 for paraphrases, 0.71 for the
    # rest (MRPC's non-paraphrases are about the same news event, so still close).
    assert np.median(cos[:25]) > np.median(cos[25:]) + 0.05


def test_drops_paraphrases_and_copies_keeps_unrelated(
    op: SemanticDedup, pairs: list[tuple[int, str, str]], c4: list[str]
) -> None:
    docs = [Document(f"a:{i}", {"text": a}) for i, (_, a, _) in enumerate(pairs)]
    docs += [Document(f"b:{i}", {"text": b}) for i, (_, _, b) in enumerate(pairs)]
    docs += [Document(f"copy:{i}", {"text": a.upper()}) for i, (_, a, _) in enumerate(pairs[:10])]
    docs += [Document(f"c4:{i}", {"text": t[:600]}) for i, t in enumerate(c4[:10])]
    results = list(op.run(docs))
    assert [d.id for d, _ in results] == [d.id for d in docs]
    dropped = {d.id: v.reason for d, v in results if not v.keep}
    # A case-changed copy is the same text to an uncased encoder.
    for i in range(10):
        assert dropped[f"copy:{i}"].startswith(f"semantic duplicate of a:{i} (cosine ")
    assert not any(k.startswith("c4:") for k in dropped)
    # MRPC repeats stock-market boilerplate across pairs: such a first sentence
    # may match another pair's first sentence above the threshold.
    assert sum(k.startswith("a:") for k in dropped) <= 2
    pos_dropped = sum(f"b:{i}" in dropped for i in range(25))
    neg_dropped = sum(f"b:{i}" in dropped for i in range(25, 50))
    assert pos_dropped > neg_dropped and pos_dropped >= 4, (pos_dropped, neg_dropped)


def test_encoder_resolution() -> None:
    assert (resolve_encoder("minilm-l6") / "config.json").is_file()
    with pytest.raises(ModelUnavailableError, match="catalog encoder"):
        resolve_encoder("smollm2-135m-instruct")
