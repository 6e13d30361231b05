"""API4 (unrestricted resource consumption) on inference: one request could ask for any number of
embeddings or classifications (bounded only by the body size: about two million short inputs),
holding the model for minutes. OpenAI allows 2,048 inputs per request; so do we."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("route", ["/v1/embeddings", "/v1/classifications"])
def test_inputs_per_request_are_bounded(client, acme, route) -> None:  # type: ignore[no-untyped-def]
    res = client.post(route, headers=acme, json={"model": "minilm-l6", "input": ["hi"] * 2049})
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert error["param"] == "input" and "2048" in error["message"]
