"""Overload: one tenant at 4x its admission limit beside another tenant's normal traffic.

A TailorML server (``tailor serve``) with ``TAILOR_SERVE_TENANT_CONCURRENCY`` (2) on
SmolLM2-135M-Instruct. The calm tenant runs ``--calm`` closed-loop chat clients (greedy,
``--tokens`` new tokens) for ``--seconds``, alone, then again while the flooding tenant runs
4x its limit in closed-loop clients that send again at once when refused (no backoff: the
worst case). Reported: the calm tenant's p50/p99 alone and under the flood, and how fast the
flood's 429s come back.

    .venv/bin/python benchmarks/serve/overload.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_vs_naive import (  # noqa: E402
    ADMIN,
    QUESTIONS,
    ROOT,
    free_port,
    percentile,
    start_tailor,
    stop,
    wait_up,
)


def run_for(
    seconds: float, clients: int, url: str, key: str, tokens: int
) -> dict[str, list[float]]:
    """Closed-loop chat clients for ``seconds``: latencies of answers and of 429s."""
    ok: list[float] = []
    refused: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client(c: int) -> None:
        with httpx.Client(timeout=600) as http:
            i = c
            while time.monotonic() < end:
                body = {"model": "smollm2-135m-instruct", "max_tokens": tokens, "temperature": 0,
                        "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}  # fmt: skip
                t0 = time.perf_counter()
                res = http.post(f"{url}/v1/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {key}"})  # fmt: skip
                took = time.perf_counter() - t0
                with lock:
                    (ok if res.status_code == 200 else refused).append(took)
                if res.status_code not in (200, 429):
                    raise RuntimeError(res.text)
                i += clients

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"ok": ok, "refused": refused}


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_s": round(percentile(values, 0.5), 4),
            "p99_s": round(percentile(values, 0.99), 4)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--calm", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "overload")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    port = free_port()
    server = start_tailor(args.work, port, tenant_concurrency=args.limit)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{url}/healthz", server)
        keys = {}
        for name in ("calm", "flood"):
            keys[name] = httpx.post(f"{url}/admin/tenants", json={"name": name},
                                    headers={"Authorization": f"Bearer {ADMIN}"}).json()["api_key"]  # fmt: skip
        run_for(5, 1, url, keys["calm"], 4)  # load the model
        print(f"load before: {[round(x, 2) for x in os.getloadavg()]}", flush=True)
        alone = run_for(args.seconds, args.calm, url, keys["calm"], args.tokens)
        print(json.dumps({"calm alone": summary(alone["ok"])}), flush=True)
        flood: dict[str, list[float]] = {}

        def flooding() -> None:
            flood.update(run_for(args.seconds, 4 * args.limit, url, keys["flood"], args.tokens))

        thread = threading.Thread(target=flooding)
        thread.start()
        beside = run_for(args.seconds, args.calm, url, keys["calm"], args.tokens)
        thread.join()
        print(f"load after: {[round(x, 2) for x in os.getloadavg()]}", flush=True)
    finally:
        stop(server)
    row = {
        "calm_alone": summary(alone["ok"]),
        "calm_beside_flood": summary(beside["ok"]),
        "flood_answered": summary(flood["ok"]),
        "flood_refused_429": summary(flood["refused"]),
    }
    row["calm_p99_rise"] = round(
        row["calm_beside_flood"]["p99_s"] / row["calm_alone"]["p99_s"] - 1, 3
    )
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
