"""Continuous batching against the sequential decode loop, in process, on SmolLM2-135M-Instruct.

Closed-loop clients (threads), each sending its next request when the last one ends,
greedy, fixed answer length (stop ids off, so every request decodes ``--tokens``
tokens): output tokens per second, p50/p99 latency and time to first token, for the
sequential path (``StepScheduler.generate``: one forward per request per step, in turn,
today's path before batching) and the batched path (``BatchScheduler.generate``), one
after the other in one run. Also checks the greedy answers are identical.

This is the engine alone; the HTTP comparison against a plain FastAPI + ``model.generate``
server is a separate benchmark. Run on a quiet machine:

    .venv/bin/python benchmarks/serve/engine_batching.py --clients 1 16 --tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about rain.",
    "Explain photosynthesis briefly.",
    "List three fruits.",
    "How do I reverse a list in Python?",
    "What is 12 times 7?",
    "Tell me a joke.",
    "Describe the moon.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(generate: Any, prompts: list[tuple[int, ...]], clients: int, per_client: int,
        tokens: int) -> dict[str, Any]:  # fmt: skip
    from tailorml.serve.backend import GenerationRequest, SamplingParams

    latencies: list[float] = []
    ttfts: list[float] = []
    answers: dict[tuple[int, int], list[int]] = {}
    lock = threading.Lock()

    def client(c: int) -> None:
        for k in range(per_client):
            ids = prompts[(c + k) % len(prompts)]
            req = GenerationRequest(f"{c}-{k}", ids, SamplingParams(max_tokens=tokens,
                                                                    temperature=0))  # fmt: skip
            t0 = time.perf_counter()
            first = None
            out: list[int] = []
            for step in generate(req):
                first = first or time.perf_counter()
                out.extend(step.token_ids)
            done = time.perf_counter()
            with lock:
                latencies.append(done - t0)
                ttfts.append((first or done) - t0)
                answers[(c, k)] = out

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    produced = sum(map(len, answers.values()))
    return {
        "tokens_per_s": produced / wall,
        "p50_s": percentile(latencies, 0.5),
        "p99_s": percentile(latencies, 0.99),
        "ttft_p50_s": percentile(ttfts, 0.5),
        "answers": answers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("benchmarks/work/models"))
    args = parser.parse_args()

    from tailorml.models.sources import materialize
    from tailorml.serve.backend import LoadConfig
    from tailorml.serve.bases import BaseSpec
    from tailorml.serve.torch_backend import TorchBackend

    model = materialize("smollm2-135m-instruct", args.cache)
    base = TorchBackend().load(BaseSpec(str(model.path), "causal_lm"), LoadConfig())
    assert base.batcher is not None
    tok = base.tokenizer(None)
    prompts = [
        tuple(tok.encode(tok.render_chat([{"role": "user", "content": q}]), special=False))
        for q in QUESTIONS
    ]
    print(f"load before: {os.getloadavg()}")
    rows = []
    for clients in args.clients:
        seq = run(base.scheduler.generate, prompts, clients, args.per_client, args.tokens)
        bat = run(base.batcher.generate, prompts, clients, args.per_client, args.tokens)
        same = sum(seq["answers"][k] == bat["answers"][k] for k in seq["answers"])
        row = {
            "clients": clients,
            "sequential": {k: round(v, 3) for k, v in seq.items() if k != "answers"},
            "batched": {k: round(v, 3) for k, v in bat.items() if k != "answers"},
            "throughput_ratio": round(bat["tokens_per_s"] / seq["tokens_per_s"], 2),
            "p99_ratio": round(bat["p99_s"] / seq["p99_s"], 2),
            "identical_answers": f"{same}/{len(seq['answers'])}",
            "load": [round(x, 2) for x in os.getloadavg()],
        }
        rows.append(row)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
