"""The pairwise judge: asking both ways round cancels position bias (identical answers always
tie), verdicts are probabilities, and the report carries the win rate with its interval."""

from __future__ import annotations

import pytest

from tailorml.eval.judge import judge_pairwise, load_judge, prefers_first
from tailorml.eval.report import build_report
from tailorml.train.loop import train
from tests.train.conftest import EventLog, glaive_chats
from tests.train.test_loop import chat_spec


def test_identical_answers_always_tie(tiny_decoder) -> None:  # type: ignore[no-untyped-def]
    items = [
        ("Order a pizza", "Sure, which size?", "Sure, which size?"),
        ("Hi", "Hello!", "Hello!"),
    ]
    verdict = judge_pairwise(tiny_decoder.path, items)
    assert (verdict["ties"], verdict["wins"], verdict["losses"]) == (2, 0, 0)
    assert verdict["win_rate"] == 0.5 and verdict["position_consistent"] == 0.0


def test_a_verdict_is_a_probability_and_depends_on_order(tiny_decoder) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = load_judge(tiny_decoder.path)
    one = prefers_first(model, tokenizer, "Order a pizza", "Sure, which size?", "No.")
    other = prefers_first(model, tokenizer, "Order a pizza", "No.", "Sure, which size?")
    assert 0 < one < 1 and 0 < other < 1 and one != pytest.approx(other, abs=1e-9)


def test_the_report_judges_base_against_tuned(tiny_decoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    chats = glaive_chats(14, max_chars=300)
    result = train(
        chat_spec(n_epochs=1), tiny_decoder, chats[:10], chats[10:], tmp_path, on_event=EventLog()
    )
    report = build_report(
        result.model_dir, tiny_decoder, chats[:10], chats[10:], training=result.metrics,
        judge=tiny_decoder.path,
    )  # fmt: skip
    verdict = report["evaluation"]["judge"]
    assert verdict["n"] == report["evaluation"]["n"] == 4
    assert verdict["wins"] + verdict["losses"] + verdict["ties"] == 4
    low, high = verdict["ci95"]
    assert 0 <= low <= verdict["win_rate"] <= high <= 1
