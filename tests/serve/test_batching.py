"""Continuous batching: requests that join and leave one batch answer exactly what they answer
alone (greedy, token for token), each row with its own adapter, prompts prefilled in chunks,
slots freed when a client goes away, and the KV budget respected."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tailorml.errors import ModelUnavailableError
from tailorml.serve import ModelRef
from tailorml.serve.backend import GenerationRequest, LoadConfig, SamplingParams
from tailorml.serve.bases import AdapterRequest, adapter_request, base_spec
from tailorml.serve.torch_backend import TorchBackend, TorchBase

from .conftest import TinyModels

PROMPTS = [
    "Hi",
    "Write a poem about the sea and the wind over it.",
    "What is two plus two?",
    "List the planets of the solar system, from the sun outwards, with one fact each.",
    "Translate 'good morning' into French.",
    "Tell me a story.",
    "Why is the sky blue? Explain it to a child in three sentences or fewer, please.",
    "Name a colour.",
]


def load(tiny: TinyModels, **config: Any) -> TorchBase:
    spec = base_spec(ModelRef.from_folder("d", tiny.decoder))
    return TorchBackend().load(spec, LoadConfig(**config))


def adapters(tiny: TinyModels) -> list[AdapterRequest | None]:
    return [
        None,
        adapter_request(ModelRef.from_folder("ft:a", tiny.lora_a)),
        adapter_request(ModelRef.from_folder("ft:b", tiny.lora_b)),
    ]


def request(
    base: TorchBase, prompt: str, adapter: AdapterRequest | None = None, **params: Any
) -> GenerationRequest:
    ids = tuple(base.tokenizer(adapter).encode(prompt, special=True))
    sampling = SamplingParams(**({"max_tokens": 12, "temperature": 0.0} | params))
    return GenerationRequest(f"r{len(ids)}", ids, sampling, adapter)


def tokens(steps: Any) -> list[int]:
    return [t for step in steps for t in step.token_ids]


def concurrently(base: TorchBase, requests: list[GenerationRequest]) -> list[list[int]]:
    """Every request's tokens, the requests submitted from their own threads at once."""
    assert base.batcher is not None
    out: list[list[int]] = [[] for _ in requests]
    errors: list[BaseException] = []
    start = threading.Barrier(len(requests))

    def run(i: int) -> None:
        start.wait()
        try:
            out[i] = tokens(base.batcher.generate(requests[i]))  # type: ignore[union-attr]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return out


def test_a_decoder_is_batched(tiny: TinyModels) -> None:
    assert load(tiny).batcher is not None


def test_batched_greedy_answers_equal_the_sequential_ones(tiny: TinyModels) -> None:
    """Different prompt lengths, answer lengths and adapters in one changing batch."""
    base = load(tiny)
    choices = adapters(tiny)
    requests = [
        request(base, prompt, choices[i % 3], max_tokens=5 + 3 * i)
        for i, prompt in enumerate(PROMPTS * 2)
    ]
    alone = [tokens(base.scheduler.generate(r)) for r in requests]
    assert len({tuple(t) for t in alone}) > len(PROMPTS)  # adapters really change answers
    assert concurrently(base, requests) == alone


def test_a_long_prompt_is_prefilled_in_chunks(tiny: TinyModels) -> None:
    base = load(tiny, prefill_chunk=7)
    assert base.batcher is not None
    seen: list[int] = []
    begin = base.batcher._cache.begin

    def spy(start: int, positions: list[int], q_len: int) -> None:
        seen.append(q_len)
        begin(start, positions, q_len)

    base.batcher._cache.begin = spy  # type: ignore[method-assign]
    long = request(base, " ".join(PROMPTS), max_tokens=6)
    short = request(base, PROMPTS[0], max_tokens=30)
    alone = [tokens(base.scheduler.generate(r)) for r in (long, short)]
    assert concurrently(base, [long, short]) == alone
    assert max(seen) <= 7
    assert sum(q for q in seen if q > 1) + seen.count(1) >= len(long.prompt_ids)


def test_seeded_sampling_does_not_depend_on_the_company(tiny: TinyModels) -> None:
    base = load(tiny)
    seeded = request(base, PROMPTS[1], temperature=0.9, top_p=0.9, seed=7, max_tokens=15)
    assert base.batcher is not None
    alone = tokens(base.batcher.generate(seeded))
    others = [request(base, p, temperature=1.0, max_tokens=10) for p in PROMPTS[2:7]]
    assert concurrently(base, [seeded, *others])[0] == alone


def test_a_closed_stream_frees_its_slot(tiny: TinyModels) -> None:
    base = load(tiny)
    assert base.batcher is not None
    stream = base.batcher.generate(request(base, PROMPTS[1], max_tokens=500))
    next(stream)
    assert base.batcher.stats().running == 1
    stream.close()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while base.batcher.stats().running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert base.batcher.stats().running == 0


def test_the_kv_budget_bounds_the_batch(tiny: TinyModels) -> None:
    """With room for one sequence's cache, requests take turns (one always runs) and all end."""
    base = load(tiny)
    assert base.batcher is not None
    base.batcher.kv_cache_bytes = 1
    widths: list[int] = []
    decode = base.batcher._decode

    def spy(rows: Any) -> None:
        widths.append(len(rows))
        decode(rows)

    base.batcher._decode = spy  # type: ignore[method-assign]
    requests = [request(base, p, max_tokens=6) for p in PROMPTS[:4]]
    alone = [tokens(base.scheduler.generate(r)) for r in requests]
    assert concurrently(base, requests) == alone
    assert max(widths) == 1


def test_running_adapters_are_never_evicted(tiny: TinyModels) -> None:
    """Two adapters at once on a base that keeps one: both answers keep their own adapter."""
    base = load(tiny, max_adapters=1)
    choices = adapters(tiny)[1:]
    requests = [request(base, p, choices[i % 2], max_tokens=20) for i, p in enumerate(PROMPTS)]
    alone = [tokens(base.scheduler.generate(r)) for r in requests]
    assert concurrently(base, requests) == alone
    deadline = time.monotonic() + 5
    while base.batcher.stats().running and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)
    assert len(base.weights.resident) == 1  # back under the limit once they ended


def test_a_broken_adapter_fails_only_its_own_request(tiny: TinyModels, tmp_path: Path) -> None:
    base = load(tiny)
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    (broken_dir / "adapter_config.json").write_text("{not json", encoding="utf-8")
    broken = AdapterRequest("adapter_broken", broken_dir)
    assert base.batcher is not None
    good = base.batcher.generate(request(base, PROMPTS[1], max_tokens=8))
    bad = base.batcher.generate(request(base, PROMPTS[2], broken))
    with pytest.raises(ModelUnavailableError):
        tokens(bad)
    assert len(tokens(good)) == 8
