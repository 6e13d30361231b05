"""A judge model compares the base's and the tuned model's answers, pairwise, both ways round.

Pairwise judging with a language model favours whichever answer comes
first (or second) more often than chance; asking twice with the answers
swapped cancels that bias (Zheng et al., "Judging LLM-as-a-judge", 2023). The
judge is asked for one letter, and its preference is read from its
next-token probabilities of "A" and "B" rather than from sampled text, so a
verdict is deterministic and never unparseable. Per prompt: the tuned answer
wins when the judge prefers it in both orders, loses when it prefers the
base's in both, and ties otherwise (the judge followed the position, not the
answer). The win rate counts a tie as half, with a 95 % confidence interval
(normal approximation over the prompts' scores of 1, 0.5 and 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError, JobCancelledError
from tailorml.models.manifest import has_manifest

INSTRUCTION = (
    "You compare two answers to the same request. Judge which answer is more helpful, correct "
    "and relevant. Reply with one letter: A or B."
)


def load_judge(folder: Path) -> tuple[Any, Any]:
    """A chat model to judge with: a fine-tuned folder (adapter applied) or a base's folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if has_manifest(folder):
        from tailorml.eval.generation import load_generator

        model, tokenizer, _ = load_generator(folder)
        return model, tokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:
        raise InvalidRequestError(
            "The judge model has no chat template; pick a chat model as judge_model.",
            param="method.training.judge_model",
        )
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(), tokenizer


def _letter_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Token ids that start an answer "A" or "B" (with or without a leading space)."""
    ids: tuple[set[int], set[int]] = (set(), set())
    for side, letter in enumerate("AB"):
        for text in (letter, f" {letter}"):
            pieces = tokenizer(text, add_special_tokens=False)["input_ids"]
            if pieces:
                ids[side].add(pieces[0])
    return sorted(ids[0]), sorted(ids[1])


def prefers_first(model: Any, tokenizer: Any, prompt: str, first: str, second: str) -> float:
    """P(the judge answers "A") among "A" and "B", with ``first`` shown as answer A."""
    import torch

    text = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": INSTRUCTION},
            {
                "role": "user",
                "content": f"Request:\n{prompt}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}\n\n"
                "Which answer is better, A or B?",
            },
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = model(**enc).logits[0, -1].float()
    a_ids, b_ids = _letter_ids(tokenizer)
    a = torch.logsumexp(logits[a_ids], 0)
    b = torch.logsumexp(logits[b_ids], 0)
    return float(torch.sigmoid(a - b))


def judge_pairwise(
    folder: Path,
    items: list[tuple[str, str, str]],
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Win rate of the tuned answers over the base's: ``items`` are (prompt, base, tuned)."""
    model, tokenizer = load_judge(folder)
    wins = losses = ties = 0
    scores = []
    for prompt, base, tuned in items:
        if should_stop():
            raise JobCancelledError("The judge pass was cancelled.")
        tuned_first = prefers_first(model, tokenizer, prompt, tuned, base) > 0.5
        tuned_second = prefers_first(model, tokenizer, prompt, base, tuned) < 0.5
        if tuned_first and tuned_second:
            wins, score = wins + 1, 1.0
        elif not tuned_first and not tuned_second:
            losses, score = losses + 1, 0.0
        else:
            ties, score = ties + 1, 0.5
        scores.append(score)
    n = len(scores)
    rate = sum(scores) / n if n else 0.0
    spread = math.sqrt(sum((s - rate) ** 2 for s in scores) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * spread / math.sqrt(n) if n else 0.0
    return {
        "n": n,
        "wins": wins,
        "losses": losses,
        "ties": ties,
        "win_rate": rate,
        "ci95": [max(0.0, rate - half), min(1.0, rate + half)],
        "position_consistent": (wins + losses) / n if n else 0.0,
        "how": "each prompt judged twice with the answers swapped; a tie when the verdicts "
        "disagree, counted as half a win",
    }
