"""LoRA adapters served on one shared base: right adapter per request, eviction, classifiers."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from tailorml.errors import ModelUnavailableError
from tailorml.serve import Engine, ModelRef
from tests import fixture_data

from .conftest import TOPIC_LABELS, TinyModels, questions


def peft_greedy(base: Path, adapter: Path, prompt: str, n: int) -> str:
    """The reference: peft's own model.generate with only this adapter loaded."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(adapter)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(input_ids=ids, do_sample=False, max_new_tokens=n, eos_token_id=[2])
    new = out[0, ids.shape[1] :].tolist()
    return str(tok.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False))


@pytest.fixture(scope="module")
def refs(tiny: TinyModels) -> tuple[ModelRef, ModelRef, ModelRef]:
    return (
        ModelRef.from_folder("tiny", tiny.decoder),
        ModelRef.from_folder("ft:tiny:acme:a:1", tiny.lora_a),
        ModelRef.from_folder("ft:tiny:acme:b:2", tiny.lora_b),
    )


def test_adapters_change_the_output_and_match_peft(tiny: TinyModels, refs) -> None:
    engine = Engine()
    base, a, b = refs
    prompt = questions(3)[2]
    texts = [engine.complete(r, prompt, max_tokens=10, temperature=0).text for r in refs]
    assert len(set(texts)) == 3, texts
    assert texts[1] == peft_greedy(tiny.decoder, tiny.lora_a, prompt, 10)
    assert texts[2] == peft_greedy(tiny.decoder, tiny.lora_b, prompt, 10)


@pytest.mark.parametrize("max_adapters", [16, 1])
def test_alternating_adapters_on_one_base(refs, max_adapters: int) -> None:
    # With room for one adapter only, every switch evicts and reloads one.
    engine = Engine(max_adapters_per_base=max_adapters)
    messages = [{"role": "user", "content": questions(5)[4]}]
    first = {r.key: engine.chat(r, messages, max_tokens=8, temperature=0).text for r in refs}
    for ref in [refs[1], refs[2], refs[0], refs[2], refs[1], refs[0]]:
        assert engine.chat(ref, messages, max_tokens=8, temperature=0).text == first[ref.key]
    expected_loaded = 3 if max_adapters > 1 else 2  # the base plus resident adapters
    assert len(engine.loaded()) == expected_loaded


def test_adapters_in_two_threads_interleave_correctly(refs) -> None:
    engine = Engine()
    prompt = questions(2)[1]
    expected = {r.key: engine.complete(r, prompt, max_tokens=12, temperature=0).text for r in refs}
    got: dict[str, list[str]] = {r.key: [] for r in refs}

    def work(ref: ModelRef) -> None:
        for _ in range(3):
            deltas = engine.stream_complete(ref, prompt, max_tokens=12, temperature=0)
            got[ref.key].append("".join(d.text for d in deltas))

    threads = [threading.Thread(target=work, args=(r,)) for r in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert got == {key: [text] * 3 for key, text in expected.items()}


def test_unload_an_adapter_keeps_the_base(refs) -> None:
    engine = Engine()
    base, a, b = refs
    prompt = questions(1)[0]
    before = engine.complete(a, prompt, max_tokens=6, temperature=0)
    engine.complete(base, prompt, max_tokens=6, temperature=0)
    assert engine.loaded() == sorted([base.key, a.key])
    assert engine.unload(a.key) is True
    assert engine.loaded() == [base.key]
    assert engine.complete(a, prompt, max_tokens=6, temperature=0) == before


def test_adapter_for_another_base_is_refused(tiny: TinyModels, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    shutil.copytree(tiny.lora_a, wrong)
    meta = json.loads((wrong / "tailor_model.json").read_text())
    meta |= {"base_path": str(tiny.encoder), "architecture": "encoder", "task": "embedding"}
    (wrong / "tailor_model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelUnavailableError, match="trained on this base"):
        Engine().embed(ModelRef.from_folder("wrong", wrong), questions(1))


def test_lora_classifier_uses_its_labels(tiny: TinyModels, engine: Engine) -> None:
    ref = ModelRef.from_folder("ft:tiny:acme:topics:1", tiny.lora_classifier)
    texts = [text for _, text in fixture_data.topic_rows(2)]  # two conversations per topic
    results, tokens = engine.classify(ref, texts)
    assert tokens > len(texts)
    for result in results:
        assert set(result["scores"]) == set(TOPIC_LABELS)
        assert result["label"] in TOPIC_LABELS
        assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert result["score"] == max(result["scores"].values())
