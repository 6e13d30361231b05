"""Helpers for the training tests: real data rows and an event log (tiny models: tests/conftest.py)."""

from __future__ import annotations

import csv
import json

from tailorml.records import ChatRecord, ClassificationRecord, Message
from tests.conftest import shared_dataset

SHAREGPT_ROLES = {"human": "user", "gpt": "assistant"}


def sst2_records(split: str, n: int) -> list[ClassificationRecord]:
    """The first ``n`` rows of SST-2 ``train`` or ``dev`` as classification records."""
    with open(shared_dataset("sst2", f"{split}.tsv"), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))[:n]
    return [ClassificationRecord(r["text_a"].strip(), r["label"]) for r in rows]


def glaive_chats(n: int | None = None, max_chars: int | None = None) -> list[ChatRecord]:
    """Glaive conversations that are plain chat (those with tool calls are left out).

    ``max_chars`` keeps only conversations that short, so tiny-model tests
    can use a small max_length without cutting every reply off.
    """
    chats = []
    path = shared_dataset("chat_sharegpt", "glaive_toolcall_en_demo.jsonl")
    for line in path.read_text(encoding="utf-8").splitlines():
        turns = json.loads(line)["conversations"]
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
