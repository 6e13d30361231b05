"""Chat and completion SFT encoding: the loss covers exactly the replies and their end token."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from tailorml.errors import InvalidRequestError
from tailorml.records import ChatRecord, CompletionRecord, Message
from tailorml.train.sft import ChatSftTask, CompletionSftTask
from tailorml.train.tasks import IGNORE_INDEX

from .conftest import glaive_chats


@pytest.fixture(scope="module")
def tokenizer(tiny_decoder):
    return AutoTokenizer.from_pretrained(tiny_decoder.path)  # SmolLM2's tokenizer and template


def trained_runs(tokenizer, example) -> list[str]:
    """The decoded text of each maximal run of trained tokens."""
    runs, current = [], []
    for token, label in zip(example.input_ids, example.target, strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def test_real_glaive_conversation_trains_only_the_replies(tokenizer):
    chat = glaive_chats(1)[0]
    examples, skipped = ChatSftTask().encode(tokenizer, [chat], None, 4096)
    assert skipped == []
    replies = [m.content for m in chat.messages if m.role == "assistant"]
    assert len(replies) >= 2  # a multi-turn conversation
    assert trained_runs(tokenizer, examples[0]) == [r + "<|im_end|>" for r in replies]
    # The prompt side (system prompt, user turns, role headers) is not trained.
    text = tokenizer.decode(examples[0].input_ids)
    assert text.startswith("<|im_start|>system\n")


def test_several_glaive_conversations(tokenizer):
    chats = glaive_chats(20)
    examples, skipped = ChatSftTask().encode(tokenizer, chats, None, 100_000)
    assert skipped == []
    for chat, example in zip(chats, examples, strict=True):
        replies = [m.content for m in chat.messages if m.role == "assistant"]
        assert trained_runs(tokenizer, example) == [r + "<|im_end|>" for r in replies]


def test_system_message_and_truncation(tokenizer):
    chat = ChatRecord(
        [
            Message("system", "Answer briefly."),
            Message("user", "Capital of France?"),
            Message("assistant", "Paris."),
        ]
    )
    examples, _ = ChatSftTask().encode(tokenizer, [chat], None, 512)
    assert trained_runs(tokenizer, examples[0]) == ["Paris.<|im_end|>"]
    # Too short to reach the reply: left out, with the reason.
    examples, skipped = ChatSftTask().encode(tokenizer, [chat], None, 8)
    assert examples == [] and "max_length=8" in skipped[0]


def test_leading_assistant_turn_is_context(tokenizer):
    chat = ChatRecord(
        [
            Message("assistant", "Hello, how can I help?"),
            Message("user", "Say yes."),
            Message("assistant", "Yes."),
        ]
    )
    examples, _ = ChatSftTask().encode(tokenizer, [chat], None, 512)
    assert trained_runs(tokenizer, examples[0]) == ["Yes.<|im_end|>"]


def test_completion_trains_the_completion_and_an_end_token(tokenizer):
    record = CompletionRecord("Translate to French: cheese =>", " fromage")
    examples, _ = CompletionSftTask().encode(tokenizer, [record], None, 512)
    assert trained_runs(tokenizer, examples[0]) == [" fromage" + tokenizer.eos_token]
    assert tokenizer.decode(examples[0].input_ids).startswith("Translate to French")


def test_tokenizer_without_chat_template_is_refused(tiny_encoder):
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder.path)
    chat = ChatRecord([Message("user", "hi"), Message("assistant", "hello")])
    with pytest.raises(InvalidRequestError, match="no chat template"):
        ChatSftTask().encode(tokenizer, [chat], None, 64)
