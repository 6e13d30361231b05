"""Dynamic batching of embeddings and classification: shared forward passes, same answers."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from tailorml.errors import ModelUnavailableError
from tailorml.serve import Engine, ModelRef

from .conftest import TOPIC_LABELS, TinyModels, lora_adapter, manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "spam_assassin"


def mail_texts(n: int) -> list[str]:
    """Real e-mail texts (SpamAssassin, PDDL/CC0: examples/spam_assassin/PROVENANCE.md)."""
    lines = (EXAMPLES / "test.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line)["text"][:300] for line in lines]


@pytest.fixture(scope="module")
def adapters(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelRef]:
    """Two LoRA classifiers and one LoRA embedder on the tiny encoder, plus the base."""
    root = tmp_path_factory.mktemp("encoder_adapters")
    second = lora_adapter(tiny.encoder, root / "cls_b", seed=7, task_type="SEQ_CLS",
                          num_labels=len(TOPIC_LABELS))  # fmt: skip
    manifest(second, task="classification", method="lora", base_path=str(tiny.encoder),
             architecture="encoder", labels=list(TOPIC_LABELS))  # fmt: skip
    embedder = lora_adapter(tiny.encoder, root / "emb", seed=8, task_type="FEATURE_EXTRACTION")
    manifest(embedder, task="embedding", method="lora", base_path=str(tiny.encoder),
             architecture="encoder")  # fmt: skip
    return {
        "cls_a": ModelRef.from_folder("ft:tiny:acme:news:1", tiny.lora_classifier),
        "cls_b": ModelRef.from_folder("ft:tiny:globex:news:2", second),
        "emb": ModelRef.from_folder("ft:tiny:acme:emb:3", embedder),
        "base": ModelRef.from_folder("tiny-encoder", tiny.encoder),
    }


def run_together(calls: list) -> list:  # type: ignore[type-arg]
    """Run each call on its own thread, all released at once; their results in order."""
    results: list = [None] * len(calls)  # type: ignore[type-arg]
    barrier = threading.Barrier(len(calls))

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def scores(result: tuple[list[dict], int]) -> list[float]:  # type: ignore[type-arg]
    """Every class probability of every input, in one flat list (pytest.approx wants flat)."""
    return [p for r in result[0] for p in r["scores"].values()]


def flat(vectors: list[list[float]]) -> list[float]:
    return [x for vector in vectors for x in vector]


def test_concurrent_classifications_share_forward_passes(tiny: TinyModels) -> None:
    ref = ModelRef.from_folder("tiny-classifier", tiny.classifier)
    texts = mail_texts(16)
    alone = Engine()
    expected = [scores(alone.classify(ref, [text])) for text in texts]

    engine = Engine(batch_wait_ms=50)  # long enough that 16 threads land in one batch
    got = run_together([lambda t=text: engine.classify(ref, [t]) for text in texts])
    for want, result in zip(expected, got, strict=True):
        assert not isinstance(result, Exception), result
        assert scores(result) == pytest.approx(want, abs=1e-5)
    model, _ = engine._cache.get(ref)
    stats = model.encoder.stats()
    assert stats.requests == 16 and stats.rows == 16
    assert stats.forwards < 8, stats  # batched, not one pass per request


def test_mixed_adapters_in_one_batch_match_each_alone(adapters: dict[str, ModelRef]) -> None:
    texts = mail_texts(6)
    alone = Engine()
    want_a = scores(alone.classify(adapters["cls_a"], texts[:3]))
    want_b = scores(alone.classify(adapters["cls_b"], texts[3:]))
    assert want_a != pytest.approx(scores(alone.classify(adapters["cls_b"], texts[:3])), abs=1e-3)

    # A long linger window: under a loaded machine the two threads may start far apart.
    engine = Engine(batch_wait_ms=500)
    engine.classify(adapters["cls_a"], texts[:1])  # load the base and both adapters first
    engine.classify(adapters["cls_b"], texts[:1])
    model, _ = engine._cache.get(adapters["cls_a"])
    before = model.encoder.stats().forwards
    got_a, got_b = run_together([
        lambda: engine.classify(adapters["cls_a"], texts[:3]),
        lambda: engine.classify(adapters["cls_b"], texts[3:]),
    ])  # fmt: skip
    assert scores(got_a) == pytest.approx(want_a, abs=1e-5)
    assert scores(got_b) == pytest.approx(want_b, abs=1e-5)
    stats = model.encoder.stats()
    assert stats.forwards - before == 1, stats  # both tenants' adapters in one pass


def test_base_and_adapter_embeddings_in_one_batch(adapters: dict[str, ModelRef]) -> None:
    texts = mail_texts(4)
    alone = Engine()
    want_base = alone.embed(adapters["base"], texts[:2])[0]
    want_lora = alone.embed(adapters["emb"], texts[2:])[0]

    engine = Engine(batch_wait_ms=100)
    engine.embed(adapters["base"], texts[:1])
    got_base, got_lora = run_together([
        lambda: engine.embed(adapters["base"], texts[:2]),
        lambda: engine.embed(adapters["emb"], texts[2:]),
    ])  # fmt: skip
    assert flat(got_base[0]) == pytest.approx(flat(want_base), abs=1e-5)
    assert flat(got_lora[0]) == pytest.approx(flat(want_lora), abs=1e-5)
    assert flat(got_lora[0]) != pytest.approx(
        flat(engine.embed(adapters["base"], texts[2:])[0]), abs=1e-3
    )


def test_a_broken_adapter_fails_only_its_own_request(
    tiny: TinyModels, adapters: dict[str, ModelRef], tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    shutil.copytree(tiny.lora_a, wrong)  # a decoder's adapter, declared for the encoder
    meta = json.loads((wrong / "tailor_model.json").read_text())
    meta |= {"base_path": str(tiny.encoder), "architecture": "encoder", "task": "embedding"}
    (wrong / "tailor_model.json").write_text(json.dumps(meta))
    texts = mail_texts(2)
    engine = Engine(batch_wait_ms=100)
    want = engine.embed(adapters["base"], texts)[0]
    good, bad = run_together([
        lambda: engine.embed(adapters["base"], texts),
        lambda: engine.embed(ModelRef.from_folder("wrong", wrong), texts),
    ])  # fmt: skip
    assert isinstance(bad, ModelUnavailableError), bad
    assert flat(good[0]) == pytest.approx(flat(want), abs=1e-6)


def test_one_large_request_is_cut_into_bounded_passes(tiny: TinyModels) -> None:
    ref = ModelRef.from_folder("tiny-encoder", tiny.encoder)
    texts = mail_texts(40)
    engine = Engine(encode_batch=8)
    vectors, _ = engine.embed(ref, texts)
    assert len(vectors) == 40
    model, _ = engine._cache.get(ref)
    assert model.encoder.stats().forwards == 5
    assert vectors[7] == pytest.approx(Engine().embed(ref, texts[7:8])[0][0], abs=1e-5)
