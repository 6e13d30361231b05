"""Preference tuning (DPO) of a decoder on OpenAI's preference records.

A record holds a conversation (``input.messages``), a preferred and a non-preferred reply.
DPO (Rafailov et al., 2023) raises the trained model's log-probability of the preferred
reply relative to a frozen reference model, and lowers that of the other one:

    loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))

where ``pi`` and ``ref`` are a reply's summed token log-probabilities under the trained
model and under the reference (the base), and ``beta`` (``TrainSpec.beta``, OpenAI's default
0.1) sets how far from the reference the model may move. ``beta * (pi - ref)`` is a reply's
implicit reward: validation reports the DPO loss, the share of pairs whose preferred reply
earns the strictly higher reward (``valid_accuracy``; 0 for the untrained base, whose rewards
are all 0) and the mean reward margin (``valid_reward_margin``).

Why the reference log-probabilities are computed once, before training
(``before_training``): the reference never changes, so scoring it at every step would
double the forward passes; with LoRA the reference is the base itself with the adapter
switched off (peft's ``disable_adapter``), so no second model is held in memory, and a full
fine-tune scores its model before the first step, while it is still the base. The values
are kept on the examples and in every checkpoint, so a resumed run, whose model has trained
since, uses the very same ones. The validation pairs are scored in the batches validation
uses, so the base's margins at step 0 are exactly 0.

Encoding reuses the chat SFT rendering (``sft.assistant_spans``): the prompt is rendered with
the generation prompt and tokenized once, shared by both replies; each reply is tokenized
after it, and only its assistant text and end-of-turn token are scored. Log-probabilities
come from the body's hidden states at those positions only (``sft.label_logprobs``), never
from full-vocabulary logits at every position.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tailorml.errors import InvalidRequestError, JobCancelledError
from tailorml.records import Message, PreferenceRecord
from tailorml.registry import register
from tailorml.train.batching import eval_batches
from tailorml.train.evaluation import EVAL_BATCH_FACTOR
from tailorml.train.sft import (
    _body_and_head,
    _DecoderTask,
    _render,
    _tokenize_with_spans,
    assistant_spans,
    label_logprobs,
)
from tailorml.train.tasks import IGNORE_INDEX, BatchScore

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from tailorml.records import Record
    from tailorml.train.spec import TrainSpec

DEFAULT_BETA = 0.1


@dataclass(slots=True)
class PreferenceExample:
    """One encoded pair: the shared prompt, each reply's tokens with their labels (the token
    id where it is scored, ``IGNORE_INDEX`` where it is context) and, once scored, the
    reference model's log-probabilities of the preferred and the non-preferred reply."""

    prompt: list[int]
    chosen: list[int]
    chosen_labels: list[int]
    rejected: list[int]
    rejected_labels: list[int]
    record: int = -1  # its record's index in the list it was encoded from
    truncated: bool = False  # a reply was cut at max_length
    reference: tuple[float, float] | None = None

    @property
    def length(self) -> int:
        """The longer of its two sequences (both are in the batch, padded alike)."""
        return len(self.prompt) + max(len(self.chosen), len(self.rejected))

    @property
    def trained_tokens(self) -> int:
        return sum(1 for t in (*self.chosen_labels, *self.rejected_labels) if t != IGNORE_INDEX)


def _reply_tokens(
    tokenizer: PreTrainedTokenizerBase, prompt: list[Message], reply: list[Message], at: int
) -> tuple[list[int], list[int]] | str:
    """The tokens of ``reply`` rendered after ``prompt`` (whose text is ``at`` characters
    long), labelled where they are assistant text; the template's text after the last
    scored token is dropped. A string says why the reply cannot be used."""
    if reply[0].role != "assistant":
        return "must start with an assistant message"
    text, spans = assistant_spans(tokenizer, [*prompt, *reply])
    ours = [(start - at, end - at) for start, end in spans if start >= at]
    ids, labels = _tokenize_with_spans(tokenizer, text[at:], ours, special=False)
    while labels and labels[-1] == IGNORE_INDEX:
        ids.pop()
        labels.pop()
    return (ids, labels) if labels else "has no assistant text to learn from"


def sequence_logps(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each row's summed log-probability of its scored tokens (``targets`` not ignored)."""
    import torch

    targets = batch["targets"]
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    keep = targets != IGNORE_INDEX
    parts = _body_and_head(model)
    # No generation follows, so building a key/value cache would be wasted work.
    if parts is None:  # logits that are more than head(hidden): the model's own, in full
        logits = model(**inputs, use_cache=False).logits[keep].float()
        token = torch.log_softmax(logits, dim=-1).gather(1, targets[keep][:, None])[:, 0]
    else:
        body, head = parts
        hidden = body(**inputs, use_cache=False).last_hidden_state
        token = label_logprobs(hidden[keep], head, targets[keep])
    rows = keep.nonzero()[:, 0]
    return token.new_zeros(targets.shape[0]).index_add(0, rows, token)


def score_reference(
    model: Any,
    examples: list[PreferenceExample],
    *,
    collate: Callable[[list[Any], int], dict[str, Any]],
    pad_id: int,
    batch_size: int,
    should_stop: Callable[[], bool],
) -> None:
    """Set ``reference`` on every example: its replies' log-probabilities under the base
    (``model`` with its LoRA adapter switched off, or ``model`` itself before training)."""
    import torch

    adapter_off = getattr(model, "disable_adapter", None)
    training = model.training
    model.eval()
    with torch.no_grad(), adapter_off() if adapter_off else contextlib.nullcontext():
        for batch in eval_batches([e.length for e in examples], batch_size):
            if should_stop():
                raise JobCancelledError("Training was cancelled while the reference was scored.")
            group = [examples[i] for i in batch]
            logps = sequence_logps(model, collate(group, pad_id)).tolist()
            for example, chosen, rejected in zip(
                group, logps[: len(group)], logps[len(group) :], strict=True
            ):
                example.reference = (chosen, rejected)
    model.train(training)


@register("task", "preference")
class PreferenceTask(_DecoderTask):
    """DPO on preference pairs; LoRA by default (the reference is then the base with the
    adapter off), full fine-tuning allowed."""

    name = "preference"
    record_type = PreferenceRecord
    example_type = PreferenceExample
    default_batch_size = 4  # pairs: a batch holds twice as many sequences
    # DPO moves a model that already writes well; it needs smaller steps than SFT.
    base_learning_rates = {"lora": 5e-5, "full": 1e-6}
    collate_packed = None  # type: ignore[assignment]  # a pair is padded side by side: no packing

    def __init__(self, beta: float = DEFAULT_BETA) -> None:
        self.beta = beta

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        records: list[Record],
        labels: list[str] | None,
        max_length: int,
    ) -> tuple[list[Any], list[str]]:  # PreferenceExample, the loop reads them as examples
        examples: list[PreferenceExample] = []
        skipped: list[str] = []
        for i, record in enumerate(records):
            result = self.encode_pair(tokenizer, record, max_length)
            if isinstance(result, str):
                skipped.append(f"record {i + 1}: {result}")
            else:
                result.record = i
                examples.append(result)
        return examples, skipped

    def encode_pair(
        self, tokenizer: PreTrainedTokenizerBase, record: Record, max_length: int
    ) -> PreferenceExample | str:
        """One record as a pair, both sequences cut at ``max_length``; or why it is left out."""
        assert isinstance(record, PreferenceRecord)
        if not getattr(tokenizer, "chat_template", None):
            assistant_spans(tokenizer, record.messages)  # raises the chat-template error
        prompt_text = _render(tokenizer, record.messages, prompt=True)
        prompt = list(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
        room = max_length - len(prompt)
        if room < 1:
            return f"the prompt alone is {len(prompt)} tokens, over max_length={max_length}"
        replies: list[tuple[list[int], list[int]]] = []
        truncated = False
        for what, reply in (
            ("preferred_output", record.preferred),
            ("non_preferred_output", record.non_preferred),
        ):
            found = _reply_tokens(tokenizer, record.messages, reply, len(prompt_text))
            if isinstance(found, str):
                return f"{what} {found}"
            ids, reply_labels = found
            truncated = truncated or len(ids) > room
            if all(label == IGNORE_INDEX for label in reply_labels[:room]):
                return f"no {what} token fits in max_length={max_length}"
            replies.append((ids[:room], reply_labels[:room]))
        (chosen, chosen_labels), (rejected, rejected_labels) = replies
        return PreferenceExample(
            prompt, chosen, chosen_labels, rejected, rejected_labels, truncated=truncated
        )

    def collate(  # type: ignore[override]
        self, examples: list[PreferenceExample], pad_id: int
    ) -> dict[str, torch.Tensor]:
        """Right-padded rows, every pair's preferred sequence first, then every non-preferred
        one; ``targets`` (each position's next scored token) and the pairs' ``reference``."""
        import torch

        rows = [(e.prompt + e.chosen, e.chosen_labels, len(e.prompt)) for e in examples]
        rows += [(e.prompt + e.rejected, e.rejected_labels, len(e.prompt)) for e in examples]
        width = max(len(ids) for ids, _, _ in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for r, (row, labels, n_prompt) in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
            # Position t predicts token t + 1: the last prompt position predicts the first reply token.
            targets[r, n_prompt - 1 : len(row) - 1] = torch.tensor(labels)
        missing = (float("nan"), float("nan"))
        reference = torch.tensor([e.reference or missing for e in examples], dtype=torch.float32)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "targets": targets,
            "reference": reference,
        }

    def loss_weight(self, examples: list[PreferenceExample]) -> int:  # type: ignore[override]
        return len(examples)  # the loss is a mean over pairs

    def score(self, model: Any, batch: dict[str, torch.Tensor]) -> BatchScore:
        """The mean DPO loss over the batch's pairs, the pairs ranked right, their margins."""
        import torch

        reference = batch["reference"]
        assert not bool(reference.isnan().any()), "before_training scores the reference first"
        logps = sequence_logps(model, batch)
        n = reference.shape[0]
        chosen = self.beta * (logps[:n] - reference[:, 0])
        rejected = self.beta * (logps[n:] - reference[:, 1])
        margin = chosen - rejected
        return BatchScore(
            -torch.nn.functional.logsigmoid(margin).mean(),
            n,
            correct=int((margin > 0).sum()),
            sums={"reward_margin": float(margin.detach().sum())},
        )

    def before_training(
        self,
        spec: TrainSpec,
        model: Any,
        train: list[Any],
        valid: list[Any],
        *,
        collate: Callable[[list[Any], int], dict[str, Any]],
        pad_id: int,
        should_stop: Callable[[], bool],
        saved: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Score the reference once (or take the scores a resumed checkpoint kept)."""
        self.beta = spec.beta
        splits = {"train": train, "valid": valid}
        if saved is None:
            for examples in splits.values():
                # Validation's own batches: the base's step-0 margins are then exactly 0.
                score_reference(
                    model,
                    examples,
                    collate=collate,
                    pad_id=pad_id,
                    batch_size=spec.batch_size * EVAL_BATCH_FACTOR,
                    should_stop=should_stop,
                )
        else:
            kept = saved.get("reference") or {}
            for split, examples in splits.items():
                values = kept.get(split)
                if not isinstance(values, list) or len(values) != len(examples):
                    raise InvalidRequestError(
                        "The checkpoint holds no reference log-probabilities for this run's "
                        f"{split} pairs; resume with the same data, or start a new run.",
                        param="resume_from",
                    )
                for example, (chosen, rejected) in zip(examples, values, strict=True):
                    example.reference = (float(chosen), float(rejected))
        return {
            "reference": {
                split: [list(e.reference) for e in examples] for split, examples in splits.items()
            }
        }
