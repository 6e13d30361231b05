"""Admission control and fairness: bounded work per model and per tenant, refused fast with a
429 and Retry-After; schedulers take turns between tenants."""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from pathlib import Path

import pytest

from tailorml.errors import InvalidRequestError, RateLimitError
from tailorml.serve import Engine, ModelRef
from tailorml.serve.admission import Admission
from tailorml.serve.encoder_batching import _fair_take, _Job

from .conftest import TinyModels
from .test_batching import PROMPTS, load, request


def test_a_tenant_over_its_concurrency_is_refused_while_others_go_on() -> None:
    admission = Admission(max_queue=10, tenant_concurrency=2)
    held = [admission.enter("m", "acme"), admission.enter("m", "acme")]
    with pytest.raises(RateLimitError) as refused:
        admission.enter("m", "acme")
    assert refused.value.status_code == 429 and refused.value.code == "rate_limit_exceeded"
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    assert "2 requests in flight" in refused.value.message
    other = admission.enter("m", "globex")  # another tenant is not held back
    held[0].release()
    held[0].release()  # idempotent: frees one place, not two
    again = admission.enter("m", "acme")
    with pytest.raises(RateLimitError):
        admission.enter("m", "acme")
    assert admission.stats().by_tenant == {"acme": 2, "globex": 1}
    assert admission.stats().rejected == {"tenant_concurrency": 2}
    for ticket in (held[1], other, again):
        ticket.release()


def test_a_pre_check_refuses_a_tenant_at_its_bound_without_taking_a_place() -> None:
    admission = Admission(max_queue=10, tenant_concurrency=2)
    admission.check_tenant("acme")  # nothing in flight: no refusal, and no ticket taken
    held = [admission.enter("m", "acme"), admission.enter("m", "acme")]
    with pytest.raises(RateLimitError) as refused:
        admission.check_tenant("acme")
    assert refused.value.code == "rate_limit_exceeded" and refused.value.retry_after >= 1
    admission.check_tenant("globex")
    held[0].release()
    admission.check_tenant("acme")
    assert admission.stats().by_tenant == {"acme": 1}
    assert admission.stats().rejected == {"tenant_concurrency": 1}
    held[1].release()
    assert admission.stats().in_flight == {} and admission.stats().by_tenant == {}


def test_the_model_queue_is_bounded_for_every_tenant_together() -> None:
    admission = Admission(max_queue=3, tenant_concurrency=3)
    tickets = [admission.enter("m", t) for t in ("a", "b", None)]
    with pytest.raises(RateLimitError, match="queue"):
        admission.enter("m", "c")
    other_model = admission.enter("n", "c")  # a different base has its own queue
    tickets[2].release()
    admission.enter("m", "c").release()
    for ticket in (*tickets[:2], other_model):
        ticket.release()


def test_an_operator_sets_one_tenants_limit() -> None:
    admission = Admission(tenant_concurrency=5)
    admission.set_tenant_limit("small", 1)
    first = admission.enter("m", "small")
    with pytest.raises(RateLimitError, match="1 requests in flight"):
        admission.enter("m", "small")
    assert admission.tenant_limit("big") == 5
    admission.set_tenant_limit("small", None)
    admission.enter("m", "small").release()
    first.release()
    with pytest.raises(ValueError):
        admission.set_tenant_limit("small", 0)


def test_retry_after_follows_how_long_requests_take() -> None:
    admission = Admission(max_queue=1)
    ticket = admission.enter("m", None)
    ticket._start -= 7.2  # this request took about 7 s
    ticket.release()
    held = admission.enter("m", None)
    with pytest.raises(RateLimitError) as refused:
        admission.enter("m", None)
    assert refused.value.retry_after == 8
    held.release()


def test_the_engine_refuses_before_any_work_and_frees_places(tiny: TinyModels) -> None:
    engine = Engine(tenant_concurrency=1)
    ref = ModelRef.from_folder("tiny-decoder", tiny.decoder)
    stream = engine.stream_complete(ref, PROMPTS[1], max_tokens=4, tenant="acme")
    with pytest.raises(RateLimitError):  # its stream holds acme's one place
        engine.complete(ref, PROMPTS[0], max_tokens=2, tenant="acme")
    assert engine.complete(ref, PROMPTS[0], max_tokens=2, tenant="globex").completion_tokens
    assert "".join(d.text for d in stream) is not None  # read to the end: the place is free
    engine.complete(ref, PROMPTS[0], max_tokens=2, tenant="acme")
    abandoned = engine.stream_complete(ref, PROMPTS[1], max_tokens=4, tenant="acme")
    del abandoned  # dropped before it started: collecting it frees the place
    gc.collect()
    engine.complete(ref, PROMPTS[0], max_tokens=2, tenant="acme")
    with pytest.raises(InvalidRequestError):  # a failed check frees its place too
        engine.complete(ref, PROMPTS[0], max_tokens=10**6, tenant="acme")
    engine.complete(ref, PROMPTS[0], max_tokens=2, tenant="acme")
    assert engine.admission.stats().by_tenant == {}
    scraped = engine.metrics.registry.get_sample_value(
        "tailorml_admission_rejected_total",
        {"base": Path(tiny.decoder).name, "reason": "tenant_concurrency"},
    )
    assert scraped == 1.0


def test_a_flooding_tenant_does_not_hold_back_anothers_request(tiny: TinyModels) -> None:
    """Two slots; acme queues six answers, then globex one. In arrival order globex would be
    last; taking turns, it goes in as soon as a slot frees, before acme's third."""
    base = load(tiny, max_batch=2)
    assert base.batcher is not None
    flood = [request(base, PROMPTS[i], max_tokens=12) for i in range(6)]
    flood = [type(r)(f"a{i}", r.prompt_ids, r.params, None, "acme") for i, r in enumerate(flood)]
    single = request(base, PROMPTS[6], max_tokens=12)
    single = type(single)("g", single.prompt_ids, single.params, None, "globex")
    streams = [base.batcher.generate(r) for r in [*flood, single]]
    finished: deque[str] = deque()

    def drain(name: str, stream) -> None:  # type: ignore[no-untyped-def]
        for _ in stream:
            pass
        finished.append(name)

    threads = [
        threading.Thread(target=drain, args=(r.request_id, s))
        for r, s in zip([*flood, single], streams, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    order = list(finished)
    assert len(order) == 7
    assert order.index("g") < 4, order  # among the first four done, not the seventh


def test_encoder_batches_take_turns_between_tenants() -> None:
    def job(tenant: str, rows: int) -> _Job:
        return _Job([[1, 2, 3]] * rows, None, True, tenant)

    waiting = deque([job("acme", 8) for _ in range(10)] + [job("globex", 1)])
    taken = _fair_take(waiting, max_rows=16)
    assert [j.tenant for j in taken] == ["acme", "globex"]  # in arrival order: acme, acme
    many = deque([job("a", 1) for _ in range(5)] + [job("b", 1) for _ in range(5)])
    assert [j.tenant for j in _fair_take(many, max_rows=4)] == ["a", "b", "a", "b"]
    huge = deque([job("a", 40), job("b", 1)])
    assert [len(j.batch) for j in _fair_take(huge, max_rows=16)] == [40]  # first always goes


def test_concurrent_requests_over_the_limit_get_fast_429s(tiny: TinyModels) -> None:
    """Eight at once from a tenant allowed two: the others are refused in milliseconds."""
    engine = Engine(tenant_concurrency=2)
    ref = ModelRef.from_folder("tiny-decoder", tiny.decoder)
    engine.complete(ref, PROMPTS[0], max_tokens=1)  # loaded before the clock starts
    barrier = threading.Barrier(8)
    outcomes: list[tuple[str, float]] = []

    def one() -> None:
        barrier.wait()
        start = time.monotonic()
        try:
            engine.complete(ref, PROMPTS[3], max_tokens=40, tenant="acme")
            outcomes.append(("ok", time.monotonic() - start))
        except RateLimitError:
            outcomes.append(("429", time.monotonic() - start))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    refused = [t for kind, t in outcomes if kind == "429"]
    assert len(outcomes) == 8 and len(refused) >= 5
    assert max(refused) < 0.05
