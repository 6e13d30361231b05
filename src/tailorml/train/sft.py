"""Supervised fine-tuning of a decoder: chat (with the chat template) and completion.

The loss covers only what the model should learn to write: the assistant
replies of a chat, each with its end-of-turn token so the model learns to
stop, and the completion of a prompt/completion pair plus an end token.

Why the assistant spans are found by rendering prefixes: transformers can
return an assistant mask only for templates that mark replies with
``{% generation %}``, which most shipped templates (SmolLM2's included) do
not. Rendering the conversation up to each reply, with and without the
reply, gives its character span in the full text for any template whose
earlier turns render the same whatever follows (true of ChatML, Llama and
Mistral templates; a template that is not refuses with a clear error).
Token offsets then map characters to tokens.

Why the loss is computed here and not by the Hugging Face model: its loss
needs the logits at every position, a ``batch × length × vocabulary`` tensor
(SmolLM2's 49k vocabulary makes that the largest tensor of a step), when only
the positions that carry a label are scored. ``label_logits_loss`` takes the
body's hidden states at those positions and computes their logits a chunk at
a time, recomputing each chunk in the backward pass instead of keeping it,
so no full-vocabulary tensor larger than one chunk ever exists.

Batches are padded (``collate``) or packed (``collate_packed``: several
sequences in a row, positions restarting at each, no attention across them;
transformers builds that mask from the position ids). Either way a batch
carries ``targets``, each position's next token or ``IGNORE_INDEX``, shifted
per sequence so a packed row never predicts across a boundary.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailorml.errors import InvalidRequestError
from tailorml.records import ChatRecord, CompletionRecord, Message
from tailorml.registry import register
from tailorml.train.tasks import IGNORE_INDEX, BatchScore, Example, TrainTask, pad_batch

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tailorml.records import Record


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[Message], prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        tokenize=False,
        add_generation_prompt=prompt,
    )


def assistant_spans(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant reply.

    A span runs from the reply's first character through its end-of-turn
    marker (the template's text after the reply, without trailing
    whitespace), so the end token is trained too.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidRequestError(
            "The base model's tokenizer has no chat template, so it cannot be trained on chat "
            "records; pick an instruct model or train with prompt/completion records.",
            param="model",
        )
    full = _render(tokenizer, messages, prompt=False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        # A reply that opens the conversation answers nothing; it stays context.
        if message.role != "assistant" or i == 0:
            continue
        before = _render(tokenizer, messages[:i], prompt=True)
        through = _render(tokenizer, messages[: i + 1], prompt=False).rstrip()
        if not (full.startswith(before) and full.startswith(through)):
            raise InvalidRequestError(
                "The model's chat template renders earlier turns differently depending on what "
                "follows, so assistant replies cannot be located; train this model with "
                "prompt/completion records instead.",
                param="model",
            )
        if len(through) > len(before):
            spans.append((len(before), len(through)))
    return full, spans


def _label_spans(
    ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]
) -> list[int]:
    """Token labels: the token id where a token overlaps a span, else IGNORE_INDEX."""
    labels = [IGNORE_INDEX] * len(ids)
    for t, (start, end) in enumerate(offsets):
        # (0, 0) is a special token the tokenizer added itself (BOS); never trained.
        if end > start and any(start < s_end and end > s_start for s_start, s_end in spans):
            labels[t] = ids[t]
    return labels


def _tokenize_with_spans(
    tokenizer: PreTrainedTokenizerBase, text: str, spans: list[tuple[int, int]], special: bool
) -> tuple[list[int], list[int]]:
    enc = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    return ids, _label_spans(ids, [tuple(o) for o in enc["offset_mapping"]], spans)


def _finish(ids: list[int], labels: list[int], max_length: int, where: str) -> Example | str:
    """Truncate on the right; a record with no trained token left is skipped, with why."""
    cut = len(ids) > max_length
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        return f"{where}: no reply token fits in max_length={max_length}"
    return Example(ids, labels, truncated=cut)


LOSS_CHUNK = 1024  # label positions whose logits are computed at once


def _shifted(labels: list[int]) -> list[int]:
    """Each position's target: the next token's label; the last position predicts nothing."""
    return [*labels[1:], IGNORE_INDEX]


def collate_packed(
    examples: list[Example], pad_id: int, width: int | None = None
) -> dict[str, torch.Tensor]:
    """Pack ``examples`` into rows of at most ``width`` tokens (default: the longest example;
    first fit, longest first), padded to the fullest row. Positions restart at each sequence,
    and a row's padded tail is a sequence of its own, so nothing attends across."""
    import torch

    capacity = max([width or 0] + [len(e.input_ids) for e in examples])
    rows: list[list[Example]] = []
    used: list[int] = []
    for e in sorted(examples, key=lambda e: -len(e.input_ids)):
        for r, size in enumerate(used):
            if size + len(e.input_ids) <= capacity:
                rows[r].append(e)
                used[r] += len(e.input_ids)
                break
        else:
            rows.append([e])
            used.append(len(e.input_ids))
    span = max(used)
    ids = torch.full((len(rows), span), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), span), dtype=torch.long)
    targets = torch.full((len(rows), span), IGNORE_INDEX, dtype=torch.long)
    for r, members in enumerate(rows):
        at = 0
        for e in members:
            n = len(e.input_ids)
            ids[r, at : at + n] = torch.tensor(e.input_ids)
            positions[r, at : at + n] = torch.arange(n)
            targets[r, at : at + n] = torch.tensor(_shifted(e.target))  # type: ignore[arg-type]
            at += n
        positions[r, at:] = torch.arange(span - at)
    return {"input_ids": ids, "position_ids": positions, "targets": targets}


def label_logprobs(hidden: torch.Tensor, head: Any, targets: torch.Tensor) -> torch.Tensor:
    """The log-probability of each target under ``head(hidden)`` (rows of label positions),
    ``LOSS_CHUNK`` rows at a time; under autograd each chunk's logits are recomputed in the
    backward pass rather than kept. DPO sums them per sequence (``preference.py``)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    def chunk_logprobs(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -torch.nn.functional.cross_entropy(head(h).float(), t, reduction="none")

    parts = []
    for start in range(0, hidden.shape[0], LOSS_CHUNK):
        h, t = hidden[start : start + LOSS_CHUNK], targets[start : start + LOSS_CHUNK]
        if torch.is_grad_enabled():
            parts.append(checkpoint(chunk_logprobs, h, t, use_reentrant=False))
        else:
            parts.append(chunk_logprobs(h, t))
    return torch.cat(parts) if parts else hidden.new_zeros((0,), dtype=torch.float32)


def label_logits_loss(hidden: torch.Tensor, head: Any, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``head(hidden)`` against ``targets`` (``label_logprobs``)."""
    return -label_logprobs(hidden, head, targets).sum() / max(1, hidden.shape[0])


def _body_and_head(model: Any) -> tuple[Any, Any] | None:
    """The decoder body and the LM head of ``model`` (a peft model's too), or None for a model
    whose logits are more than ``head(hidden)`` (soft-capped or scaled): those keep the
    model's own loss."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = inner.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None
    body = getattr(inner, "model", None)
    head = inner.get_output_embeddings()
    return (body, head) if body is not None and head is not None else None


class _DecoderTask(TrainTask):
    architecture = "decoder"
    peft_task_type = "CAUSAL_LM"
    default_method = "lora"
    default_batch_size = 8
    base_learning_rates = {"lora": 2e-4, "full": 2e-5}  # a fully tuned decoder forgets faster

    def collate(self, examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
        import torch

        batch = pad_batch(examples, pad_id)
        labels = batch.pop("labels")
        fill = torch.full_like(labels[:, :1], IGNORE_INDEX)
        batch["targets"] = torch.cat([labels[:, 1:], fill], dim=1)
        return batch

    collate_packed = staticmethod(collate_packed)

    def loss_weight(self, examples: list[Example]) -> int:
        # The targets are shifted: a label at a sequence's first position is never predicted.
        return sum(1 for e in examples for t in e.target[1:] if t != IGNORE_INDEX)  # type: ignore[index]

    def load_model(self, path: Path, labels: list[str] | None) -> PreTrainedModel:
        import torch
        from transformers import AutoModelForCausalLM

        from tailorml.models.safety import check_model_folder
        from tailorml.train.checkpoints import STATE_FILES

        check_model_folder(path, allowed=STATE_FILES)
        return AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32, trust_remote_code=False
        )

    def score(self, model: Any, batch: dict[str, torch.Tensor]) -> BatchScore:
        """Mean loss over the trained tokens, from the hidden states at those positions."""
        targets = batch["targets"]
        inputs = {k: v for k, v in batch.items() if k != "targets"}
        keep = targets != IGNORE_INDEX
        weight = int(keep.sum())
        parts = _body_and_head(model)
        # No generation follows, so building a key/value cache would be wasted work.
        if parts is None:
            labels = targets.roll(1, dims=1)  # the model shifts labels itself
            out = model(**inputs, labels=labels, use_cache=False)
            return BatchScore(out.loss, weight)
        body, head = parts
        hidden = body(**inputs, use_cache=False).last_hidden_state
        return BatchScore(label_logits_loss(hidden[keep], head, targets[keep]), weight)

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        records: list[Record],
        labels: list[str] | None,
        max_length: int,
    ) -> tuple[list[Example], list[str]]:
        examples: list[Example] = []
        skipped: list[str] = []
        for i, record in enumerate(records):
            result = _finish(*self.tokens(tokenizer, record), max_length, f"record {i + 1}")
            if isinstance(result, str):
                skipped.append(result)
            else:
                result.record = i
                examples.append(result)
        return examples, skipped

    def tokens(
        self, tokenizer: PreTrainedTokenizerBase, record: Record
    ) -> tuple[list[int], list[int]]:
        raise NotImplementedError


@register("task", "chat")
class ChatSftTask(_DecoderTask):
    """Chat SFT: loss on the assistant replies only."""

    name = "chat"
    record_type = ChatRecord

    def tokens(
        self, tokenizer: PreTrainedTokenizerBase, record: Record
    ) -> tuple[list[int], list[int]]:
        assert isinstance(record, ChatRecord)
        text, spans = assistant_spans(tokenizer, record.messages)
        # The template writes every special token itself.
        return _tokenize_with_spans(tokenizer, text, spans, special=False)


@register("task", "completion")
class CompletionSftTask(_DecoderTask):
    """Completion SFT: the prompt as context, loss on the completion and an end token.

    Prompt and completion are joined as they are (no separator is added),
    as with OpenAI's legacy format: put any separator in the data, and the
    serving engine generates from the same raw prompt.
    """

    name = "completion"
    record_type = CompletionRecord

    def tokens(
        self, tokenizer: PreTrainedTokenizerBase, record: Record
    ) -> tuple[list[int], list[int]]:
        assert isinstance(record, CompletionRecord)
        text = record.prompt + record.completion
        span = [(len(record.prompt), len(text))]
        ids, labels = _tokenize_with_spans(tokenizer, text, span, special=True)
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
            labels.append(tokenizer.eos_token_id)
        return ids, labels
