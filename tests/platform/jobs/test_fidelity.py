"""The fidelity check: training's answers to the probes against the model as the serving
engine loads it. A trained model passes; the same model with its chat template changed after
training fails with the difference shown, in the library and as a job's training process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorml.errors import FidelityError
from tailorml.eval.fidelity import FIDELITY_FILE, write_expectations
from tailorml.platform.jobs.fidelity import check_served
from tailorml.platform.jobs.train_child import _after
from tailorml.train.loop import train
from tailorml.train.run import run_training
from tests.train.conftest import EventLog, glaive_chats, spam_records
from tests.train.test_loop import chat_spec, cls_spec
from tests.train.test_run import _jsonl

pytest.importorskip("torch", reason="training needs the ml extra (torch)")


def _corrupt_template(model_dir: Path) -> None:
    """What a lost or swapped template does: the served prompt is not the trained one."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        jinja.write_text("{{ 'Answer in French.\\n' }}" + jinja.read_text())
        return
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config["chat_template"] = "{{ 'Answer in French.\\n' }}" + config["chat_template"]
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))


def test_a_lora_chat_model_answers_as_trained_until_its_template_changes(
    tiny_decoder, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    chats = glaive_chats(10, max_chars=300)
    result = train(
        chat_spec(n_epochs=1), tiny_decoder, chats[:8], chats[8:], tmp_path, on_event=EventLog()
    )
    # The adapter on its base and the merged weights agree, or this raises.
    assert write_expectations(result.model_dir, chats[8:] + chats[:8]) == 4
    stored = json.loads((result.model_dir / FIDELITY_FILE).read_text())
    assert stored["task"] == "chat" and all(p["answer"]["tokens"] for p in stored["probes"])
    assert "answers the 4 probes as training did" in check_served(result.model_dir)
    _corrupt_template(result.model_dir)
    with pytest.raises(
        FidelityError, match=r"probe 1: token 1 .*(log-probability|training's model answers)"
    ):
        check_served(result.model_dir)


def test_a_classifier_passes_and_a_changed_head_fails(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch
    from safetensors.torch import load_file, save_file

    records = spam_records("train", 24)
    result = train(cls_spec(n_epochs=1), tiny_encoder, records, [], tmp_path, on_event=EventLog())
    write_expectations(result.model_dir, records)
    assert "as training did" in check_served(result.model_dir)
    weights = result.model_dir / "model.safetensors"
    state = load_file(weights)
    head = next(k for k in state if k.startswith("classifier") and k.endswith("bias"))
    state[head] = state[head] + torch.tensor([2.0, -2.0])  # the served weights are not the trained
    save_file(state, weights)
    with pytest.raises(FidelityError, match=r"probe 1: p\((ham|spam)\)"):
        check_served(result.model_dir)


def test_the_training_process_fails_a_job_whose_served_model_differs(
    tiny_decoder, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """As ``train_child`` runs it: the served check after training; a failure is the run's."""
    from tailorml.train.run_spec import RunSpec

    chats = glaive_chats(10, max_chars=300)
    spec = RunSpec(
        train=chat_spec(n_epochs=1, report=False),
        base=tiny_decoder,
        training_file=_jsonl(tmp_path / "train.jsonl", chats[:8]),
        validation_file=_jsonl(tmp_path / "valid.jsonl", chats[8:]),
        task="chat",
        out_dir=tmp_path / "out",
    )
    said: list[str] = []

    def corrupt_then_check(result, say) -> None:  # type: ignore[no-untyped-def]
        _corrupt_template(result.model_dir)
        _after("cpu", "auto", result, say)

    events: list[dict] = []
    with pytest.raises(FidelityError, match="not published"):
        run_training(spec, on_event=events.append, should_stop=lambda: False,
                     after_training=corrupt_then_check)  # fmt: skip
    result = run_training(
        spec, on_event=events.append, should_stop=lambda: False,
        after_training=lambda r, say: _after("cpu", "auto", r, said.append),
    )  # fmt: skip
    assert result.model_dir.is_dir() and any("as training did" in m for m in said)


def test_a_completion_model_is_probed_with_its_raw_prompt(tiny_decoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tailorml.records import CompletionRecord

    records = [CompletionRecord(f"Q: what is {i} plus {i}?\nA:", f" {2 * i}") for i in range(12)]
    spec = chat_spec(task="completion", n_epochs=1)
    result = train(spec, tiny_decoder, records[:10], records[10:], tmp_path, on_event=EventLog())
    assert write_expectations(result.model_dir, records[10:] + records[:10]) == 4
    probes = json.loads((result.model_dir / FIDELITY_FILE).read_text())["probes"]
    assert probes[0]["prompt"].startswith("Q: what is 10")
    assert "as training did" in check_served(result.model_dir)


def test_a_classifier_trained_short_is_probed_as_served(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Trained at max_length 16, served whole up to its context: the probes read the text
    as the engine does, so a long e-mail does not make training and serving disagree."""
    records = spam_records("train", 16)
    result = train(
        cls_spec(n_epochs=1, max_length=16),
        tiny_encoder,
        records,
        [],
        tmp_path,
        on_event=EventLog(),
    )
    assert write_expectations(result.model_dir, records) == 4
    assert "as training did" in check_served(result.model_dir)
