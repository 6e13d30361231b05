"""The loop as a recipe on accelerate: gradient accumulation is exact, packing trains and
resumes, a swapped step runs, and settings the machine cannot honour are refused."""

from __future__ import annotations

import pytest
import torch

from tailorml.errors import InvalidRequestError
from tailorml.train.loop import Recipe, TrainSpec, train

from .conftest import EventLog, glaive_chats, spam_records


def chat_spec(**overrides) -> TrainSpec:  # type: ignore[no-untyped-def]
    values = dict(task="chat", method="lora", n_epochs=1, batch_size=2, learning_rate=1e-2,
                  max_length=128, lora_dropout=0.0)  # fmt: skip
    values.update(overrides)
    return TrainSpec(**values)  # type: ignore[arg-type]


def _recipe(spec, base, tmp_path, records):  # type: ignore[no-untyped-def]
    recipe = Recipe(spec, base, tmp_path, on_event=EventLog())
    recipe.setup_data(records, [])
    torch.manual_seed(0)
    recipe.prepare(total_steps=10)
    return recipe


def test_accumulated_micro_batches_step_as_one_batch(tiny_decoder, tmp_path):
    chats = glaive_chats(6, max_chars=400)
    whole = _recipe(chat_spec(), tiny_decoder, tmp_path / "a", chats)
    split = _recipe(chat_spec(gradient_accumulation_steps=3), tiny_decoder, tmp_path / "b", chats)
    examples = whole.data.train
    loss_whole = whole.train_step([examples])
    loss_split = split.train_step([examples[:1], examples[1:4], examples[4:]])
    assert loss_split == pytest.approx(loss_whole, rel=1e-5)
    after = dict(whole.model.named_parameters())
    changed = 0
    for name, param in split.model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(param, after[name], rtol=1e-4, atol=1e-6, msg=name)
            changed += 1
    assert changed > 0


def test_accumulation_counts_steps_and_an_epochs_short_last_group(tiny_decoder, tmp_path):
    events = EventLog()
    chats = glaive_chats(10, max_chars=400)  # 9 for training, 1 held out: 5 batches of 2
    result = train(chat_spec(gradient_accumulation_steps=2), tiny_decoder, chats, None,
                   tmp_path, on_event=events)  # fmt: skip
    assert result.steps == 3  # 2 + 2 + 1 batches
    assert [m["step"] for m in events.metrics] == [0, 1, 2, 3]
    probe = Recipe(chat_spec(), tiny_decoder, tmp_path / "probe", on_event=EventLog())
    probe.setup_data(chats, None)
    assert len(probe.data.train) == 9
    assert result.trained_tokens == sum(e.trained_tokens for e in probe.data.train)


def test_a_packed_run_trains_and_resumes_exactly(tiny_decoder, tmp_path):
    chats = glaive_chats(14, max_chars=400)
    spec = chat_spec(packing=True, batch_size=4, n_epochs=2, checkpoint_every=2)
    whole_events = EventLog()
    whole = train(spec, tiny_decoder, chats, None, tmp_path / "whole", on_event=whole_events)
    assert whole_events.metrics[-1]["valid_loss"] < whole_events.metrics[0]["valid_loss"]

    class StopAt:
        def __init__(self, events: EventLog) -> None:
            self.events = events

        def __call__(self) -> bool:
            return bool(self.events.metrics) and self.events.metrics[-1]["step"] >= 3

    part_events = EventLog()
    with pytest.raises(Exception, match="cancelled"):
        train(spec, tiny_decoder, chats, None, tmp_path / "part", on_event=part_events,
              should_stop=StopAt(part_events))  # fmt: skip
    resumed = train(spec, tiny_decoder, chats, None, tmp_path / "part", on_event=EventLog(),
                    resume_from=tmp_path / "part" / "checkpoints" / "step-2")  # fmt: skip
    assert resumed.metrics["valid_loss"] == pytest.approx(whole.metrics["valid_loss"], rel=1e-5)


def test_a_recipe_step_can_be_swapped(tiny_encoder, tmp_path):
    seen: list[int] = []

    class Counting(Recipe):
        def train_step(self, micro_batches):  # type: ignore[no-untyped-def]
            seen.append(sum(len(b) for b in micro_batches))
            return super().train_step(micro_batches)

    spec = TrainSpec(task="classification", method="full", n_epochs=1, batch_size=8,
                     learning_rate=1e-3)  # fmt: skip
    result = train(spec, tiny_encoder, spam_records("train", 40), [], tmp_path,
                   on_event=EventLog(), recipe=Counting)  # fmt: skip
    assert result.steps == 5 and seen == [8] * 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"precision": "fp16", "device": "cpu"}, "needs a GPU"),
        ({"packing": True}, "packing is for decoder tasks"),
    ],
)
def test_settings_the_run_cannot_honour_are_refused(tiny_encoder, tmp_path, overrides, message):
    spec = TrainSpec(task="classification", method="full", n_epochs=1, batch_size=8,
                     learning_rate=1e-3, **overrides)  # fmt: skip
    with pytest.raises(InvalidRequestError, match=message):
        train(spec, tiny_encoder, spam_records("train", 20), [], tmp_path, on_event=EventLog())


def test_bad_accumulation_and_precision_values_are_listed(tiny_encoder, tmp_path):
    spec = TrainSpec(task="classification", method="full", n_epochs=1, batch_size=8,
                     learning_rate=1e-3, gradient_accumulation_steps=0, processes=0,
                     precision="fp8")  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(InvalidRequestError) as info:
        train(spec, tiny_encoder, spam_records("train", 20), [], tmp_path, on_event=EventLog())
    assert "gradient_accumulation_steps" in info.value.message and "fp8" in info.value.message
    assert "processes must be an integer of at least 1" in info.value.message
