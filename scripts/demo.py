"""TailorML end to end, through the official OpenAI SDK against a live server.

`make demo` runs this file. It:

1. starts the platform on its embedded default (SQLite, a local folder, one
   worker) in ``.tailor/demo`` and creates a tenant with a key;
2. uploads real spam/ham e-mails (examples/spam_assassin), fine-tunes the
   MiniLM encoder on them and prints held-out accuracy next to two baselines
   (majority class; nearest centroid on the frozen base embeddings);
3. uploads real chats (examples/glaive_chat), fine-tunes SmolLM2-135M-Instruct
   with LoRA and prints the same prompts answered by the base and the tuned
   model, with the validation loss before and after;
4. stops the server and prints where the artifacts are.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from openai import OpenAI
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA_DIR = ROOT / ".tailor" / "demo"
BIN = Path(sys.executable).parent
console = Console()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fresh_data_dir() -> None:
    """Start from an empty platform but keep the converted base models (they take a while)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for item in DATA_DIR.iterdir():
        if item.name != "models":
            shutil.rmtree(item) if item.is_dir() else item.unlink()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    log = open(DATA_DIR / "server.log", "wb")
    proc = subprocess.Popen(
        [str(BIN / "tailor"), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited; see {DATA_DIR / 'server.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit("the server did not start within 120 s")


def follow(client: OpenAI, job_id: str, title: str) -> Any:
    """Print the job's events as they come, with a progress bar over its training steps."""
    seen: set[str] = set()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(title, total=None, loss="")
        while True:
            events = client.fine_tuning.jobs.list_events(job_id, limit=100).data
            for ev in reversed(events):
                if ev.id in seen:
                    continue
                seen.add(ev.id)
                data = ev.data or {}
                if ev.type == "metrics":
                    loss = (
                        f"train_loss {data['train_loss']:.3f}"
                        if data.get("train_loss") is not None
                        else ""
                    )
                    if data.get("valid_loss") is not None:
                        loss += f"  valid_loss {data['valid_loss']:.3f}"
                    if data.get("valid_accuracy") is not None:
                        loss += f"  valid_acc {data['valid_accuracy']:.3f}"
                    bar.update(
                        task,
                        completed=data.get("step", 0),
                        total=data.get("total_steps"),
                        loss=loss,
                    )
                else:
                    bar.console.print(f"  [dim]{ev.message}[/dim]")
            job = client.fine_tuning.jobs.retrieve(job_id)
            if job.status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(1.0)
    if job.status != "succeeded":
        raise SystemExit(f"{title}: job {job.status}: {job.error}")
    return job


def embed(client: OpenAI, model: str, texts: list[str]) -> np.ndarray:
    out = []
    for i in range(0, len(texts), 64):
        res = client.embeddings.create(
            model=model, input=texts[i : i + 64], extra_body={"truncate": True}
        )
        out.extend(d.embedding for d in res.data)
    return np.asarray(out, dtype=np.float32)


def classification(client: OpenAI) -> dict[str, Any]:
    console.rule(
        "[bold]1. Classification: spam or ham (SpamAssassin e-mails), MiniLM full fine-tune"
    )
    train_path, test_path = (
        EXAMPLES / "spam_assassin" / "train.jsonl",
        EXAMPLES / "spam_assassin" / "test.jsonl",
    )
    train, test = read_jsonl(train_path), read_jsonl(test_path)
    uploaded = client.files.create(file=train_path.open("rb"), purpose="fine-tune")
    console.print(f"uploaded {train_path.name}: {uploaded.id}, {uploaded.bytes} bytes")
    job = client.fine_tuning.jobs.create(
        model="minilm-l6", training_file=uploaded.id, suffix="spam", hyperparameters={"n_epochs": 3}
    )
    job = follow(client, job.id, "fine-tuning minilm-l6")
    texts, gold = [r["text"] for r in test], [r["label"] for r in test]

    predicted = []
    for i in range(0, len(texts), 32):
        res = client.post(
            "/classifications",
            body={"model": job.fine_tuned_model, "input": texts[i : i + 32], "truncate": True},
            cast_to=httpx.Response,
        )
        predicted.extend(d["label"] for d in res.json()["data"])
    tuned = float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))

    majority_label = Counter(r["label"] for r in train).most_common(1)[0][0]
    majority = float(np.mean([g == majority_label for g in gold]))
    train_vecs, test_vecs = (
        embed(client, "minilm-l6", [r["text"] for r in train]),
        embed(client, "minilm-l6", texts),
    )
    labels = sorted({r["label"] for r in train})
    centroids = np.stack([train_vecs[[r["label"] == lab for r in train]].mean(0) for lab in labels])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    nearest = [labels[i] for i in (test_vecs @ centroids.T).argmax(1)]
    centroid = float(np.mean([p == g for p, g in zip(nearest, gold, strict=True)]))

    table = Table(title=f"held-out accuracy on {len(test)} e-mails")
    table.add_column("model")
    table.add_column("accuracy", justify="right")
    table.add_row(f"majority class ({majority_label})", f"{majority:.3f}")
    table.add_row("nearest centroid on frozen minilm-l6 embeddings", f"{centroid:.3f}")
    table.add_row(f"[bold]{job.fine_tuned_model}[/bold]", f"[bold]{tuned:.3f}[/bold]")
    console.print(table)
    return {"job": job, "accuracy": tuned, "majority": majority, "centroid": centroid}


def chat(client: OpenAI) -> dict[str, Any]:
    console.rule("[bold]2. Chat: SmolLM2-135M-Instruct with LoRA on Glaive assistant chats")
    train_path, valid_path = (
        EXAMPLES / "glaive_chat" / "train.jsonl",
        EXAMPLES / "glaive_chat" / "valid.jsonl",
    )
    train_file = client.files.create(file=train_path.open("rb"), purpose="fine-tune")
    valid_file = client.files.create(file=valid_path.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct",
        training_file=train_file.id,
        validation_file=valid_file.id,
        suffix="assistant",
        # Validate four times rather than the default ten: on 2 CPU cores it is a quarter of the run.
        method={"type": "lora", "training": {"eval_every": 7}},
        hyperparameters={"n_epochs": 2, "learning_rate_multiplier": 4},
    )
    job = follow(client, job.id, "fine-tuning smollm2-135m-instruct (LoRA)")
    metrics = getattr(job, "metrics", None) or {}
    before, after = metrics.get("base_valid_loss"), metrics.get("valid_loss")
    console.print(
        f"validation loss: base {before:.3f} -> tuned {after:.3f}" if before and after else metrics
    )
    for row in read_jsonl(valid_path)[:3]:
        prompt = [m for m in row["messages"] if m["role"] != "assistant"]
        console.print(f"\n[bold]user:[/bold] {prompt[-1]['content']}")
        for model in ("smollm2-135m-instruct", job.fine_tuned_model):
            res = client.chat.completions.create(
                model=model, messages=prompt, temperature=0, max_tokens=60
            )
            console.print(f"[cyan]{model}:[/cyan] {res.choices[0].message.content.strip()}")
    return {"job": job, "before": before, "after": after}


def main() -> None:
    started = time.time()
    fresh_data_dir()
    env = {**os.environ, "TAILOR_DATA_DIR": str(DATA_DIR), "TAILOR_WORKERS": "1"}
    env.setdefault("OMP_NUM_THREADS", "2")
    created = subprocess.run(
        [str(BIN / "tailor"), "admin", "tenant", "create", "demo"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    console.print(f"tenant [bold]demo[/bold] created; key {key[:20]}...")
    port = free_port()
    server = start_server(env, port)
    console.print(f"TailorML is serving on http://127.0.0.1:{port} (docs at /docs)")
    try:
        client = OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=600
        )
        cls = classification(client)
        gen = chat(client)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    console.rule("[bold]Done")
    console.print("server stopped. Artifacts:")
    console.print(f"  database        {DATA_DIR / 'tailor.db'}")
    console.print(f"  uploaded files  {DATA_DIR / 'files'}")
    for part in (cls, gen):
        console.print(
            f"  {part['job'].fine_tuned_model}\n      {DATA_DIR / 'jobs' / part['job'].id / 'model'}"
        )
    console.print(f"  base models     {DATA_DIR / 'models' / 'base'}")
    console.print(f"  server log      {DATA_DIR / 'server.log'}")
    console.print(f"wall time: {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
