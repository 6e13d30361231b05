"""Generation for evaluation: a trained decoder folder loaded with its base, greedy answers.

Greedy decoding makes the comparison of base and tuned repeatable: the
same prompt gives the same answer, so a difference in the report is a
difference between the models. Prompts are rendered as training rendered
them (the chat template with the generation prompt, or a completion
prompt as it is), so the answer is what the serving engine would give.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError, JobCancelledError
from tailorml.models.manifest import read_manifest
from tailorml.records import ChatRecord, CompletionRecord, PreferenceRecord, Record

GENERATION_BATCH = 8


def prompt_and_reference(tokenizer: Any, record: Record) -> tuple[str, str] | None:
    """The rendered prompt and the reference answer of a chat, completion or preference
    record (the last assistant reply of a chat, after everything before it; a preference
    pair's preferred reply), or None without one."""
    if isinstance(record, CompletionRecord):
        return record.prompt, record.completion
    if isinstance(record, PreferenceRecord):  # the preferred reply is the reference
        if not record.messages or not record.preferred:
            return None
        prompt = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in record.messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        return prompt, record.preferred[-1].content
    if isinstance(record, ChatRecord):
        last = max((i for i, m in enumerate(record.messages) if m.role == "assistant"), default=-1)
        if last < 1:
            return None
        prompt = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in record.messages[:last]],
            tokenize=False,
            add_generation_prompt=True,
        )
        return prompt, record.messages[last].content
    return None


def load_generator(model_dir: Path) -> tuple[Any, Any, bool]:
    """``(model, tokenizer, is_lora)`` of a trained decoder folder, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = read_manifest(model_dir)
    if manifest.task not in ("chat", "completion", "preference"):
        raise InvalidRequestError(f"{model_dir} holds a {manifest.task} model, not a decoder.")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if manifest.is_lora:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(
            manifest.base_folder(model_dir), dtype=torch.float32
        )
        model = PeftModel.from_pretrained(base, model_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    return model, tokenizer, manifest.is_lora


@contextmanager
def without_adapter(model: Any, is_lora: bool) -> Iterator[None]:
    """The base model's behaviour for the duration: a LoRA adapter switched off (peft), so
    the base needs no second copy of the weights in memory."""
    with model.disable_adapter() if is_lora else nullcontext():
        yield


def generate_greedy(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: list[int],
    *,
    special_tokens: bool,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[str]:
    """The greedy answer to each prompt, at most ``max_new_tokens[i]`` tokens, in batches.

    Prompts are left-padded so every row's answer starts at the same column;
    ``special_tokens`` adds the tokenizer's own (BOS) as training did for
    completion prompts (a chat template writes its own).
    """
    import torch

    pad = tokenizer.pad_token_id
    pad = tokenizer.eos_token_id if pad is None else pad
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # less padding
    out: list[str] = [""] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # decoders often have none; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    try:
        for start in range(0, len(order), GENERATION_BATCH):
            if should_stop():
                raise JobCancelledError("The evaluation was cancelled while generating.")
            rows = order[start : start + GENERATION_BATCH]
            enc = tokenizer(
                [prompts[i] for i in rows],
                return_tensors="pt",
                padding=True,
                add_special_tokens=special_tokens,
            )
            with torch.no_grad():
                ids = model.generate(
                    **enc,
                    max_new_tokens=max(max_new_tokens[i] for i in rows),
                    do_sample=False,
                    pad_token_id=pad,
                    eos_token_id=tokenizer.eos_token_id,
                )
            width = enc["input_ids"].shape[1]
            for row, i in enumerate(rows):
                answer = ids[row, width : width + max_new_tokens[i]]
                out[i] = tokenizer.decode(answer, skip_special_tokens=True).strip()
    finally:
        tokenizer.padding_side = side
    return out
