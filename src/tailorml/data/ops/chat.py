"""Chat checks: format conversion, turn order, length in model tokens, and the loss mask.

- ``chat_format`` (Mapper) turns ShareGPT records (``conversations`` of
  ``from``/``value``) into OpenAI ``messages``: human -> user, gpt ->
  assistant, function_call -> assistant, observation -> tool.
- ``chat_roles`` (Filter) keeps conversations whose turns are in a valid
  order: an optional system turn first, then user, assistant, ... (tool
  results only after an assistant turn), ending with an assistant turn, and
  no empty turn.
- ``chat_truncate`` (Mapper) drops whole turns from the end until a
  conversation fits the model's context; ``chat_length`` (Filter) drops what
  still does not fit. They are two steps because an operator either maps or
  filters (core.py); together they are "truncate, else drop", and the report
  shows both.
- ``render_loss_mask`` splits a rendered conversation into the text the
  model is trained on (assistant turns and their end-of-turn token) and the
  text it only reads, and ``loss_mask_html`` shows it token by token.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from tailorml.data.core import PARAMS_CONFIG, Document, Filter, Mapper, Verdict, resource
from tailorml.data.ops.filters import load_hf_tokenizer
from tailorml.errors import InvalidRequestError
from tailorml.registry import register

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}


def load_chat_tokenizer(name_or_path: str | Path) -> Any:
    """A Hugging Face tokenizer with a chat template, from a folder or a catalog model name."""
    return load_hf_tokenizer(str(name_or_path))


def sharegpt_to_messages(conversations: list[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI-style messages from ShareGPT turns; an unknown speaker is an error, not a guess."""
    out = []
    for i, turn in enumerate(conversations):
        speaker = turn.get("from")
        if speaker not in SHAREGPT_ROLES:
            raise ValueError(f"turn {i}: unknown speaker {speaker!r}")
        out.append({"role": SHAREGPT_ROLES[speaker], "content": str(turn.get("value", ""))})
    return out


class ChatFormatParams(BaseModel):
    model_config = PARAMS_CONFIG

    source: Literal["sharegpt"] = Field("sharegpt", description="The input chat layout.")


@register("data_op", "chat_format")
class ChatFormatMapper(Mapper):
    """Convert ShareGPT ``conversations`` to OpenAI ``messages`` (others pass unchanged)."""

    name: ClassVar[str] = "chat_format"
    Params: ClassVar[type[BaseModel]] = ChatFormatParams

    def map(self, doc: Document) -> Document:
        turns = doc.fields.get("conversations")
        if not isinstance(turns, list):
            return doc
        fields = {k: v for k, v in doc.fields.items() if k != "conversations"}
        try:
            fields["messages"] = sharegpt_to_messages(turns)
        except ValueError as exc:  # leave it for chat_roles to drop, with the reason
            return Document(doc.id, doc.fields, {**doc.meta, "chat_format_error": str(exc)})
        if isinstance(fields.get("tools"), str):
            try:  # Glaive/LLaMA-Factory keep tool schemas as a JSON string
                fields["tools"] = json.loads(fields["tools"])
            except json.JSONDecodeError:
                pass  # not JSON: keep the string as the user gave it
        return Document(doc.id, fields, dict(doc.meta))


class ChatRolesParams(BaseModel):
    model_config = PARAMS_CONFIG

    allow_tools: bool = Field(True, description="Allow tool results after an assistant turn.")
    require_system: bool = Field(False, description="Drop conversations without a system turn.")


def role_problem(messages: Any, allow_tools: bool = True, require_system: bool = False) -> str:
    """Why a conversation's turns are not in a valid order, or '' when they are."""
    if not isinstance(messages, list) or not messages:
        return "no messages"
    allowed = {
        "start": {"system", "user"},
        "system": {"user"},
        "user": {"assistant"},
        "assistant": {"user", "tool"} if allow_tools else {"user"},
        "tool": {"assistant", "tool"},
    }
    state = "start"
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        content = m.get("content") if isinstance(m, dict) else None
        if role not in allowed[state]:
            expected = " or ".join(sorted(allowed[state]))
            return f"bad turn order: turn {i} is {role!r}, expected {expected}"
        if not isinstance(content, str) or not content.strip():
            return f"empty turn: turn {i} ({role}) has no content"
        state = role
    if require_system and messages[0].get("role") != "system":
        return "no system turn"
    if state != "assistant":
        return f"bad ending: the last turn is {state!r}, not an assistant turn to learn from"
    return ""


@register("data_op", "chat_roles")
class ChatRolesFilter(Filter):
    """Drop conversations with turns out of order, empty turns, or no final assistant turn."""

    name: ClassVar[str] = "chat_roles"
    Params: ClassVar[type[BaseModel]] = ChatRolesParams

    def keep(self, doc: Document) -> Verdict:
        if "chat_format_error" in doc.meta:
            return Verdict.drop(f"bad chat format: {doc.meta['chat_format_error']}")
        p = self.params
        problem = role_problem(doc.fields.get("messages"), p.allow_tools, p.require_system)
        return Verdict.drop(problem) if problem else Verdict.ok()


class ChatLengthParams(BaseModel):
    model_config = PARAMS_CONFIG

    tokenizer: str = resource(
        "model", description="Tokenizer folder or catalog model name (smollm2-135m-instruct)."
    )
    max_tokens: int = Field(2048, ge=16, description="The model's context, in tokens.")


class _TokenCounting:
    params: Any
    _tok: Any = None

    def setup(self) -> None:
        if self._tok is None:
            self._tok = load_chat_tokenizer(self.params.tokenizer)

    def count(self, messages: list[dict[str, Any]]) -> int:
        self.setup()
        chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        return len(self._tok.apply_chat_template(chat, tokenize=True, return_dict=False))


@register("data_op", "chat_length")
class ChatLengthFilter(_TokenCounting, Filter):
    """Drop conversations over ``max_tokens`` once rendered with the model's chat template."""

    name: ClassVar[str] = "chat_length"
    Params: ClassVar[type[BaseModel]] = ChatLengthParams

    def keep(self, doc: Document) -> Verdict:
        messages = doc.fields.get("messages")
        if not isinstance(messages, list):
            return Verdict.ok()  # not a chat record: other checks own it
        n = self.count(messages)
        limit = self.params.max_tokens
        return Verdict.ok() if n <= limit else Verdict.drop(f"too long: {n} > {limit} tokens")


@register("data_op", "chat_truncate")
class ChatTruncateMapper(_TokenCounting, Mapper):
    """Drop whole turns from the end until it fits, still ending on an assistant turn."""

    name: ClassVar[str] = "chat_truncate"
    Params: ClassVar[type[BaseModel]] = ChatLengthParams

    def map(self, doc: Document) -> Document:
        messages = doc.fields.get("messages")
        if not isinstance(messages, list) or self.count(messages) <= self.params.max_tokens:
            return doc
        for end in range(len(messages) - 1, 0, -1):
            head = messages[:end]
            if head[-1].get("role") == "assistant" and self.count(head) <= self.params.max_tokens:
                meta = {**doc.meta, "truncated_turns": len(messages) - end}
                return Document(doc.id, {**doc.fields, "messages": head}, meta)
        return doc  # even the first exchange is too long: chat_length will drop it


def render_loss_mask(messages: list[dict[str, Any]], tokenizer: Any) -> list[tuple[str, bool]]:
    """The rendered conversation as ``(text, trained)`` segments, in order.

    Trained: each assistant turn's content and its end-of-turn token (the
    tokenizer's EOS, e.g. ``<|im_end|>``); not trained: everything else,
    including the role header the template puts before an assistant turn.
    The segments concatenate to ``apply_chat_template(messages)``. Found by
    rendering growing prefixes, which works for any template that renders a
    prefix of a conversation as a prefix of its rendering.
    """
    chat = [{"role": m["role"], "content": m["content"]} for m in messages]

    def render(part: list[dict[str, str]], prompt: bool = False) -> str:
        return tokenizer.apply_chat_template(part, tokenize=False, add_generation_prompt=prompt)

    eot = tokenizer.eos_token or ""
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(chat):
        if m["role"] != "assistant":
            continue
        prompt, full = render(chat[:i], prompt=True), render(chat[: i + 1])
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise InvalidRequestError(
                "This chat template does not render a conversation's prefix as a prefix "
                f"(at turn {i}); the loss mask cannot be shown for it.",
                param="messages",
            )
        body = full[len(prompt) :]
        cut = body.find(eot) + len(eot) if eot and eot in body else len(body)
        segments += [(prompt[len(done) :], False), (body[:cut], True), (body[cut:], False)]
        done = full
    segments.append((render(chat)[len(done) :], False))
    return [(text, trained) for text, trained in segments if text]


def loss_mask_tokens(messages: list[dict[str, Any]], tokenizer: Any) -> list[tuple[str, bool]]:
    """Each token of the rendered conversation with whether the loss is computed on it."""
    segments = render_loss_mask(messages, tokenizer)
    text = "".join(s for s, _ in segments)
    trained_at = [flag for s, flag in segments for _ in s]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [(text[a:b], bool(trained_at[a])) for a, b in enc["offset_mapping"] if b > a]


def loss_mask_html(messages: list[dict[str, Any]], tokenizer: Any) -> str:
    """A self-contained HTML page showing trained tokens (green) and context tokens (grey)."""
    spans = "".join(
        f"<span class='{'t' if trained else 'c'}'>{html.escape(tok)}</span>"
        for tok, trained in loss_mask_tokens(messages, tokenizer)
    )
    style = (
        "body{font:13px/1.6 ui-monospace,monospace;margin:24px;max-width:900px}"
        "div{white-space:pre-wrap;word-break:break-word}span{border-right:1px solid #fff}"
        ".t{background:#c9f2cf}.c{background:#eee;color:#666}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Loss mask</title>"
        f"<style>{style}</style></head><body><p><span class='t'>trained on</span> "
        f"<span class='c'>context only</span></p><div>{spans}</div></body></html>"
    )
