"""DPO on preference pairs: the encoding (a shared prompt, reply tokens only), the loss against a
plain full-logits computation, the reference scored with the adapter off equal to the base, a
short run that ranks held-out pairs right, and exact resume (LoRA and full)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tailorml.errors import JobCancelledError
from tailorml.records import Message, PreferenceRecord
from tailorml.train import sft
from tailorml.train.loop import TrainSpec, train
from tailorml.train.lora import wrap_with_lora
from tailorml.train.preference import PreferenceTask
from tailorml.train.tasks import IGNORE_INDEX, load_task

from .conftest import EventLog, glaive_chats
from .test_loop import StopAfter, final_weights


def shouted_pairs(n: int) -> list[PreferenceRecord]:
    """Real glaive chats: the reply as written is preferred to the same reply in capitals
    (a preference a tiny random model can learn and carry over to held-out pairs)."""
    pairs = []
    for chat in glaive_chats(n, max_chars=400):
        reply = chat.messages[-1].content
        pairs.append(
            PreferenceRecord(
                chat.messages[:-1],
                [Message("assistant", reply)],
                [Message("assistant", reply.upper())],
            )
        )
    return pairs


def dpo_spec(**overrides) -> TrainSpec:
    values = dict(
        task="preference",
        method="lora",
        n_epochs=2,
        batch_size=4,
        learning_rate=1e-2,
        max_length=96,
        checkpoint_every=3,
        early_stopping_patience=None,
    )
    values.update(overrides)
    return TrainSpec(**values)


@pytest.fixture(scope="module")
def tokenizer(tiny_decoder):
    return AutoTokenizer.from_pretrained(tiny_decoder.path)


def _base(path):  # type: ignore[no-untyped-def]
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def full_logits_logp(model, prompt: list[int], reply: list[int], labels: list[int]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """A reply's log-probability the plain way: one unpadded sequence, full-vocabulary logits."""
    ids = torch.tensor([prompt + reply])
    logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    at = len(prompt) - 1  # the position that predicts the reply's first token
    return sum(
        (logp[at + j, t] for j, t in enumerate(labels) if t != IGNORE_INDEX), torch.tensor(0.0)
    )


def test_the_prompt_is_shared_and_only_the_replies_are_scored(tokenizer):
    record = shouted_pairs(1)[0]
    (example,), skipped = PreferenceTask().encode(tokenizer, [record], None, 512)
    assert skipped == []
    prompt = tokenizer.decode(example.prompt)
    assert prompt.endswith("<|im_start|>assistant\n") and record.messages[0].content in prompt
    for ids, labels, reply in (
        (example.chosen, example.chosen_labels, record.preferred[0].content),
        (example.rejected, example.rejected_labels, record.non_preferred[0].content),
    ):
        assert all(label == t for label, t in zip(labels, ids, strict=True))  # all scored
        assert tokenizer.decode(ids) == reply + "<|im_end|>"  # the end of turn too
    assert example.trained_tokens == len(example.chosen) + len(example.rejected)
    assert example.length == len(example.prompt) + max(len(example.chosen), len(example.rejected))


def test_records_that_cannot_be_pairs_are_left_out_with_why(tokenizer):
    good = shouted_pairs(1)[0]
    tool_first = PreferenceRecord(good.messages, [Message("tool", "{}")], good.non_preferred)
    found, skipped = PreferenceTask().encode(tokenizer, [good, tool_first], None, 512)
    assert len(found) == 1 and skipped == [
        "record 2: preferred_output must start with an assistant message"
    ]
    found, skipped = PreferenceTask().encode(tokenizer, [good], None, 16)
    assert found == [] and "the prompt alone is" in skipped[0] and "max_length=16" in skipped[0]
    n_prompt = len(PreferenceTask().encode(tokenizer, [good], None, 512)[0][0].prompt)
    (cut,), _ = PreferenceTask().encode(tokenizer, [good], None, n_prompt + 3)
    assert cut.truncated and len(cut.chosen) == len(cut.rejected) == 3


@pytest.mark.parametrize("lora", [False, True])
def test_the_loss_equals_a_full_logits_computation(tiny_decoder, tokenizer, monkeypatch, lora):
    monkeypatch.setattr(sft, "LOSS_CHUNK", 5)  # several chunks, the last one short
    task = PreferenceTask(beta=0.3)
    examples, _ = task.encode(tokenizer, shouted_pairs(4), None, 96)
    gen = torch.Generator().manual_seed(0)
    for e in examples:  # a reference unlike the model, so the margins are not 0
        e.reference = tuple((-40 * torch.rand(2, generator=gen)).tolist())  # type: ignore[assignment]
    torch.manual_seed(0)
    model = _base(tiny_decoder.path)
    if lora:
        model = wrap_with_lora(model, task_type="CAUSAL_LM", r=4, alpha=8, dropout=0.0,
                               target_modules=None)  # fmt: skip
    pad = tokenizer.eos_token_id
    ours = task.score(model, task.collate(examples, pad))
    ours.loss.backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    margins = []
    for e in examples:
        chosen = full_logits_logp(model, e.prompt, e.chosen, e.chosen_labels)
        rejected = full_logits_logp(model, e.prompt, e.rejected, e.rejected_labels)
        assert e.reference is not None
        margins.append(0.3 * ((chosen - e.reference[0]) - (rejected - e.reference[1])))
    margin = torch.stack(margins)
    theirs = -torch.nn.functional.logsigmoid(margin).mean()
    theirs.backward()
    assert ours.weight == 4 and ours.correct == int((margin > 0).sum())
    assert ours.loss.item() == pytest.approx(theirs.item(), rel=1e-5)
    assert ours.sums["reward_margin"] == pytest.approx(margin.sum().item(), rel=1e-4, abs=1e-5)
    assert ours_grads
    for name, grad in ours_grads.items():
        expected = dict(model.named_parameters())[name].grad
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)


def test_the_reference_with_the_adapter_off_is_the_base(tiny_decoder, tokenizer):
    task = PreferenceTask()
    train_ex, _ = task.encode(tokenizer, shouted_pairs(5), None, 96)
    valid_ex, train_ex = train_ex[:2], train_ex[2:]
    model = wrap_with_lora(_base(tiny_decoder.path), task_type="CAUSAL_LM", r=4, alpha=8,
                           dropout=0.0, target_modules=None)  # fmt: skip
    with torch.no_grad():  # a trained adapter: the adapted model is no longer the base
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    model.train()
    kept = task.before_training(
        dpo_spec(beta=0.2), model, train_ex, valid_ex, collate=task.collate,
        pad_id=tokenizer.eos_token_id, should_stop=lambda: False, saved=None,
    )  # fmt: skip
    assert task.beta == 0.2 and model.training  # the mode it was in, the adapter back on
    base = _base(tiny_decoder.path)
    with torch.no_grad():
        for e in train_ex + valid_ex:
            assert e.reference is not None
            expected = [
                full_logits_logp(base, e.prompt, e.chosen, e.chosen_labels).item(),
                full_logits_logp(base, e.prompt, e.rejected, e.rejected_labels).item(),
            ]
            assert list(e.reference) == pytest.approx(expected, rel=1e-5)
            adapted = full_logits_logp(model, e.prompt, e.chosen, e.chosen_labels).item()
            assert adapted != pytest.approx(expected[0], rel=1e-3)
    assert kept == {
        "reference": {
            "train": [list(e.reference) for e in train_ex],  # type: ignore[arg-type]
            "valid": [list(e.reference) for e in valid_ex],  # type: ignore[arg-type]
        }
    }
    again, _ = task.encode(tokenizer, shouted_pairs(5), None, 96)  # a resumed run's examples
    task.before_training(
        dpo_spec(), model, again[2:], again[:2], collate=task.collate, pad_id=0,
        should_stop=lambda: pytest.fail("a resumed run scores nothing"), saved=kept,
    )  # fmt: skip
    assert [e.reference for e in again] == [e.reference for e in valid_ex + train_ex]
    with pytest.raises(JobCancelledError):
        task.before_training(
            dpo_spec(), model, again, [], collate=task.collate, pad_id=0,
            should_stop=lambda: True, saved=None,
        )  # fmt: skip


def test_a_short_run_ranks_held_out_pairs_right(tiny_decoder, tmp_path):
    pairs = shouted_pairs(30)
    events = EventLog()
    result = train(dpo_spec(), tiny_decoder, pairs[:22], pairs[22:], tmp_path, on_event=events)
    base, final = events.metrics[0], events.metrics[-1]
    # The untrained model is its own reference: every reward 0, no pair ranked above.
    assert (base["valid_loss"], base["valid_accuracy"], base["valid_reward_margin"]) == (
        pytest.approx(math.log(2)),
        0.0,
        0.0,
    )
    assert final["valid_accuracy"] >= 0.75 and final["valid_reward_margin"] > 0
    assert final["valid_loss"] < math.log(2)
    assert all("valid_reward_margin" in m for m in events.metrics)  # None between evaluations
    assert result.metrics["base_valid_accuracy"] == 0.0
    assert result.metrics["valid_accuracy"] == final["valid_accuracy"]
    manifest = json.loads((result.model_dir / "tailor_model.json").read_text())
    assert (manifest["task"], manifest["method"]) == ("preference", "lora")
    assert load_task("preference").method("dpo") == "lora"


@pytest.mark.parametrize("method", ["lora", "full"])
def test_resume_equals_an_uninterrupted_run(method, tiny_decoder, tmp_path):
    pairs = shouted_pairs(15)
    spec = dpo_spec(method=method, learning_rate=1e-2 if method == "lora" else 1e-3,
                    checkpoint_every=2, max_length=64)  # fmt: skip
    records, valid = pairs[:12], pairs[12:]
    whole_events = EventLog()
    whole = train(spec, tiny_decoder, records, valid, tmp_path / "whole", on_event=whole_events)

    events = EventLog()
    with pytest.raises(JobCancelledError):
        train(spec, tiny_decoder, records, valid, tmp_path / "parts", on_event=events,
              should_stop=StopAfter(events, 3))  # fmt: skip
    checkpoint = tmp_path / "parts" / "checkpoints" / "step-2"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert [len(v) for v in state["task_state"]["reference"].values()] == [12, 3]
    resumed_events = EventLog()
    resumed = train(spec, tiny_decoder, records, valid, tmp_path / "parts",
                    on_event=resumed_events, resume_from=checkpoint)  # fmt: skip

    assert resumed.steps == whole.steps and resumed.trained_tokens == whole.trained_tokens
    assert resumed.metrics.keys() == whole.metrics.keys()
    for key, value in whole.metrics.items():
        assert resumed.metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    after = [m for m in whole_events.metrics if m["step"] > 2]
    assert [m["step"] for m in resumed_events.metrics] == [m["step"] for m in after]
    for a, b in zip(after, resumed_events.metrics, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
    expected, got = final_weights(whole.model_dir), final_weights(resumed.model_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6)
