"""The decoder loss the task computes: logits only at trained positions, in chunks, equal to the
model's own full-vocabulary loss; and a packed batch scores exactly as the same examples padded."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tailorml.train import sft
from tailorml.train.lora import wrap_with_lora
from tailorml.train.sft import ChatSftTask
from tailorml.train.tasks import IGNORE_INDEX

from .conftest import glaive_chats


@pytest.fixture(scope="module")
def examples(tiny_decoder):
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder.path)
    found, _ = ChatSftTask().encode(tokenizer, glaive_chats(6, max_chars=600), None, 160)
    assert len(found) == 6 and len({e.length for e in found}) > 1  # lengths differ: padding
    return found, tokenizer.eos_token_id


def _model(path, lora: bool):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if lora:
        model = wrap_with_lora(model, task_type="CAUSAL_LM", r=4, alpha=8, dropout=0.0,
                               target_modules=None)  # fmt: skip
    return model


def _grads(model) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("lora", [False, True])
def test_label_only_logits_match_the_models_full_loss(tiny_decoder, examples, monkeypatch, lora):
    found, pad = examples
    monkeypatch.setattr(sft, "LOSS_CHUNK", 7)  # several chunks, the last one short
    task = ChatSftTask()
    model = _model(tiny_decoder.path, lora)
    batch = task.collate(found, pad)
    ours = task.score(model, batch)
    ours.loss.backward()
    ours_grads = _grads(model)
    model.zero_grad()

    labels = torch.full_like(batch["targets"], IGNORE_INDEX)
    labels[:, 1:] = batch["targets"][:, :-1]
    theirs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   labels=labels, use_cache=False)  # fmt: skip
    theirs.loss.backward()
    assert ours.weight == sum(e.trained_tokens for e in found)
    assert ours.loss.item() == pytest.approx(theirs.loss.item(), rel=1e-5)
    theirs_grads = _grads(model)
    assert ours_grads.keys() == theirs_grads.keys() and ours_grads
    for name, grad in ours_grads.items():
        torch.testing.assert_close(grad, theirs_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_packed_batch_scores_as_the_same_examples_padded(tiny_decoder, examples):
    found, pad = examples
    task = ChatSftTask()
    model = _model(tiny_decoder.path, lora=True)
    packed = task.collate_packed(found, pad, width=200)
    padded = task.collate(found, pad)
    assert packed["input_ids"].shape[0] == 3  # two sequences of 77-99 tokens to a row
    assert packed["input_ids"].shape[1] <= 200
    assert int((packed["targets"] != IGNORE_INDEX).sum()) == sum(e.trained_tokens for e in found)
    a = task.score(model, packed)
    a.loss.backward()
    packed_grads = _grads(model)
    model.zero_grad()
    b = task.score(model, padded)
    b.loss.backward()
    assert a.weight == b.weight
    assert a.loss.item() == pytest.approx(b.loss.item(), rel=1e-5)
    for name, grad in _grads(model).items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_packing_never_attends_across_sequences(tiny_decoder, examples):
    # A sequence scores the same alone and after another one in the same row.
    found, pad = examples
    first, second = found[0], found[1]
    task = ChatSftTask()
    model = _model(tiny_decoder.path, lora=False).eval()
    alone = task.collate_packed([second], pad)
    row = {
        "input_ids": torch.tensor([first.input_ids + second.input_ids]),
        "position_ids": torch.tensor([list(range(first.length)) + list(range(second.length))]),
        "targets": torch.tensor([[IGNORE_INDEX] * first.length + alone["targets"][0].tolist()]),
    }
    with torch.no_grad():
        single = task.score(model, alone).loss.item()
        together = task.score(model, row).loss.item()
        # The same row with positions running on: one sequence, so the second sees the first.
        joined = {**row, "position_ids": torch.arange(first.length + second.length)[None]}
        crossed = task.score(model, joined).loss.item()
    assert together == pytest.approx(single, rel=1e-5)
    assert abs(crossed - single) > 100 * abs(together - single)
