"""The training-record index is built in the representation the serving engine uses: a
training text served back finds itself first, with its line and label."""

from __future__ import annotations

import pytest

from tailorml.errors import InvalidRequestError
from tailorml.eval.neighbors import build_index
from tailorml.models.neighbors import read_index
from tailorml.serve import Engine, ModelRef
from tailorml.train.loop import train
from tests.train.conftest import EventLog, glaive_chats, spam_records
from tests.train.test_loop import chat_spec, cls_spec


def test_a_training_text_finds_itself(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    records = spam_records("train", 24)
    result = train(cls_spec(n_epochs=1), tiny_encoder, records, [], tmp_path, on_event=EventLog())
    assert build_index(result.model_dir, records, list(range(1, 25))) == 24
    index = read_index(result.model_dir)
    assert index is not None and index.vectors.shape[0] == 24
    ref = ModelRef.from_folder("ft:tiny:acme::1", result.model_dir)
    engine = Engine()
    probes = [records[3].text, records[17].text]
    found, tokens = engine.neighbors(ref, probes, 3)
    assert tokens > 0
    for near, line in zip(found, (4, 18), strict=True):
        assert near[0]["line"] == line and near[0]["similarity"] == pytest.approx(1.0, abs=2e-3)
        assert near[0]["label"] == records[line - 1].label
        assert near[0]["similarity"] >= near[1]["similarity"] >= near[2]["similarity"]
    with pytest.raises(InvalidRequestError, match="between 1 and 50"):
        engine.neighbors(ref, probes, 0)


def test_a_lora_chat_model_is_indexed_by_its_user_turns(tiny_decoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    chats = glaive_chats(6, max_chars=300)
    result = train(chat_spec(n_epochs=1), tiny_decoder, chats, [], tmp_path, on_event=EventLog())
    build_index(result.model_dir, chats, list(range(1, 7)))
    ref = ModelRef.from_folder("ft:tiny:acme::2", result.model_dir)
    users = [[m.content for m in c.messages if m.role == "user"][-1] for c in chats]
    unique = next(i for i, u in enumerate(users) if users.count(u) == 1)  # chats repeat asks
    (near,), _ = Engine().neighbors(ref, [users[unique]], 2)
    assert near[0]["line"] == unique + 1 and near[0]["similarity"] == pytest.approx(1.0, abs=2e-3)
    assert near[1]["similarity"] < 0.999 and near[0]["answer"]


def test_a_model_without_an_index_is_refused(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref = ModelRef.from_folder("minilm", tiny_encoder.path)
    with pytest.raises(InvalidRequestError, match="no index of its training records"):
        Engine().neighbors(ref, ["x"], 1)
