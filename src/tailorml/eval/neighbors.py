"""Build the training-record index of a trained model (``tailorml.models.neighbors``).

Each record is represented by the text a caller would send the model for
it (a classifier's text, a chat's last user message, a completion's
prompt, an embedding pair's anchor), embedded by the tuned model itself as
the serving engine embeds an input: last hidden states, mean-pooled over
the tokens, L2-normalized. So ``explain: {"neighbors": k}`` compares an
input with the records in the representation that produced the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tailorml.errors import JobCancelledError
from tailorml.models.manifest import read_manifest
from tailorml.models.neighbors import MAX_INDEXED, preview, write_index
from tailorml.records import (
    ChatRecord,
    ClassificationRecord,
    CompletionRecord,
    EmbeddingPairRecord,
    PreferenceRecord,
    Record,
)

BATCH = 32


def _last_user(messages: list[Any]) -> str:
    users = [m.content for m in messages if m.role == "user"]
    return users[-1] if users else (messages[-1].content if messages else "")


def index_entry(record: Record, line: int) -> tuple[str, dict[str, Any]]:
    """The text that stands for ``record`` and what the index shows of it."""
    if isinstance(record, ClassificationRecord):
        return record.text, {"line": line, "text": preview(record.text), "label": record.label}
    if isinstance(record, ChatRecord):
        answers = [m.content for m in record.messages if m.role == "assistant"]
        text = _last_user(record.messages)
        return text, {
            "line": line,
            "text": preview(text),
            "answer": preview(answers[-1] if answers else ""),
        }
    if isinstance(record, CompletionRecord):
        entry = {"line": line, "text": preview(record.prompt), "answer": preview(record.completion)}
        return record.prompt, entry
    if isinstance(record, EmbeddingPairRecord):
        return record.anchor, {
            "line": line,
            "text": preview(record.anchor),
            "positive": preview(record.positive),
        }
    assert isinstance(record, PreferenceRecord)
    text = _last_user(record.messages)
    return text, {"line": line, "text": preview(text)}


def _load(model_dir: Path) -> tuple[Any, Any]:
    """The trained model (adapter applied) and its tokenizer, whatever its task."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    manifest = read_manifest(model_dir)
    if manifest.task == "classification":
        from tailorml.eval.classification import load_classifier

        model, tokenizer, _ = load_classifier(model_dir)
        return model, tokenizer
    if manifest.task in ("chat", "completion", "preference"):
        from tailorml.eval.generation import load_generator

        model, tokenizer, _ = load_generator(model_dir)
        return model, tokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if manifest.is_lora:
        from peft import PeftModel

        base = AutoModel.from_pretrained(manifest.base_folder(model_dir), dtype=torch.float32)
        return PeftModel.from_pretrained(base, model_dir).eval(), tokenizer
    return AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval(), tokenizer


def pooled_hidden_states(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> Any:
    """Unit vectors: each text's last hidden states averaged over its tokens (as served)."""
    import torch

    if tokenizer.pad_token is None:  # decoders: padding is masked out of the mean
        tokenizer.pad_token = tokenizer.eos_token
    rows = []
    with torch.no_grad():
        for start in range(0, len(texts), BATCH):
            enc = tokenizer(
                texts[start : start + BATCH],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            out = model(**enc, output_hidden_states=True)
            states = out.hidden_states[-1].float()
            keep = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * keep).sum(1) / keep.sum(1).clamp(min=1.0)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(rows)


def build_index(
    model_dir: Path,
    records: list[Record],
    lines: list[int],
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Embed up to ``MAX_INDEXED`` of ``records`` (``lines``: each one's line in the training
    file, from 1) with the model in ``model_dir`` and store the index there; the count."""
    records, lines = records[:MAX_INDEXED], lines[:MAX_INDEXED]
    if not records:
        return 0
    model, tokenizer = _load(model_dir)
    manifest = read_manifest(model_dir)
    max_length = manifest.max_length or manifest.context_length
    pairs = [index_entry(r, n) for r, n in zip(records, lines, strict=True)]
    vectors = []
    for start in range(0, len(pairs), BATCH * 8):
        if should_stop():
            raise JobCancelledError("Indexing the training records was cancelled.")
        chunk = [text for text, _ in pairs[start : start + BATCH * 8]]
        vectors.append(pooled_hidden_states(model, tokenizer, chunk, max_length))
    import torch

    write_index(model_dir, torch.cat(vectors).numpy(), [entry for _, entry in pairs])
    return len(pairs)
