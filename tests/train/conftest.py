"""Helpers for the training tests: real data rows and an event log (tiny models: tests/conftest.py)."""

from __future__ import annotations

from tailorml.records import ChatRecord, ClassificationRecord, Message
from tests import fixture_data

SHAREGPT_ROLES = {"human": "user", "gpt": "assistant"}


def spam_records(split: str, n: int) -> list[ClassificationRecord]:
    """The first ``n`` e-mails of the SpamAssassin ``train`` or ``dev`` split, ``ham``/``spam``."""
    return [ClassificationRecord(t, label) for label, t in fixture_data.spam_rows(split)[:n]]


def glaive_chats(n: int | None = None, max_chars: int | None = None) -> list[ChatRecord]:
    """Glaive conversations that are plain chat (those with tool calls are left out).

    ``max_chars`` keeps only conversations that short, so tiny-model tests
    can use a small max_length without cutting every reply off.
    """
    chats = []
    for record in fixture_data.glaive_records():
        turns = record["conversations"]
        size = sum(len(t["value"]) for t in turns)
        if max_chars is not None and size > max_chars:
            continue
        if all(t["from"] in SHAREGPT_ROLES for t in turns):
            chats.append(
                ChatRecord([Message(SHAREGPT_ROLES[t["from"]], t["value"]) for t in turns])
            )
    return chats[:n]


class EventLog:
    """Collects ``on_event`` dicts; a test reads the metrics or messages back."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    @property
    def metrics(self) -> list[dict]:
        return [e for e in self.events if e["type"] == "metrics"]

    @property
    def messages(self) -> list[str]:
        return [e["message"] for e in self.events if e["type"] == "message"]
