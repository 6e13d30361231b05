"""OpenAI's generation options in the engine: penalties, logprobs, n choices and
``response_format`` enforced by constrained decoding (llguidance), on the batched and the
sequential path alike."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest

from tailorml.errors import InvalidRequestError
from tailorml.serve import Engine, ModelRef
from tailorml.serve.backend import SamplingParams
from tailorml.serve.grammar import Grammar
from tailorml.serve.sampling import TokenPicker

from .conftest import TinyModels
from .test_batching import PROMPTS, load, request, tokens

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"enum": ["spam", "ham"]},
        "urgent": {"type": "boolean"},
        "score": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["label", "urgent", "score"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": SCHEMA}}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def ref(tiny: TinyModels) -> ModelRef:
    return ModelRef.from_folder("tiny-decoder", tiny.decoder)


def test_penalties_lower_the_scores_of_tokens_already_generated() -> None:
    import torch

    scores = torch.tensor([[0.0, 1.0, 3.0, 2.5]])
    plain = TokenPicker(SamplingParams(max_tokens=4, temperature=0), "cpu")
    assert [plain.pick(scores) for _ in range(3)] == [2, 2, 2]
    frequency = TokenPicker(
        SamplingParams(max_tokens=4, temperature=0, frequency_penalty=1.0), "cpu"
    )
    # 3.0 wins; then 3.0-1 < 2.5; then 3.0-1 > 2.5-1; then 2.5-1 > 3.0-2 = 1.0
    assert [frequency.pick(scores) for _ in range(4)] == [2, 3, 2, 3]
    presence = TokenPicker(SamplingParams(max_tokens=4, temperature=0, presence_penalty=2.5), "cpu")
    assert [presence.pick(scores) for _ in range(3)] == [2, 3, 1]  # once is enough to count


def test_a_frequency_penalty_makes_answers_repeat_less(engine: Engine, ref: ModelRef) -> None:
    def repeats(**extra: float) -> int:
        out = engine.complete(ref, PROMPTS[1], max_tokens=40, temperature=0, logprobs=0, **extra)
        ids = [e["token"] for e in out.choices[0].logprobs or []]
        return len(ids) - len(set(ids))

    assert repeats(frequency_penalty=2.0) < repeats()


def test_logprobs_are_those_of_the_chosen_tokens(engine: Engine, ref: ModelRef) -> None:
    out = engine.complete(ref, PROMPTS[2], max_tokens=12, temperature=0, logprobs=3)
    entries = out.choices[0].logprobs
    assert entries is not None and len(entries) == out.completion_tokens
    for entry in entries:
        top = entry["top_logprobs"]
        assert len(top) == 3 and entry["logprob"] <= 0
        assert entry["logprob"] == pytest.approx(top[0]["logprob"])  # greedy: the likeliest
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert sum(math.exp(t["logprob"]) for t in top) <= 1 + 1e-6
        assert entry["bytes"] == list(entry["token"].encode("utf-8"))
    assert "".join(e["token"] for e in entries) == out.text
    assert engine.complete(ref, PROMPTS[2], max_tokens=3).choices[0].logprobs is None


def test_json_schema_answers_parse_and_validate(engine: Engine, ref: ModelRef) -> None:
    """The tiny model's weights are random, so only the grammar makes its answers JSON."""
    free = engine.complete(ref, PROMPTS[0], max_tokens=30, temperature=0).text
    assert not free.lstrip().startswith("{")
    for prompt in PROMPTS[:4]:
        for temperature in (0.0, 1.0):
            out = engine.complete(ref, prompt, max_tokens=60, temperature=temperature,
                                  seed=3, response_format=JSON_SCHEMA)  # fmt: skip
            assert out.finish_reason == "stop", out.text
            jsonschema.validate(json.loads(out.text), SCHEMA)


def test_json_object_answers_start_as_objects(engine: Engine, ref: ModelRef) -> None:
    out = engine.complete(ref, PROMPTS[3], max_tokens=40, temperature=0,
                          response_format={"type": "json_object"})  # fmt: skip
    assert out.text.lstrip().startswith("{")
    if out.finish_reason == "stop":
        assert isinstance(json.loads(out.text), dict)


def test_constrained_batched_and_sequential_answers_agree(tiny: TinyModels) -> None:
    base = load(tiny)
    assert base.batcher is not None
    stops = base.stop_token_ids(None)
    req = request(base, PROMPTS[4], max_tokens=60, stop_token_ids=stops,
                  grammar=Grammar.from_schema(SCHEMA))  # fmt: skip
    compiler = base._grammars()
    one = tokens(base.scheduler.generate(req, compiler.matcher(req.params.grammar, stops)))
    batched = tokens(base.batcher.generate(req, compiler.matcher(req.params.grammar, stops)))
    assert one == batched
    text = base.tokenizer(None).decode(one)
    jsonschema.validate(json.loads(text), SCHEMA)


def test_n_choices_differ_and_a_seed_repeats_them(engine: Engine, ref: ModelRef) -> None:
    first = engine.complete(ref, PROMPTS[5], max_tokens=10, temperature=1.0, seed=11, n=3)
    again = engine.complete(ref, PROMPTS[5], max_tokens=10, temperature=1.0, seed=11, n=3)
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert len({c.text for c in first.choices}) == 3
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert first.completion_tokens == sum(c.completion_tokens for c in first.choices)
    single = engine.complete(ref, PROMPTS[5], max_tokens=10, temperature=1.0, seed=11)
    assert single.text == first.choices[0].text  # choice 0 is the n=1 answer
    pieces = list(engine.stream_complete(ref, PROMPTS[5], max_tokens=6, temperature=0, n=2))
    ends = [d for d in pieces if d.finish_reason is not None]
    assert sorted(d.index for d in ends) == [0, 1]
    assert engine.admission.stats().in_flight == {}


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"frequency_penalty": "a lot"}, "frequency_penalty"),
        ({"logprobs": 21}, "top_logprobs"),
        ({"n": 17}, "n"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
        ),  # fmt: skip
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "objectx"}},
                }
            },
            "response_format",
        ),  # fmt: skip
    ],
)
def test_bad_options_are_refused_before_any_work(
    engine: Engine, ref: ModelRef, options: dict, param: str
) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidRequestError) as refused:
        engine.complete(ref, PROMPTS[0], max_tokens=2, **options)
    assert refused.value.param == param
    assert engine.admission.stats().in_flight == {}
