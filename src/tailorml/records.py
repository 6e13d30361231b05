"""The record types every stage passes along, and the training-file formats.

One JSONL line is one record. The task follows from the keys present
(DESIGN.md, "Data formats"):

=================  ==========================================================
chat               ``{"messages": [{"role", "content"}, ...]}``
completion         ``{"prompt": str, "completion": str}``
classification     ``{"text": str, "label": str}``
preference         ``{"input": {"messages"}, "preferred_output", "non_preferred_output"}``
embedding          ``{"anchor": str, "positive": str, "negative"?: str}``
=================  ==========================================================

``parse_record`` turns a decoded line into a record or raises ``ValueError``
with the reason; ``read_records`` reads a whole file and reports every bad
line with its number, never dropping one silently.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tailorml.errors import FileFormatError

Task = Literal["chat", "completion", "classification", "preference", "embedding"]
TASKS: tuple[Task, ...] = ("chat", "completion", "classification", "preference", "embedding")
ROLES = ("system", "user", "assistant", "tool")


@dataclass(slots=True)
class Message:
    role: str
    content: str


@dataclass(slots=True)
class ChatRecord:
    messages: list[Message]
    task: Task = "chat"


@dataclass(slots=True)
class CompletionRecord:
    prompt: str
    completion: str
    task: Task = "completion"


@dataclass(slots=True)
class ClassificationRecord:
    text: str
    label: str
    task: Task = "classification"


@dataclass(slots=True)
class PreferenceRecord:
    messages: list[Message]
    preferred: list[Message]
    non_preferred: list[Message]
    task: Task = "preference"


@dataclass(slots=True)
class EmbeddingPairRecord:
    """A text and one that should embed close to it; ``negative`` (optional) one that should
    not, though it looks alike (a hard negative: the best use of a contrastive batch)."""

    anchor: str
    positive: str
    task: Task = "embedding"
    negative: str | None = None


Record = (
    ChatRecord | CompletionRecord | ClassificationRecord | PreferenceRecord | EmbeddingPairRecord
)


def infer_task(obj: dict[str, Any]) -> Task:
    """The task a decoded line belongs to, from its keys."""
    keys = set(obj)
    if "input" in keys and "preferred_output" in keys:
        return "preference"
    if "messages" in keys:
        return "chat"
    if {"prompt", "completion"} <= keys:
        return "completion"
    if {"text", "label"} <= keys:
        return "classification"
    if {"anchor", "positive"} <= keys:
        return "embedding"
    raise ValueError(
        f"keys {sorted(keys)} match no format; use messages, prompt/completion, "
        "text/label, anchor/positive or input/preferred_output/non_preferred_output"
    )


def _string(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{key!r} is empty")
    return value


def _messages(value: Any, where: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise ValueError(f"{where}[{i}] must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ValueError(f"{where}[{i}].role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"{where}[{i}].content must be a string")
        out.append(Message(role, content))
    return out


def parse_record(obj: Any, task: Task | None = None) -> Record:
    """Turn one decoded JSON value into a record, or raise ``ValueError`` saying why."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    found = infer_task(obj)
    if task is not None and found != task:
        raise ValueError(f"looks like a {found} record but the file is {task}")
    if found == "chat":
        messages = _messages(obj["messages"], "messages")
        if not any(m.role == "assistant" for m in messages):
            raise ValueError("messages has no assistant turn to learn from")
        if not any(m.role == "assistant" and m.content.strip() for m in messages):
            raise ValueError("every assistant turn is empty")
        return ChatRecord(messages)
    if found == "completion":
        return CompletionRecord(_string(obj, "prompt"), _string(obj, "completion"))
    if found == "classification":
        label = obj.get("label")
        if isinstance(label, bool) or not isinstance(label, str | int):
            raise ValueError("'label' must be a string or an integer")
        return ClassificationRecord(_string(obj, "text"), str(label))
    if found == "embedding":
        negative = _string(obj, "negative") if obj.get("negative") is not None else None
        return EmbeddingPairRecord(
            _string(obj, "anchor"), _string(obj, "positive"), negative=negative
        )
    inp = obj.get("input")
    if not isinstance(inp, dict):
        raise ValueError("'input' must be an object with messages")
    return PreferenceRecord(
        _messages(inp.get("messages"), "input.messages"),
        _messages(obj.get("preferred_output"), "preferred_output"),
        _messages(obj.get("non_preferred_output"), "non_preferred_output"),
    )


def record_to_dict(record: Record) -> dict[str, Any]:
    """The JSONL form of a record (inverse of ``parse_record``)."""
    if isinstance(record, ChatRecord):
        return {"messages": [{"role": m.role, "content": m.content} for m in record.messages]}
    if isinstance(record, CompletionRecord):
        return {"prompt": record.prompt, "completion": record.completion}
    if isinstance(record, ClassificationRecord):
        return {"text": record.text, "label": record.label}
    if isinstance(record, EmbeddingPairRecord):
        pair = {"anchor": record.anchor, "positive": record.positive}
        return pair if record.negative is None else {**pair, "negative": record.negative}

    def msgs(ms: list[Message]) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in ms]

    return {
        "input": {"messages": msgs(record.messages)},
        "preferred_output": msgs(record.preferred),
        "non_preferred_output": msgs(record.non_preferred),
    }


@dataclass
class FileSummary:
    """What validation learned about a training file."""

    task: Task
    n_records: int
    labels: dict[str, int] = field(default_factory=dict)


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any | ValueError]]:
    """Yield ``(line_number, decoded value or the decode error)`` for non-blank lines."""
    with open(path, encoding="utf-8", errors="strict") as fh:
        n = 0
        while True:
            n += 1
            try:
                line = fh.readline()
            except UnicodeDecodeError as exc:
                yield n, ValueError(f"not valid UTF-8 ({exc.reason})")
                return
            if not line:
                return
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})")


def read_records(path: Path, task: Task | None = None, max_problems: int = 100) -> list[Record]:
    """Read and validate a JSONL training file; raise ``FileFormatError`` listing every bad line.

    The first valid line fixes the task when ``task`` is not given, so a file
    that mixes formats is reported line by line.
    """
    records: list[Record] = []
    problems: list[tuple[int, str]] = []
    for n, value in iter_jsonl(path):
        if isinstance(value, ValueError):
            problems.append((n, str(value)))
            continue
        try:
            rec = parse_record(value, task)
        except ValueError as exc:
            problems.append((n, str(exc)))
            continue
        task = task or rec.task
        records.append(rec)
        if len(problems) >= max_problems:
            break
    if problems:
        raise FileFormatError(
            f"{path.name} has {len(problems)} invalid line(s); fix them and upload again:",
            problems=problems,
        )
    if not records:
        raise FileFormatError(f"{path.name} holds no records; a JSONL file needs one per line.")
    return records


def summarize(records: list[Record]) -> FileSummary:
    """Task, size and (for classification) the label counts of validated records."""
    labels = Counter(r.label for r in records if isinstance(r, ClassificationRecord))
    return FileSummary(task=records[0].task, n_records=len(records), labels=dict(labels))
