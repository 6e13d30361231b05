"""GET /metrics: HTTP answers by route, status and error code, and the serving engine's metrics."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.platform.api.test_inference import adapters, chat, register  # noqa: F401

ADMIN = {"Authorization": "Bearer admin-test-key"}


def samples(client) -> dict[tuple[str, frozenset], float]:  # type: ignore[no-untyped-def,type-arg]
    """Every sample of /metrics as {(name, labels): value}."""
    res = client.get("/metrics", headers=ADMIN)
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(res.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def test_metrics_need_an_admin_key(client, acme) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=acme).status_code == 403
    found = samples(client)
    # The refusals above are counted, by route template and error code.
    assert value(found, "tailorml_http_errors_total", route="/metrics", status="403") == 1
    assert value(found, "tailorml_http_errors_total", status="401") >= 1
    # Scraping does not start the engine (no torch in a control-plane process).
    assert client.app.state.tailor.started_serving is None
    assert not any(name.startswith("tailorml_time_to_first") for name, _ in found)


def test_generation_metrics_follow_the_requests(client, acme, adapters: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = register(client, "acme", "a", adapters["a"])
    first = chat(client, acme, model).json()
    streamed = chat(client, acme, model, stream=True)
    assert streamed.status_code == 200
    missing = chat(client, acme, "ft:tiny-llama:acme:nope:00000000")
    assert missing.status_code == 404

    found = samples(client)
    labels = {"model": model, "base": "tiny-llama"}
    assert value(found, "tailorml_time_to_first_token_seconds_count", **labels) == 2
    assert value(found, "tailorml_request_duration_seconds_count", kind="generation", **labels) == 2
    assert value(found, "tailorml_engine_requests_total", outcome="ok", **labels) == 2
    # Both are the same greedy answer, so the counter holds exactly twice what one reported.
    generated = value(found, "tailorml_generated_tokens_total", **labels)
    assert generated == 2 * first["usage"]["completion_tokens"]
    prompt = value(found, "tailorml_prompt_tokens_total", kind="generation", **labels)
    assert prompt == 2 * first["usage"]["prompt_tokens"]
    # The scheduler's counters, read at scrape time: batched decoding ran.
    assert value(found, "tailorml_decode_forwards_total", base="tiny-llama") > 0
    assert value(found, "tailorml_decode_rows_total", base="tiny-llama") >= value(
        found, "tailorml_decode_forwards_total", base="tiny-llama"
    )
    assert value(found, "tailorml_adapter_loads_total", base="tiny-llama") == 1
    assert value(found, "tailorml_running", base="tiny-llama") == 0
    route = "/v1/chat/completions"
    assert value(found, "tailorml_http_requests_total", route=route, status="200") == 2
    assert value(found, "tailorml_http_errors_total", route=route, code="model_not_found") == 1


def test_error_codes_are_read_from_openai_shaped_bodies() -> None:
    from tailorml.platform.api.metrics import _error_code

    body = b'{"error": {"message": "x", "type": "requests", "code": "rate_limit_exceeded"}}'
    assert _error_code(body) == "rate_limit_exceeded"
    assert _error_code(b'{"error": {"message": "x", "type": "insufficient_quota"}}') == (
        "insufficient_quota"
    )
    assert _error_code(b"not json") == ""
    assert _error_code(b'{"error": {"code": "a code with spaces <script>"}}') == ""
    assert _error_code(b'{"detail": "plain"}') == ""
