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
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailorml.errors import InvalidRequestError
from tailorml.records import ChatRecord, CompletionRecord, Message
from tailorml.registry import register
from tailorml.train.tasks import IGNORE_INDEX, BatchScore, Example, TrainTask

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
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        return f"{where}: no reply token fits in max_length={max_length}"
    return Example(ids, labels)


class _DecoderTask(TrainTask):
    architecture = "decoder"
    peft_task_type = "CAUSAL_LM"

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
        # No generation follows, so building a key/value cache would be wasted work.
        out = model(**batch, use_cache=False)
        # The model shifts labels by one; the loss is a mean over these tokens.
        weight = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        return BatchScore(out.loss, weight)

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
