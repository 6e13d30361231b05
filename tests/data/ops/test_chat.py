"""Chat checks on real Glaive tool-call conversations, with SmolLM2's tokenizer and template."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailorml.data.core import Document
from tailorml.data.ops.chat import (
    ChatFormatMapper,
    ChatLengthFilter,
    ChatRolesFilter,
    ChatTruncateMapper,
    loss_mask_html,
    loss_mask_tokens,
    render_loss_mask,
    sharegpt_to_messages,
)
from tests import fixture_data


@pytest.fixture(scope="module")
def conversations() -> list[dict]:
    """The first 40 Glaive conversations (tool calls included)."""
    return fixture_data.glaive_records()[:40]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tailorml.models.tiny import build_tiny_model

    try:
        return build_tiny_model("decoder", tmp_path_factory.mktemp("tiny"))
    except ImportError as exc:  # the SmolLM2 package is an optional install
        pytest.skip(f"tiny decoder unavailable: {exc}")


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path):  # noqa: ANN201
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def _messages(record: dict) -> list[dict]:
    return sharegpt_to_messages(record["conversations"])


def test_sharegpt_becomes_messages_with_tools_parsed(conversations: list[dict]) -> None:
    doc = ChatFormatMapper().map(Document("g:1", conversations[0]))
    roles = [m["role"] for m in doc.fields["messages"]]
    assert roles[:6] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert len(roles) == len(conversations[0]["conversations"])
    assert "conversations" not in doc.fields and isinstance(doc.fields["tools"], list)


def test_roles_keep_real_conversations_and_drop_broken_ones(conversations: list[dict]) -> None:
    check = ChatRolesFilter()
    docs = [ChatFormatMapper().map(Document(f"g:{i}", c)) for i, c in enumerate(conversations)]
    assert all(check.keep(d).keep for d in docs)
    msgs = docs[0].fields["messages"]
    cases = {
        "bad ending": msgs[:1],
        "bad turn order": [msgs[1], *msgs],
        "empty turn": [msgs[0], {"role": "assistant", "content": "  "}],
        "no messages": [],
    }
    for why, bad in cases.items():
        verdict = check.keep(Document("x", {"messages": bad}))
        assert not verdict.keep and verdict.reason.startswith(why), (why, verdict.reason)
    system_first = [{"role": "system", "content": "Be brief."}, *msgs]
    assert check.keep(Document("x", {"messages": system_first})).keep
    no_tools = ChatRolesFilter(allow_tools=False)
    assert not no_tools.keep(docs[0]).keep


def test_loss_mask_trains_assistant_turns_and_end_token_only(
    conversations: list[dict],
    tokenizer,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    messages = _messages(conversations[0])
    segments = render_loss_mask(messages, tokenizer)
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert "".join(text for text, _ in segments) == rendered
    trained = [text for text, flag in segments if flag]
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    assert trained == [a + tokenizer.eos_token for a in answers]
    context = "".join(text for text, flag in segments if not flag)
    assert all(m["content"] in context for m in messages if m["role"] != "assistant")
    assert "<|im_start|>assistant\n" in context  # role headers are read, never trained
    tokens = loss_mask_tokens(messages, tokenizer)
    assert "".join(t for t, _ in tokens) == rendered
    trained_tokens = [t for t, flag in tokens if flag]
    assert trained_tokens.count(tokenizer.eos_token) == len(answers)
    page = loss_mask_html(messages, tokenizer)
    (tmp_path / "mask.html").write_text(page)
    assert page.count("class='t'") == len(trained_tokens) + 1  # + the legend


def test_length_filter_and_truncation_use_model_tokens(
    conversations: list[dict],
    tokenizer_dir: Path,
    tokenizer,  # noqa: ANN001
) -> None:
    docs = [ChatFormatMapper().map(Document(f"g:{i}", c)) for i, c in enumerate(conversations)]
    sizes = [
        len(tokenizer.apply_chat_template(d.fields["messages"], tokenize=True, return_dict=False))
        for d in docs
    ]
    limit = sorted(sizes)[len(sizes) // 2]
    length = ChatLengthFilter(tokenizer=str(tokenizer_dir), max_tokens=limit)
    verdicts = [length.keep(d) for d in docs]
    assert [v.keep for v in verdicts] == [n <= limit for n in sizes]
    assert any("too long" in v.reason for v in verdicts)
    truncate = ChatTruncateMapper(tokenizer=str(tokenizer_dir), max_tokens=limit)
    cut = [truncate.map(d) for d in docs]
    shortened = [c for c, d in zip(cut, docs, strict=True) if c is not d]
    assert shortened and all(length.keep(c).keep for c in shortened)
    assert all(c.fields["messages"][-1]["role"] == "assistant" for c in shortened)
    assert all(c.meta["truncated_turns"] > 0 for c in shortened)
    assert all(ChatRolesFilter().keep(c).keep for c in shortened)


def test_catalog_names_load_the_packaged_chat_tokenizer() -> None:
    from tailorml.data.ops.chat import load_chat_tokenizer
    from tailorml.errors import ModelUnavailableError

    tok = load_chat_tokenizer("smollm2-135m-instruct")
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    with pytest.raises(ModelUnavailableError, match="minilm-l6"):
        load_chat_tokenizer("no-such-model")
