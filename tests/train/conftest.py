"""Fixtures for the training tests: tiny models with the real tokenizers, and real data rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tailorml.records import ChatRecord, ClassificationRecord, Message

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant"}


def dataset_file(relative: str) -> Path:
    path = DATASETS / relative
    if not path.is_file():
        pytest.skip(f"{relative} is not in ../shared/datasets; these tests need the shared data sets")
    return path


def sst2_records(split: str, n: int) -> list[ClassificationRecord]:
    """The first ``n`` rows of SST-2 ``train`` or ``dev`` as classification records."""
    with open(dataset_file(f"sst2/{split}.tsv"), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))[:n]
    return [ClassificationRecord(r["text_a"].strip(), r["label"]) for r in rows]


def glaive_chats(n: int | None = None) -> list[ChatRecord]:
    """Glaive conversations that are plain chat (those with tool calls are left out)."""
    chats = []
    path = dataset_file("chat_sharegpt/glaive_toolcall_en_demo.jsonl")
    for line in path.read_text(encoding="utf-8").splitlines():
        turns = json.loads(line)["conversations"]
        if all(t["from"] in SHAREGPT_ROLES for t in turns):
            chats.append(ChatRecord([Message(SHAREGPT_ROLES[t["from"]], t["value"]) for t in turns]))
    return chats[:n]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):
    from tailorml.train.sources import materialize
    from tailorml.train.tiny import build_tiny_model

    path = build_tiny_model("encoder", tmp_path_factory.mktemp("tiny") / "tiny-encoder")
    return materialize(str(path), model_cache)


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):
    from tailorml.train.sources import materialize
    from tailorml.train.tiny import build_tiny_model

    path = build_tiny_model("decoder", tmp_path_factory.mktemp("tiny") / "tiny-decoder")
    return materialize(str(path), model_cache)


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
