"""Integrated-gradients explanations of classifications: one attribution per token, adding up
to the change in probability from the baseline (the completeness axiom), for full and LoRA
classifiers, with the adapter applied."""

from __future__ import annotations

import pytest

from tailorml.errors import InvalidRequestError
from tailorml.serve import Engine, ModelRef
from tailorml.serve.explain import MAX_EXPLAINED_INPUTS
from tests import fixture_data

from .conftest import TinyModels, sentences


def _baseline_probability(folder, base, ids: list[int], target: int, lora: bool) -> float:  # type: ignore[no-untyped-def]
    """p(target) of the baseline input (specials kept, the rest padding), computed apart."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder if not lora else base)
    if lora:
        import json

        from peft import PeftModel

        labels = json.loads((folder / "tailor_model.json").read_text())["labels"]
        model = PeftModel.from_pretrained(
            AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels)), folder
        )
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder)
    model.eval()
    special = set(tokenizer.all_special_ids)
    baseline = [[i if i in special else tokenizer.pad_token_id for i in ids]]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(baseline)).logits
    return float(torch.softmax(logits, -1)[0, target])


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_attributions_add_up_to_the_change_in_probability(kind: str, tiny: TinyModels) -> None:
    folder = tiny.classifier if kind == "full" else tiny.lora_classifier
    ref = ModelRef.from_folder(f"ft:tiny:acme:{kind}:1", folder)
    engine = Engine()
    texts = sentences(3) if kind == "full" else [t for _, t in fixture_data.topic_rows(1)][:3]
    plain, _ = engine.classify(ref, texts)
    explained, tokens = engine.classify(ref, texts, explain=True)
    assert [r["scores"] for r in explained] == [r["scores"] for r in plain]
    for text, result in zip(texts, explained, strict=True):
        ex = result["explanation"]
        assert ex["method"] == "integrated_gradients" and ex["target"] == result["label"]
        assert len(ex["tokens"]) == len(ex["attributions"]) == engine.count_tokens(ref, text)
        # Completeness: attributions sum to p(input) - p(baseline), up to the reported delta.
        change = result["score"] - ex["baseline_score"]
        assert sum(ex["attributions"]) - change == pytest.approx(ex["convergence_delta"], abs=1e-4)
        assert abs(ex["convergence_delta"]) < 0.05
        assert ex["tokens"][0] == "[CLS]" and ex["attributions"][0] == pytest.approx(0.0, abs=1e-7)
    # The baseline's probability is the model's own, adapter applied, computed apart.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny.encoder)
    ids = tokenizer(texts[0])["input_ids"]
    labels = list(explained[0]["scores"])
    target = labels.index(explained[0]["label"])
    expected = _baseline_probability(folder, tiny.encoder, ids, target, kind == "lora")
    assert explained[0]["explanation"]["baseline_score"] == pytest.approx(expected, abs=1e-5)
    assert tokens > 0


def test_too_many_inputs_to_explain_are_refused(tiny: TinyModels, engine: Engine) -> None:
    ref = ModelRef.from_folder("ft:tiny:acme:sst2:1", tiny.classifier)
    with pytest.raises(InvalidRequestError, match="at most 16 inputs") as err:
        engine.classify(ref, sentences(MAX_EXPLAINED_INPUTS + 1), explain=True)
    assert err.value.param == "explain"
