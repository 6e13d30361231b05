"""Fidelity: the model that is served answers as the model that was trained.

Users of other trainers keep finding that the adapter they trained answers
differently once served: a chat template lost or changed on the way, an
adapter loaded onto the wrong layers, a merge that went wrong. When training
ends this module answers a few probes (held-out prompts rendered with the
training template, or classifier texts) with the adapter on its base and,
for LoRA, with the adapter merged into the weights; the two must agree
(greedy tokens, their log-probabilities within ``LOGPROB_TOLERANCE``), or
training fails. The answers are written to ``fidelity.json`` beside the
model so the serving side (``tailorml.serve.fidelity``) can check the model
as the engine loads it against the same figures.

Greedy tokens are compared up to near-ties: where the best two tokens of a
step are within ``TIE_MARGIN`` in log-probability, rounding may pick either,
so the comparison stops there instead of failing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tailorml.errors import FidelityError, JobCancelledError
from tailorml.models.atomic import atomic_write_bytes
from tailorml.models.manifest import read_manifest
from tailorml.records import ClassificationRecord, Record

FIDELITY_FILE = "fidelity.json"
PROBES = 4
NEW_TOKENS = 16
LOGPROB_TOLERANCE = 2e-3  # fp32 on CPU: merged and unmerged LoRA differ by ~1e-5
PROB_TOLERANCE = 1e-3
TIE_MARGIN = 1e-3


def _greedy(model: Any, tokenizer: Any, prompt: str, special: bool) -> dict[str, Any]:
    """Greedy ``NEW_TOKENS`` of ``prompt``: token ids, their text, log-probabilities and each
    step's margin between the best two tokens."""
    import torch

    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=special)
    with torch.no_grad():
        out = model.generate(
            **enc,
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    ids = out.sequences[0, enc["input_ids"].shape[1] :].tolist()
    logprobs, margins = [], []
    for step, token in enumerate(ids):
        scores = torch.log_softmax(out.scores[step][0].float(), dim=-1)
        top = torch.topk(scores, 2).values
        logprobs.append(float(scores[token]))
        margins.append(float(top[0] - top[1]))
    return {
        "ids": ids,
        # As the serving engine writes logprobs entries: special tokens decode to "".
        "tokens": [tokenizer.decode([t], skip_special_tokens=True) for t in ids],
        "logprobs": logprobs,
        "margins": margins,
    }


def compare_greedy(expected: dict[str, Any], got: dict[str, Any], what: str) -> str | None:
    """The first difference between two greedy answers to one probe, or None.

    ``got`` needs ``tokens`` and ``logprobs`` (the serving engine has no ids); comparison
    stops at a near-tie of ``expected`` or where either answer ended.
    """
    for step, (want, have) in enumerate(zip(expected["tokens"], got["tokens"], strict=False)):
        if want != have:
            if expected["margins"][step] < TIE_MARGIN:
                return None  # either token is the greedy choice within rounding
            return (
                f"{what}: token {step + 1} is {have!r} but training's model answers {want!r} "
                f"(answer {''.join(got['tokens'])!r} against {''.join(expected['tokens'])!r})"
            )
        gap = abs(expected["logprobs"][step] - got["logprobs"][step])
        if gap > LOGPROB_TOLERANCE:
            return (
                f"{what}: token {step + 1} ({want!r}) has log-probability "
                f"{got['logprobs'][step]:.5f} against training's {expected['logprobs'][step]:.5f}"
                f" (tolerance {LOGPROB_TOLERANCE})"
            )
        if expected["margins"][step] < TIE_MARGIN:
            return None
    return None


def compare_probabilities(
    expected: dict[str, float], got: dict[str, float], what: str
) -> str | None:
    worst = max(expected, key=lambda label: abs(expected[label] - got.get(label, -1.0)))
    gap = abs(expected[worst] - got.get(worst, -1.0))
    if gap > PROB_TOLERANCE:
        return (
            f"{what}: p({worst}) is {got.get(worst)} but training's model gives "
            f"{expected[worst]:.6f} (tolerance {PROB_TOLERANCE})"
        )
    return None


def _classifier_probes(model_dir: Path, records: list[Record]) -> list[dict[str, Any]]:
    from tailorml.eval.classification import load_classifier, predict_proba

    model, tokenizer, labels = load_classifier(model_dir)
    # As the engine reads an input: whole, up to the context (training's max_length cut is
    # training's; a longer input is served in full), so probes are texts that fit it.
    max_length = read_manifest(model_dir).context_length
    texts = [
        r.text
        for r in records
        if isinstance(r, ClassificationRecord) and len(tokenizer(r.text).input_ids) <= max_length
    ][:PROBES]
    rows = predict_proba(model, tokenizer, texts, max_length).tolist()
    probes = [
        {"text": t, "probabilities": dict(zip(labels, p, strict=True))}
        for t, p in zip(texts, rows, strict=True)
    ]
    if read_manifest(model_dir).is_lora:
        merged = model.merge_and_unload()
        again = predict_proba(merged, tokenizer, texts, max_length).tolist()
        for n, (probe, row) in enumerate(zip(probes, again, strict=True)):
            found = compare_probabilities(
                probe["probabilities"], dict(zip(labels, row, strict=True)), f"probe {n + 1} merged"
            )
            if found:
                raise FidelityError(
                    f"The merged model differs from the adapter on its base: {found}."
                )
    return probes


def _generator_probes(
    model_dir: Path, records: list[Record], should_stop: Callable[[], bool]
) -> list[dict[str, Any]]:
    from tailorml.eval.generation import load_generator, prompt_and_reference
    from tailorml.records import ChatRecord, PreferenceRecord

    model, tokenizer, is_lora = load_generator(model_dir)
    special = read_manifest(model_dir).task == "completion"
    probes = []
    for record in records:
        pair = prompt_and_reference(tokenizer, record)
        if pair is None:
            continue
        if should_stop():
            raise JobCancelledError("The fidelity check was cancelled.")
        probe: dict[str, Any]
        if isinstance(record, ChatRecord):
            last = max(i for i, m in enumerate(record.messages) if m.role == "assistant")
            probe = {
                "messages": [{"role": m.role, "content": m.content} for m in record.messages[:last]]
            }
        elif isinstance(record, PreferenceRecord):
            probe = {"messages": [{"role": m.role, "content": m.content} for m in record.messages]}
        else:
            probe = {"prompt": pair[0]}
        probe["answer"] = _greedy(model, tokenizer, pair[0], special)
        probes.append(probe)
        if len(probes) == PROBES:
            break
    if is_lora and probes:
        merged = model.merge_and_unload()
        for n, probe in enumerate(probes):
            prompt = (
                tokenizer.apply_chat_template(
                    probe["messages"], tokenize=False, add_generation_prompt=True
                )
                if "messages" in probe
                else probe["prompt"]
            )
            found = compare_greedy(
                probe["answer"],
                _greedy(merged, tokenizer, prompt, special),
                f"probe {n + 1} merged",
            )
            if found:
                raise FidelityError(
                    f"The merged model differs from the adapter on its base: {found}."
                )
    return probes


def write_expectations(
    model_dir: Path, records: list[Record], *, should_stop: Callable[[], bool] = lambda: False
) -> int:
    """Answer the probes with the trained model (and its merge), check they agree, and store
    them as ``fidelity.json``; the number of probes (0 for tasks without a check)."""
    task = read_manifest(model_dir).task
    if task == "classification":
        probes = _classifier_probes(model_dir, records)
    elif task in ("chat", "completion", "preference"):
        probes = _generator_probes(model_dir, records, should_stop)
    else:
        return 0
    body = {"task": task, "new_tokens": NEW_TOKENS, "probes": probes}
    atomic_write_bytes(
        Path(model_dir) / FIDELITY_FILE, json.dumps(body, ensure_ascii=False).encode()
    )
    return len(probes)


def read_expectations(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / FIDELITY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
