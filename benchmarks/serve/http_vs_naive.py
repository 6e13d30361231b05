"""TailorML's API against the server a user would otherwise write, over HTTP on 127.0.0.1.

Both servers serve the same models: SmolLM2-135M-Instruct (fp32) for chat, and a MiniLM
classifier fine-tuned by TailorML itself on the SpamAssassin example (one epoch) for
classification. The baseline is ``naive_server.py``: FastAPI, one plain ``def`` endpoint
calling ``model.generate`` (greedy) or a transformers ``text-classification`` pipeline per
request, under uvicorn. Closed-loop clients (threads, one ``httpx`` connection each) send
their next request when the last one ends.

- generation, 1/8/16/32 clients, ``--tokens`` (128) new tokens, greedy: output tokens per
  second, p50/p99 latency; TailorML streams (``stream_options.include_usage``), so its time
  to first token is measured; the baseline answers whole, so its first token is its latency;
- classification, 16 clients, one e-mail per request: requests per second, p50/p99.

One run, one server at a time, nothing else running:

    .venv/bin/python benchmarks/serve/http_vs_naive.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "What is the capital of France? Answer in a paragraph about its history.",
    "Write a short story about a robot learning to paint.",
    "Explain photosynthesis to a ten-year-old.",
    "List ten fruits and one fact about each.",
    "How do I reverse a list in Python? Show several ways.",
    "Describe the water cycle step by step.",
    "Tell me about the history of the bicycle.",
    "Describe the moon and its phases.",
]
ADMIN = "bench-admin-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server at {url} exited ({proc.returncode})"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def closed_loop(clients: int, per_client: int, one: Any) -> dict[str, float]:
    """``one(http, i)`` -> (latency, ttft, tokens) per request; aggregate over all clients."""
    rows: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(c: int) -> None:
        with httpx.Client(timeout=1800) as http:
            for k in range(per_client):
                try:
                    row = one(http, c * per_client + k)
                except BaseException as exc:  # noqa: BLE001  (reported below)
                    errors.append(exc)
                    return
                with lock:
                    rows.append(row)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    latencies = [r[0] for r in rows]
    return {
        "requests": len(rows),
        "wall_s": wall,
        "tokens_per_s": sum(r[2] for r in rows) / wall,
        "requests_per_s": len(rows) / wall,
        "p50_s": percentile(latencies, 0.5),
        "p99_s": percentile(latencies, 0.99),
        "ttft_p50_s": percentile([r[1] for r in rows], 0.5),
    }


def chat_streamed(url: str, key: str, model: str, tokens: int) -> Any:
    def one(http: httpx.Client, i: int) -> tuple[float, float, int]:
        body = {"model": model, "max_tokens": tokens, "temperature": 0, "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}  # fmt: skip
        t0 = time.perf_counter()
        first, produced = None, 0
        with http.stream("POST", f"{url}/v1/chat/completions", json=body,
                         headers={"Authorization": f"Bearer {key}"}) as res:  # fmt: skip
            res.raise_for_status()
            for line in res.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    produced = chunk["usage"]["completion_tokens"]
                elif first is None and any(c["delta"].get("content") for c in chunk["choices"]):
                    first = time.perf_counter()
        done = time.perf_counter()
        return done - t0, (first or done) - t0, produced

    return one


def chat_whole(url: str, model: str, tokens: int) -> Any:
    def one(http: httpx.Client, i: int) -> tuple[float, float, int]:
        body = {"model": model, "max_tokens": tokens, "temperature": 0,
                "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}  # fmt: skip
        t0 = time.perf_counter()
        res = http.post(f"{url}/v1/chat/completions", json=body)
        res.raise_for_status()
        took = time.perf_counter() - t0
        return took, took, int(res.json()["usage"]["completion_tokens"])

    return one


def classify(url: str, key: str | None, model: str, texts: list[str]) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def one(http: httpx.Client, i: int) -> tuple[float, float, int]:
        t0 = time.perf_counter()
        res = http.post(f"{url}/v1/classifications", headers=headers,
                        json={"model": model, "input": texts[i % len(texts)]})  # fmt: skip
        res.raise_for_status()
        took = time.perf_counter() - t0
        return took, took, 1

    return one


def start_tailor(work: Path, port: int, tenant_concurrency: int = 64) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TAILOR_DATA_DIR": str(work / "data"), "TAILOR_ADMIN_KEY": ADMIN,
           "TAILOR_MASTER_SECRET": "bench", "TAILOR_WORKERS": "1", "OMP_NUM_THREADS": "2",
           "TAILOR_SERVE_TENANT_CONCURRENCY": str(tenant_concurrency)}  # fmt: skip
    log = open(work / "tailor.log", "wb")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "tailorml", "serve", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=log)  # fmt: skip


def fine_tune_classifier(url: str, key: str) -> str:
    """MiniLM fine-tuned on the SpamAssassin example through TailorML's own API."""
    auth = {"Authorization": f"Bearer {key}"}
    train = ROOT / "examples" / "spam_assassin" / "train.jsonl"
    with open(train, "rb") as fh:
        up = httpx.post(f"{url}/v1/files", headers=auth, data={"purpose": "fine-tune"},
                        files={"file": ("train.jsonl", fh)}, timeout=120)  # fmt: skip
    up.raise_for_status()
    job = httpx.post(f"{url}/v1/fine_tuning/jobs", headers=auth, timeout=60, json={
        "model": "minilm-l6", "training_file": up.json()["id"], "suffix": "spam",
        "hyperparameters": {"n_epochs": 1}}).json()  # fmt: skip
    while True:
        job = httpx.get(f"{url}/v1/fine_tuning/jobs/{job['id']}", headers=auth, timeout=60).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(2)
    assert job["status"] == "succeeded", job
    return str(job["fine_tuned_model"]), str(job["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--per-client", type=int, default=1)
    parser.add_argument("--classify-clients", type=int, default=16)
    parser.add_argument("--classify-per-client", type=int, default=25)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "http")
    args = parser.parse_args()

    from tailorml.models.sources import materialize

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    decoder = materialize("smollm2-135m-instruct", ROOT / "benchmarks" / "work" / "models").path
    texts = [json.loads(x)["text"] for x in
             (ROOT / "examples" / "spam_assassin" / "test.jsonl").read_text().splitlines()]  # fmt: skip
    print(f"load before: {[round(x, 2) for x in os.getloadavg()]}", flush=True)

    port = free_port()
    tailor = start_tailor(work, port)
    url = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"generation": [], "classification": {}}
    try:
        wait_up(f"{url}/healthz", tailor)
        key = httpx.post(f"{url}/admin/tenants", json={"name": "bench"},
                         headers={"Authorization": f"Bearer {ADMIN}"}).json()["api_key"]  # fmt: skip
        classifier, job_id = fine_tune_classifier(url, key)
        warm = chat_streamed(url, key, "smollm2-135m-instruct", 4)
        closed_loop(1, 1, warm)  # load the model before the clock runs
        closed_loop(1, 2, classify(url, key, classifier, texts))
        for clients in args.clients:
            row = closed_loop(clients, args.per_client,
                              chat_streamed(url, key, "smollm2-135m-instruct", args.tokens))  # fmt: skip
            results["generation"].append({"clients": clients, "tailorml": row})
            print(json.dumps({"tailorml": clients, **row}), flush=True)
        row = closed_loop(args.classify_clients, args.classify_per_client,
                          classify(url, key, classifier, texts))  # fmt: skip
        results["classification"]["tailorml"] = row
        print(json.dumps({"tailorml classify": args.classify_clients, **row}), flush=True)
    finally:
        stop(tailor)
    model_dir = work / "data" / "jobs" / job_id / "model"

    port = free_port()
    log = open(work / "naive.log", "wb")  # noqa: SIM115
    naive = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "serve" / "naive_server.py"), "--decoder",
         str(decoder), "--classifier", str(model_dir), "--port", str(port)],
        env={**os.environ, "OMP_NUM_THREADS": "2"}, stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{url}/docs", naive)
        closed_loop(1, 1, chat_whole(url, "smollm2", 4))
        closed_loop(1, 2, classify(url, None, "spam", texts))
        for i, clients in enumerate(args.clients):
            row = closed_loop(clients, args.per_client, chat_whole(url, "smollm2", args.tokens))
            results["generation"][i]["naive"] = row
            print(json.dumps({"naive": clients, **row}), flush=True)
        row = closed_loop(args.classify_clients, args.classify_per_client,
                          classify(url, None, "spam", texts))  # fmt: skip
        results["classification"]["naive"] = row
        print(json.dumps({"naive classify": args.classify_clients, **row}), flush=True)
    finally:
        stop(naive)

    print(f"load after: {[round(x, 2) for x in os.getloadavg()]}")
    print(
        "\n| clients | naive tok/s | TailorML tok/s | ratio | p50 naive / ours | p99 naive / ours "
        "| p99 ratio | TTFT p50 naive / ours |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in results["generation"]:
        n, t = row["naive"], row["tailorml"]
        print(f"| {row['clients']} | {n['tokens_per_s']:.1f} | {t['tokens_per_s']:.1f} | "
              f"{t['tokens_per_s'] / n['tokens_per_s']:.2f}x | {n['p50_s']:.2f} / {t['p50_s']:.2f} s"
              f" | {n['p99_s']:.2f} / {t['p99_s']:.2f} s | {t['p99_s'] / n['p99_s']:.2f}x | "
              f"{n['ttft_p50_s']:.2f} / {t['ttft_p50_s']:.2f} s |")  # fmt: skip
    n, t = results["classification"]["naive"], results["classification"]["tailorml"]
    print(f"\nclassification, {args.classify_clients} clients: naive {n['requests_per_s']:.1f} req/s "
          f"(p99 {n['p99_s']:.3f} s), TailorML {t['requests_per_s']:.1f} req/s "
          f"(p99 {t['p99_s']:.3f} s): {t['requests_per_s'] / n['requests_per_s']:.2f}x")  # fmt: skip
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
