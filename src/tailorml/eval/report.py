"""The evaluation report of a trained model: the base against the tuned one on held-out data.

Written as ``report.json`` beside the model when training ends
(``tailorml.train.run`` calls ``build_report``), so the platform serves it
without running a model, and it stays with the model it describes.

- Classification: accuracy, macro-F1, per-class precision/recall, the
  confusion matrix, calibration (ECE and the reliability bins) of the tuned
  model; the base is what a tenant gets with no training (nearest class
  centroid of the frozen base's embeddings; a base encoder has no head to
  classify with), beside the majority-label floor.
- Generation: validation loss and perplexity of both (from training, on the
  same split), and greedy answers of both to the same prompts scored
  against the reference (exact match, BLEU, chrF, ROUGE-L), with samples
  side by side. A LoRA model's base is the same weights with the adapter
  switched off, so no second model is loaded.

``tailorml.eval.html`` renders the report as a page with charts.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tailorml.models.atomic import atomic_write_bytes
from tailorml.models.manifest import read_manifest
from tailorml.models.sources import MaterializedModel
from tailorml.records import (
    ChatRecord,
    ClassificationRecord,
    CompletionRecord,
    PreferenceRecord,
    Record,
)

REPORT_FILE = "report.json"
REPORT_VERSION = 1
MAX_SCORED = 2000  # classification records scored (a report, not a benchmark)
MAX_CENTROID_TRAIN = 5000  # training records the base's centroids are built from
GENERATION_SAMPLES = 24  # records both models answer
MAX_NEW_TOKENS = 128
SHOWN_SAMPLES = 8
SHOWN_CHARS = 600
# What training measured that the report repeats (on the same held-out split).
TRAINING_KEYS = (
    "step",
    "best_step",
    "train_loss",
    "valid_loss",
    "valid_accuracy",
    "base_valid_loss",
    "base_valid_accuracy",
)

Say = Callable[[str], None]


def build_report(
    model_dir: Path,
    base: MaterializedModel,
    train_records: list[Record],
    valid_records: list[Record],
    *,
    training: dict[str, Any],
    say: Say = lambda message: None,
    should_stop: Callable[[], bool] = lambda: False,
    judge: Path | None = None,
) -> dict[str, Any]:
    """The report of the model in ``model_dir`` (trained from ``base``) on ``valid_records``;
    with a ``judge`` (a chat model's folder), generation answers are also judged pairwise
    (``tailorml.eval.judge``)."""
    manifest = read_manifest(model_dir)
    report: dict[str, Any] = {
        "object": "fine_tuning.job.report",
        "version": REPORT_VERSION,
        "created_at": int(time.time()),
        "task": manifest.task,
        "method": manifest.method,
        "base_model": base.name,
        "n_validation": len(valid_records),
        "training": {k: training.get(k) for k in TRAINING_KEYS if k in training},
        "evaluation": None,
        "samples": [],
        "notes": [],
    }
    if not valid_records:
        report["notes"].append(
            "No records were held out, so nothing compares the base and the tuned model; "
            "upload a validation_file (or more training records) for a report."
        )
    elif manifest.task == "classification":
        report.update(_classification(model_dir, base, train_records, valid_records, say))
    elif manifest.task in ("chat", "completion", "preference"):
        report.update(
            _generation(model_dir, base, valid_records, training, say, should_stop, judge)
        )
    else:
        report["notes"].append(f"The report has no evaluation for {manifest.task} models yet.")
    return report


def write_report(model_dir: Path, report: dict[str, Any]) -> Path:
    """Store the report beside the model, atomically (a reader never sees half of one)."""
    path = Path(model_dir) / REPORT_FILE
    atomic_write_bytes(path, json.dumps(report, ensure_ascii=False, indent=1).encode())
    return path


def read_report(model_dir: Path) -> dict[str, Any] | None:
    """The report stored with a model, or None when it has none."""
    path = Path(model_dir) / REPORT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _classification(
    model_dir: Path,
    base: MaterializedModel,
    train_records: list[Record],
    valid_records: list[Record],
    say: Say,
) -> dict[str, Any]:
    from tailorml.eval.classification import load_classifier, nearest_centroids, predict_proba
    from tailorml.eval.metrics import classification_metrics

    model, tokenizer, labels = load_classifier(model_dir)
    records = [r for r in valid_records if isinstance(r, ClassificationRecord)]
    test = [r for r in records if r.label in labels][:MAX_SCORED]
    notes = []
    if len(test) < len(records):
        unseen = sum(r.label not in labels for r in records)
        if unseen:
            notes.append(f"{unseen} held-out records carry labels training never saw; not scored.")
    if not test:
        return {"notes": notes + ["No held-out record has a label the model knows."]}
    train = [r for r in train_records if isinstance(r, ClassificationRecord)]
    if len(train) > MAX_CENTROID_TRAIN:
        train = random.Random(0).sample(train, MAX_CENTROID_TRAIN)
    say(f"Evaluating the tuned and the base model on {len(test)} held-out records.")
    texts = [r.text for r in test]
    targets = [labels.index(r.label) for r in test]
    max_length = read_manifest(model_dir).max_length or 512
    probs = predict_proba(model, tokenizer, texts, max_length)
    predicted = [int(i) for i in probs.argmax(-1)]
    confidence = [float(p) for p in probs.max(-1).values]
    del model
    base_predicted = nearest_centroids(base, train, texts, labels)
    majority = Counter(r.label for r in train).most_common(1)[0][0]
    tuned = classification_metrics(targets, predicted, labels, confidence)
    base_m = classification_metrics(targets, base_predicted, labels)
    # Show first where the two disagree: that is what training changed.
    order = sorted(range(len(test)), key=lambda i: predicted[i] == base_predicted[i])
    samples = [
        {
            "input": _short(test[i].text),
            "reference": test[i].label,
            "base": labels[base_predicted[i]],
            "tuned": labels[predicted[i]],
            "tuned_confidence": confidence[i],
        }
        for i in order[:SHOWN_SAMPLES]
    ]
    return {
        "labels": labels,
        "evaluation": {
            "n": len(test),
            "headline": {
                "metric": "accuracy",
                "base": base_m["accuracy"],
                "tuned": tuned["accuracy"],
            },
            "base": {
                "how": "nearest class centroid of the frozen base model's embeddings",
                **base_m,
            },
            "tuned": tuned,
            "majority": {
                "label": majority,
                "accuracy": sum(r.label == majority for r in test) / len(test),
            },
        },
        "samples": samples,
        "notes": notes,
    }


def _shown_prompt(record: Record) -> str:
    if isinstance(record, CompletionRecord):
        return record.prompt
    if isinstance(record, PreferenceRecord):
        users = [m.content for m in record.messages if m.role == "user"]
        return users[-1] if users else record.messages[-1].content
    assert isinstance(record, ChatRecord)
    last = max(i for i, m in enumerate(record.messages) if m.role == "assistant")
    users = [m.content for m in record.messages[:last] if m.role == "user"]
    return users[-1] if users else record.messages[last - 1].content


def _perplexity(loss: Any) -> float | None:
    return math.exp(min(float(loss), 50.0)) if isinstance(loss, int | float) else None


def _generation(
    model_dir: Path,
    base: MaterializedModel,
    valid_records: list[Record],
    training: dict[str, Any],
    say: Say,
    should_stop: Callable[[], bool],
    judge: Path | None = None,
) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from tailorml.eval.generation import (
        generate_greedy,
        load_generator,
        prompt_and_reference,
        without_adapter,
    )
    from tailorml.eval.metrics import generation_metrics

    model, tokenizer, is_lora = load_generator(model_dir)
    chosen: list[tuple[Record, str, str]] = []
    for record in valid_records:
        pair = prompt_and_reference(tokenizer, record)
        if pair is not None:
            chosen.append((record, *pair))
        if len(chosen) == GENERATION_SAMPLES:
            break
    if not chosen:
        return {"notes": ["No held-out record has a reference answer to compare with."]}
    prompts = [p for _, p, _ in chosen]
    refs = [r for _, _, r in chosen]
    budget = [
        min(MAX_NEW_TOKENS, max(16, 2 * len(tokenizer(r, add_special_tokens=False).input_ids)))
        for r in refs
    ]
    task = read_manifest(model_dir).task
    special = task == "completion"
    say(f"Answering {len(chosen)} held-out prompts with the tuned and the base model (greedy).")
    tuned_out = generate_greedy(
        model, tokenizer, prompts, budget, special_tokens=special, should_stop=should_stop
    )
    if is_lora:
        with without_adapter(model, is_lora):
            base_out = generate_greedy(
                model, tokenizer, prompts, budget, special_tokens=special, should_stop=should_stop
            )
    else:
        model = None  # a full fine-tune's base is other weights: one model in memory at a time
        base_model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32).eval()
        base_out = generate_greedy(
            base_model, tokenizer, prompts, budget, special_tokens=special, should_stop=should_stop
        )
        del base_model
    del model  # before a judge loads
    tuned = generation_metrics(refs, tuned_out)
    base_m = generation_metrics(refs, base_out)
    verdict = None
    if judge is not None:
        from tailorml.eval.judge import judge_pairwise

        say(f"Judging the base's and the tuned answers to {len(chosen)} prompts, both ways round.")
        items = [
            (_shown_prompt(record), b, t)
            for (record, _, _), b, t in zip(chosen, base_out, tuned_out, strict=True)
        ]
        verdict = judge_pairwise(judge, items, should_stop=should_stop)
    if task != "preference":  # a DPO loss is no language-model loss: no perplexity from it
        for side, loss in (
            (tuned, training.get("valid_loss")),
            (base_m, training.get("base_valid_loss")),
        ):
            side["valid_loss"] = loss
            side["perplexity"] = _perplexity(loss)
    samples = [
        {
            "input": _short(_shown_prompt(record)),
            "reference": _short(ref),
            "base": _short(b),
            "tuned": _short(t),
        }
        for (record, _, ref), b, t in list(zip(chosen, base_out, tuned_out, strict=True))[
            :SHOWN_SAMPLES
        ]
    ]
    return {
        "evaluation": {
            "n": len(chosen),
            "headline": {"metric": "chrf", "base": base_m["chrf"], "tuned": tuned["chrf"]},
            "base": {
                "how": "the base model" + (" (the adapter switched off)" if is_lora else ""),
                **base_m,
            },
            "tuned": tuned,
            "judge": verdict,
        },
        "samples": samples,
    }
