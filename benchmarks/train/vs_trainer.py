"""Training speed and memory against Hugging Face ``Trainer`` (+ ``peft``), side by side.

Two cases, as ``../shared/BASELINES.md`` ("Training") describes them:

- ``lora``: LoRA SFT of SmolLM2-135M-Instruct on real Alpaca instructions (as chats, their
  natural length spread), r 8, alpha 16, q/k/v/o, dropout 0.05;
- ``full``: full fine-tuning of all-MiniLM-L6-v2 on SST-2 sentences.

Every side trains the same encoded examples (TailorML's task encodes them once: the same
token ids, the same trained tokens), with the same base, LoRA settings, epochs, batch,
learning rate, linear warmup/decay, weight decay, clipping and seed, fp32 on the CPU, and
ends with one validation pass. Each side runs in a child process of its own, so peak RSS
(``ru_maxrss``) is that side's alone. Sides:

- ``trainer``: ``Trainer`` defaults (random order, padding to the longest in the batch);
- ``trainer-grouped``: ``Trainer`` grouping by length (``train_sampling_strategy=
  "group_by_length"``, formerly ``group_by_length=True``);
- ``tailorml``: ``tailorml.train.train`` (length-bucketed order, label-only logits);
- ``tailorml-packed``: the same with ``packing`` (decoders only).

Reported: non-padding tokens per second over the training steps (model loading excluded),
peak RSS, the final validation loss, and MFU (4N FLOPs per token for LoRA, 6N for full,
against the machine's ~180 GFLOP/s fp32). One run, nothing else running:

    .venv/bin/python benchmarks/train/vs_trainer.py --case full lora
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"
PEAK_FLOPS = 180e9
SEED = 42

CASES: dict[str, dict[str, Any]] = {
    "lora": dict(model="smollm2-135m-instruct", task="chat", method="lora", n_train=500,
                 n_valid=50, batch_size=8, learning_rate=2e-4, n_epochs=1, max_length=512),
    "full": dict(model="minilm-l6", task="classification", method="full", n_train=2000,
                 n_valid=200, batch_size=16, learning_rate=5e-5, n_epochs=1, max_length=128),
}  # fmt: skip


def _records(case: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    from tailorml.records import ChatRecord, ClassificationRecord, Message

    n = case["n_train"] + case["n_valid"]
    if case["task"] == "chat":
        rows = json.loads((DATASETS / "instruct_alpaca_en" / "alpaca_5000.json").read_text())
        records: list[Any] = []
        for row in rows[:n]:
            prompt = row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")
            records.append(
                ChatRecord([Message("user", prompt), Message("assistant", row["output"])])
            )
    else:
        lines = (DATASETS / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
        records = []
        for line in lines[:n]:
            label, text = line.split("\t", 1)  # label first, then text_a
            records.append(ClassificationRecord(text, "positive" if label == "1" else "negative"))
    return records[: case["n_train"]], records[case["n_train"] :]


def _spec(case: dict[str, Any], packing: bool) -> Any:
    from tailorml.train.loop import TrainSpec

    return TrainSpec(
        task=case["task"],
        method=case["method"],
        n_epochs=case["n_epochs"],
        batch_size=case["batch_size"],
        learning_rate=case["learning_rate"],
        seed=SEED,
        max_length=case["max_length"],
        lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
        if case["method"] == "lora"
        else None,
        eval_every=10**9,  # validate at the end only, as the Trainer side does
        checkpoint_every=10**9,
        packing=packing,
    )


def _encoded(case: dict[str, Any], base: Any) -> tuple[Any, list[Any], list[Any], list[str] | None]:
    """The examples every side trains on: TailorML's encoding of the same records."""
    from transformers import AutoTokenizer

    from tailorml.train.tasks import load_task

    task = load_task(case["task"])
    train_records, valid_records = _records(case)
    labels = task.labels(train_records)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    train_ex, _ = task.encode(tokenizer, train_records, labels, case["max_length"])
    valid_ex, _ = task.encode(tokenizer, valid_records, labels, case["max_length"])
    return tokenizer, train_ex, valid_ex, labels


def run_tailorml(case: dict[str, Any], base: Any, out: Path, packing: bool) -> dict[str, Any]:
    from tailorml.train.loop import train

    train_records, valid_records = _records(case)
    marks: dict[str, float] = {}

    def on_event(event: dict) -> None:
        if event.get("type") == "metrics" and event["step"] == 0:
            marks["start"] = time.perf_counter()  # the model is loaded, the base validated

    result = train(_spec(case, packing), base, train_records, valid_records, out,
                   on_event=on_event)  # fmt: skip
    wall = time.perf_counter() - marks["start"]
    return {"wall_s": wall, "valid_loss": result.metrics["valid_loss"], "steps": result.steps}


def run_trainer(case: dict[str, Any], base: Any, out: Path, grouped: bool) -> dict[str, Any]:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        DataCollatorForSeq2Seq,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    tokenizer, train_ex, valid_ex, labels = _encoded(case, base)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    def rows(examples: list[Any]) -> list[dict[str, Any]]:  # a list is a map-style dataset
        return [{"input_ids": e.input_ids, "labels": e.target} for e in examples]

    torch.manual_seed(SEED)
    if case["task"] == "chat":
        from peft import LoraConfig, get_peft_model

        model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16,
                               lora_dropout=0.05,
                               target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))  # fmt: skip
        collator: Any = DataCollatorForSeq2Seq(
            tokenizer, padding="longest", label_pad_token_id=-100
        )
    else:
        assert labels is not None
        model = AutoModelForSequenceClassification.from_pretrained(
            base.path, num_labels=len(labels), dtype=torch.float32
        )
        collator = DataCollatorWithPadding(tokenizer, padding="longest")
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=case["batch_size"],
        per_device_eval_batch_size=case["batch_size"] * 2,
        num_train_epochs=case["n_epochs"],
        learning_rate=case["learning_rate"],
        lr_scheduler_type="linear",
        warmup_steps=round(0.1 * -(-len(train_ex) // case["batch_size"]) * case["n_epochs"]),
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=SEED,
        train_sampling_strategy="group_by_length" if grouped else "random",
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows(train_ex),
                      eval_dataset=rows(valid_ex), data_collator=collator)  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    valid = trainer.evaluate()
    wall = time.perf_counter() - start
    return {"wall_s": wall, "valid_loss": valid["eval_loss"], "steps": trainer.state.global_step}


def child(case_name: str, side: str, work: Path) -> dict[str, Any]:
    """One side of one case, in this process; prints its figures as JSON."""
    from tailorml.models.sources import materialize

    case = CASES[case_name]
    base = materialize(case["model"], work / "models")
    out = work / "runs" / f"{case_name}-{side}"
    if side.startswith("tailorml"):
        figures = run_tailorml(case, base, out, packing=side.endswith("packed"))
    else:
        figures = run_trainer(case, base, out, grouped=side.endswith("grouped"))
    _, train_ex, _, _ = _encoded(case, base)
    tokens = sum(e.length for e in train_ex) * case["n_epochs"]
    params = _parameters(case, base)
    figures.update(
        tokens=tokens,
        tokens_per_s=tokens / figures["wall_s"],
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        parameters=params,
    )
    flops_per_token = (4 if case["method"] == "lora" else 6) * params
    figures["mfu"] = figures["tokens_per_s"] * flops_per_token / PEAK_FLOPS
    return figures


def _parameters(case: dict[str, Any], base: Any) -> int:
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(base.path)
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=["full", "lora"])
    parser.add_argument("--sides", nargs="+",
                        default=["trainer", "trainer-grouped", "tailorml", "tailorml-packed"])  # fmt: skip
    parser.add_argument("--n-train", type=int, help="override the case's training set size")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "train")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.n_train:
        for case in CASES.values():
            case["n_train"] = args.n_train
    if args.child:
        print("RESULT " + json.dumps(child(*args.child, args.work)), flush=True)
        return
    print(f"load before: {[round(x, 2) for x in os.getloadavg()]}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for case_name in args.case:
        for side in args.sides:
            if side == "tailorml-packed" and CASES[case_name]["task"] != "chat":
                continue
            command = [sys.executable, __file__, "--work", str(args.work),
                       "--child", case_name, side]  # fmt: skip
            if args.n_train:
                command += ["--n-train", str(args.n_train)]
            run = subprocess.run(command, capture_output=True, text=True, check=False)
            found = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
            if run.returncode != 0 or not found:
                print(run.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{case_name}/{side} failed (exit {run.returncode})")
            figures = json.loads(found[-1][len("RESULT ") :])
            results[f"{case_name}/{side}"] = figures
            print(f"{case_name:5s} {side:16s} {figures['tokens_per_s']:8.1f} tok/s  "
                  f"peak {figures['peak_rss_mb']:7.0f} MB  valid_loss {figures['valid_loss']:.4f}  "
                  f"MFU {figures['mfu']:.3f}  ({figures['wall_s']:.0f} s, {figures['steps']} steps)  "
                  f"load {[round(x, 2) for x in os.getloadavg()]}", flush=True)  # fmt: skip
        base_side = results.get(f"{case_name}/trainer")
        grouped = results.get(f"{case_name}/trainer-grouped")
        for side in ("tailorml", "tailorml-packed"):
            ours = results.get(f"{case_name}/{side}")
            if ours and base_side and grouped:
                print(f"{case_name:5s} {side}: {ours['tokens_per_s'] / base_side['tokens_per_s']:.2f}x "
                      f"Trainer's tok/s, {ours['tokens_per_s'] / grouped['tokens_per_s']:.2f}x "
                      f"grouped; memory {ours['peak_rss_mb'] / base_side['peak_rss_mb']:.2f}x; "
                      f"valid loss {ours['valid_loss'] / base_side['valid_loss']:.3f}x", flush=True)  # fmt: skip
    (args.work / "results.json").parent.mkdir(parents=True, exist_ok=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
