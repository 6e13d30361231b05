"""Many LoRA adapters on one base: throughput with 1, 8 and 64 adapters against peft's
``set_adapter`` per request, and the memory the adapters take.

SmolLM2-135M-Instruct (fp32) with 64 LoRA adapters (r 8 on q/v, random B so each really
changes the model). 16 closed-loop client threads, each request naming a random adapter
among the first K, greedy, ``--tokens`` new tokens:

- TailorML's engine (rows of different adapters share one batch; adapters load on first use);
- the baseline a user would write with peft: one ``PeftModel`` holding the K adapters,
  and per request ``set_adapter(name)`` then ``generate`` under a lock (the active adapter is
  global state, so requests cannot overlap without answering with another's adapter).

Resident memory is read from /proc before and after the adapters load, against their size
on disk. One run, nothing else running:

    .venv/bin/python benchmarks/serve/many_adapters.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about rain.",
    "Explain photosynthesis briefly.",
    "List three fruits.",
    "How do I reverse a list in Python?",
    "Tell me a joke.",
    "Describe the moon.",
    "What is 12 times 7?",
]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def make_adapters(base: Path, root: Path, n: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tailorml.models.manifest import ModelManifest

    out = []
    for i in range(n):
        folder = root / f"adapter_{i:02d}"
        out.append(folder)
        if (folder / "adapter_model.safetensors").exists():
            continue
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(base)
        config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                            task_type="CAUSAL_LM", init_lora_weights=False)  # fmt: skip
        peft = get_peft_model(model, config)
        with torch.no_grad():  # random but small deltas: answers change and stay fluent
            for name, param in peft.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.002)
        peft.save_pretrained(folder)
        ModelManifest(base="smollm2-135m-instruct", task="chat", method="lora",
                      architecture="decoder", base_path=str(base)).write(folder)  # fmt: skip
    return out


def closed_loop(clients: int, requests: int, one: Any) -> dict[str, float]:
    produced = [0]
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(clients * requests))

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            n = one(i)
            with lock:
                produced[0] += n
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "tokens_per_s": produced[0] / wall,
        "p99_s": latencies[int(0.99 * (len(latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    args = parser.parse_args()

    from tailorml.models.sources import materialize
    from tailorml.serve import Engine, ModelRef

    base = materialize("smollm2-135m-instruct", args.work / "models").path
    folders = make_adapters(base, args.work / "adapters", max(args.adapters))
    adapter_mb = sum(f.stat().st_size for d in folders for f in d.iterdir()) / 2**20
    print(f"load before: {[round(x, 2) for x in os.getloadavg()]}; "
          f"{len(folders)} adapters, {adapter_mb:.1f} MB on disk", flush=True)  # fmt: skip
    refs = [ModelRef.from_folder(f"ft:smollm2:bench:{i}", f) for i, f in enumerate(folders)]
    messages = [[{"role": "user", "content": q}] for q in QUESTIONS]
    rows: dict[str, Any] = {}

    engine = Engine(max_adapters_per_base=max(args.adapters), max_loaded=1)
    base_ref = ModelRef.from_folder("smollm2-135m-instruct", base)
    engine.chat(base_ref, messages[0], max_tokens=2, temperature=0)
    before = rss_mb()
    for k in args.adapters:
        for ref in refs[:k]:  # loaded before the clock runs (first use loads, no restart)
            engine.chat(ref, messages[0], max_tokens=1, temperature=0)
        grew = rss_mb() - before
        rng = random.Random(k)
        picks = [rng.randrange(k) for _ in range(args.clients * args.per_client)]

        def ours(i: int, picks: list[int] = picks, tokens: int = args.tokens) -> int:
            out = engine.chat(refs[picks[i]], messages[i % len(messages)],
                              max_tokens=tokens, temperature=0)  # fmt: skip
            return out.completion_tokens

        closed_loop(args.clients, 1, lambda i: ours(i, tokens=2))  # the batch's first use
        row = closed_loop(args.clients, args.per_client, ours)
        row["rss_growth_mb"] = grew
        row["adapters_mb"] = sum(f.stat().st_size for d in folders[:k] for f in d.iterdir()) / 2**20
        rows[f"tailorml_{k}"] = row
        print(json.dumps({"tailorml adapters": k, **row}), flush=True)

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    k = max(args.adapters)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folders[0],
                                      adapter_name="a0")  # fmt: skip
    for i, folder in enumerate(folders[1:k], start=1):
        model.load_adapter(folder, adapter_name=f"a{i}")
    model.eval()
    lock = threading.Lock()
    rng = random.Random(k)
    picks = [rng.randrange(k) for _ in range(args.clients * args.per_client)]
    prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
               for m in messages]  # fmt: skip

    def naive(i: int) -> int:
        ids = tok(prompts[i % len(prompts)], return_tensors="pt", add_special_tokens=False)
        with lock, torch.inference_mode():
            model.set_adapter(f"a{picks[i]}")
            out = model.generate(**ids, max_new_tokens=args.tokens, do_sample=False)
        return int(out.shape[1] - ids["input_ids"].shape[1])

    closed_loop(2, 1, naive)  # first use
    row = closed_loop(args.clients, args.per_client, naive)
    rows[f"peft_set_adapter_{k}"] = row
    print(json.dumps({"peft set_adapter adapters": k, **row}), flush=True)
    print(f"load after: {[round(x, 2) for x in os.getloadavg()]}")
    one, many = rows[f"tailorml_{args.adapters[0]}"], rows[f"tailorml_{k}"]
    # The first adapter also turns the base into a peft model (a one-time cost): the growth
    # the adapters themselves cause is from one adapter loaded to all of them.
    grew = many["rss_growth_mb"] - one["rss_growth_mb"]
    size = many["adapters_mb"] - one["adapters_mb"]
    print(f"{k} adapters / {args.adapters[0]}: {many['tokens_per_s'] / one['tokens_per_s']:.2f}x; "
          f"against peft set_adapter: {many['tokens_per_s'] / row['tokens_per_s']:.2f}x; "
          f"RSS growth from {args.adapters[0]} to {k} adapters {grew:.1f} MB for {size:.1f} MB "
          f"of adapters ({grew / size:.2f}x); first adapter and peft wrapping "
          f"{one['rss_growth_mb']:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
