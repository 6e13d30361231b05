"""The official ``openai`` SDK against /v1, unchanged: sync, async and streaming clients, with
n choices, logprobs, penalties, seeds, structured outputs (``response_format`` json_schema and
``chat.completions.parse``) and usage in the last streamed chunk. On a tiny Llama whose
weights are random, so only constrained decoding can make its answers JSON."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import httpx
import jsonschema
import pytest
from pydantic import BaseModel

pytest.importorskip("torch", reason="inference needs the ml extra (torch)")

from openai import AsyncOpenAI, BadRequestError, OpenAI  # noqa: E402

from tests.platform.api.test_inference import adapters, register  # noqa: E402, F401

SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["spam", "ham"]}, "urgent": {"type": "boolean"}},
    "required": ["label", "urgent"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "user", "content": "Is this mail spam? 'You won a prize, send your bank details.'"}
]


class Verdict(BaseModel):
    label: Literal["spam", "ham"]
    urgent: bool


def sdk(client, headers) -> OpenAI:  # type: ignore[no-untyped-def]
    key = headers["Authorization"].removeprefix("Bearer ")
    return OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0)


def test_chat_with_choices_logprobs_and_a_schema(client, acme, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = register(client, "acme", "sdk", adapters["a"])
    openai = sdk(client, acme)
    out = openai.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=40, temperature=0.8, seed=5, n=3,
        logprobs=True, top_logprobs=2, frequency_penalty=0.5,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "verdict", "schema": SCHEMA, "strict": True}},
    )  # fmt: skip
    assert [c.index for c in out.choices] == [0, 1, 2]
    for choice in out.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content or ""), SCHEMA)
        entries = choice.logprobs.content if choice.logprobs else None
        # at most two alternatives: fewer where the schema allows fewer tokens
        assert entries and all(1 <= len(e.top_logprobs) <= 2 for e in entries)
        assert "".join(e.token for e in entries) == choice.message.content
    assert out.usage is not None
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    again = openai.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=40, temperature=0.8, seed=5, n=3,
        logprobs=True, top_logprobs=2, frequency_penalty=0.5,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "verdict", "schema": SCHEMA, "strict": True}},
    )  # fmt: skip
    assert [c.message.content for c in again.choices] == [c.message.content for c in out.choices]


def test_structured_outputs_parse_into_a_pydantic_model(client, acme, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = register(client, "acme", "parse", adapters["b"])
    parsed = sdk(client, acme).chat.completions.parse(
        model=model, messages=MESSAGES, max_tokens=40, temperature=0, response_format=Verdict
    )
    verdict = parsed.choices[0].message.parsed
    assert isinstance(verdict, Verdict) and verdict.label in ("spam", "ham")


def test_streaming_ends_with_usage_and_keeps_choices_apart(client, acme, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = register(client, "acme", "stream", adapters["a"])
    openai = sdk(client, acme)
    whole = openai.chat.completions.create(model=model, messages=MESSAGES, max_tokens=12,
                                           temperature=0, n=2)  # fmt: skip
    stream = openai.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=12, temperature=0, n=2, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    texts = {0: "", 1: ""}
    finished = set()
    chunks = list(stream)
    for chunk in chunks[:-1]:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1}
    assert [texts[0], texts[1]] == [c.message.content for c in whole.choices]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_legacy_completions_carry_their_logprobs(client, acme, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = register(client, "acme", "legacy", adapters["b"])
    prompt = "The capital of France is"
    out = sdk(client, acme).completions.create(
        model=model, prompt=prompt, max_tokens=6, temperature=0, logprobs=2
    )
    logprobs = out.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs
    assert "".join(logprobs.tokens) == out.choices[0].text
    assert logprobs.text_offset and logprobs.text_offset[0] == len(prompt)
    assert all(len(top) <= 2 for top in logprobs.top_logprobs or [])


def test_the_async_client_works_unchanged(client, acme, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = register(client, "acme", "async", adapters["a"])
    key = acme["Authorization"].removeprefix("Bearer ")

    async def run() -> list[str]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            openai = AsyncOpenAI(base_url="http://testserver/v1", api_key=key,
                                 http_client=http, max_retries=0)  # fmt: skip
            answers = await asyncio.gather(*[
                openai.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8,
                                               temperature=0, seed=i)
                for i in range(4)
            ])  # fmt: skip
            return [a.choices[0].message.content or "" for a in answers]

    answers = asyncio.run(run())
    assert len(set(answers)) == 1 and answers[0]  # greedy: the same answer four times


def test_bad_options_answer_openai_errors(client, acme, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = register(client, "acme", "bad", adapters["a"])
    openai = sdk(client, acme)
    bad_schema = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "objectx"}},
    }
    for kwargs in (
        {"response_format": bad_schema},
        {"top_logprobs": 2},  # without logprobs=True
        {"n": 17},
        {"presence_penalty": 3},
    ):
        with pytest.raises(BadRequestError) as refused:
            openai.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4, **kwargs)
        assert refused.value.status_code == 400
