"""API4:2023 Unrestricted Resource Consumption on request shapes: stop lists, stop length,
max_tokens and message counts are capped before any model work, each with a clear 400 in
OpenAI's error shape naming the field."""

from __future__ import annotations

import pytest

from tests.platform import conftest as platform

settings, client, acme = platform.settings, platform.client, platform.acme

CHAT = {"model": "minilm-l6", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": "x" * 257}, "stop"),
        ({"max_tokens": 10**9}, "max_tokens"),
        ({"max_completion_tokens": 10**9}, "max_completion_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}] * 2049}, "messages"),
    ],
)
def test_chat_request_shapes_are_bounded(client, acme, extra, param) -> None:  # type: ignore[no-untyped-def]
    res = client.post("/v1/chat/completions", headers=acme, json={**CHAT, **extra})
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]
