"""DPO quality: does preference tuning make SmolLM2-135M-Instruct rank held-out pairs right?

Pairs are built from the shipped chat data (``examples/glaive_chat``, 98 train / 20 valid
single-turn chats): for each prompt the preferred reply is the data set's own answer and the
non-preferred one is the base model's greedy answer to the same prompt (up to
``--max-new-tokens`` tokens, batched, left-padded). The pairs are cached in the work folder,
so a rerun skips generation (the output says whether it generated).

Then ``tailorml.train.train`` runs DPO with LoRA (the task's defaults: r 8, alpha 16,
q/k/v/o; beta 0.1; the task's base learning rate times ``--lr-multiplier``) on the first
``--n-train`` training pairs; the held-out pairs are the validation file's plus the training
pairs after ``--n-train``. Reported on the held-out pairs:

- before: the base's raw log-probability preference accuracy (its summed log-probability of
  the preferred reply above that of the non-preferred one); its DPO reward accuracy is 0 by
  construction (the untrained model is its own reference: every reward is 0);
- after: the DPO reward accuracy (``valid_accuracy``: beta * log-ratio of the preferred reply
  above the non-preferred one's), the mean reward margin, the DPO loss, and the trained
  model's own raw log-probability accuracy.

One run, fp32 on the CPU, about 10 minutes on this machine:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train/dpo_quality.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHATS = ROOT / "examples" / "glaive_chat"
MODEL = "smollm2-135m-instruct"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _chats(split: str) -> list[list[dict[str, str]]]:
    lines = (CHATS / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["messages"] for line in lines]


def generate_pairs(
    base_path: Path, chats: list[list[dict[str, str]]], max_new_tokens: int, batch: int
) -> list[dict[str, Any]]:
    """OpenAI preference lines: the data set's reply over the base model's greedy one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    lines = []
    for start in range(0, len(chats), batch):
        group = chats[start : start + batch]
        prompts = [
            tokenizer.apply_chat_template(c[:-1], tokenize=False, add_generation_prompt=True)
            for c in group
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=pad)  # fmt: skip
        for chat, row in zip(group, out[:, enc["input_ids"].shape[1] :], strict=True):
            answer = tokenizer.decode(row, skip_special_tokens=True).strip()
            lines.append(
                {
                    "input": {"messages": chat[:-1]},
                    "preferred_output": [chat[-1]],
                    "non_preferred_output": [{"role": "assistant", "content": answer}],
                }
            )
    return lines


def raw_accuracy(model: Any, examples: list[Any], pad_id: int) -> float:
    """Share of pairs whose preferred reply the model gives the higher summed log-probability."""
    import torch

    from tailorml.train.preference import PreferenceTask, sequence_logps

    task, right = PreferenceTask(), 0
    with torch.no_grad():
        for start in range(0, len(examples), 8):
            group = examples[start : start + 8]
            logps = sequence_logps(model, task.collate(group, pad_id))
            right += int((logps[: len(group)] > logps[len(group) :]).sum())
    return right / len(examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=78)
    parser.add_argument("--n-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr-multiplier", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "dpo")
    args = parser.parse_args()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tailorml.models.sources import materialize
    from tailorml.records import parse_record
    from tailorml.train.loop import TrainSpec, train
    from tailorml.train.preference import PreferenceTask
    from tailorml.train.tasks import load_task

    print(f"load before: {_load()}, torch threads {torch.get_num_threads()}", flush=True)
    t0 = time.perf_counter()
    base = materialize(MODEL, args.work / "models")
    chats = _chats("train") + _chats("valid")
    cache = args.work / f"pairs-{args.max_new_tokens}.jsonl"
    if cache.is_file():
        lines = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
        print(f"pairs: {len(lines)} from the cache {cache.name}", flush=True)
    else:
        start = time.perf_counter()
        lines = generate_pairs(base.path, chats, args.max_new_tokens, batch=16)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        print(f"pairs: generated {len(lines)} greedy answers in "
              f"{time.perf_counter() - start:.0f} s, load {_load()}", flush=True)  # fmt: skip
    records = [parse_record(line, "preference") for line in lines]
    train_records, held_out = records[: args.n_train], records[args.n_train :]

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    pad = tokenizer.eos_token_id
    held_ex, skipped = PreferenceTask().encode(tokenizer, held_out, None, args.max_length)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32).eval()
    start = time.perf_counter()
    base_raw = raw_accuracy(model, held_ex, pad)
    print(f"base raw log-prob accuracy on {len(held_ex)} held-out pairs: {base_raw:.3f} "
          f"({time.perf_counter() - start:.0f} s; {len(skipped)} left out), load {_load()}",
          flush=True)  # fmt: skip
    del model

    task = load_task("preference")
    spec = TrainSpec(task="preference", method="lora", n_epochs=args.n_epochs,
                     batch_size=args.batch_size,
                     learning_rate=task.base_learning_rates["lora"] * args.lr_multiplier,
                     max_length=args.max_length, early_stopping_patience=None,
                     eval_every=10_000)  # fmt: skip
    start = time.perf_counter()
    events: list[dict[str, Any]] = []
    result = train(spec, base, train_records, held_out, args.work / "run", on_event=events.append)
    wall = time.perf_counter() - start
    metrics = [e for e in events if e["type"] == "metrics"]
    first, last = metrics[0], metrics[-1]
    print(f"trained {result.steps} steps in {wall:.0f} s (lr {spec.learning_rate:.3g}), "
          f"load {_load()}", flush=True)  # fmt: skip

    trained = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32), result.model_dir
    ).eval()
    after_raw = raw_accuracy(trained, held_ex, pad)
    figures = {
        "held_out_pairs": len(held_ex),
        "train_pairs": len(train_records),
        "steps": result.steps,
        "train_wall_s": round(wall),
        "base_raw_logp_accuracy": base_raw,
        "base_reward_accuracy": first["valid_accuracy"],
        "dpo_reward_accuracy": last["valid_accuracy"],
        "dpo_reward_margin": last["valid_reward_margin"],
        "base_valid_loss": first["valid_loss"],
        "dpo_valid_loss": last["valid_loss"],
        "dpo_raw_logp_accuracy": after_raw,
        "total_s": round(time.perf_counter() - t0),
        "load_after": _load(),
    }
    print("RESULT " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
