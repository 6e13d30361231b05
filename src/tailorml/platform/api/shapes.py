"""OpenAI's response objects for chat and legacy completions, from the engine's answers.

One place builds what the SDKs parse: choices (``n`` of them), logprobs in
the chat shape (``logprobs.content``) and the legacy one (``tokens``,
``token_logprobs``, ``top_logprobs``, ``text_offset``), stream chunks, and
usage (the prompt counted once, completion tokens over every choice), also
as the last streamed chunk when ``stream_options.include_usage`` is set.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from tailorml.serve.engine import Choice, Completion, StreamDelta


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat_logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return None if entries is None else {"content": entries, "refusal": None}


def chat_completion(out: Completion, head: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` object; ``head`` holds id, created and model."""
    return {
        **head,
        "object": "chat.completion",
        "choices": [
            {
                "index": c.index,
                "message": {"role": "assistant", "content": c.text, "refusal": None},
                "logprobs": _chat_logprobs(c.logprobs),
                "finish_reason": c.finish_reason,
            }
            for c in out.choices
        ],
        "usage": usage(out.prompt_tokens, out.completion_tokens),
    }


def chat_chunks(
    deltas: Iterator[StreamDelta], head: dict[str, Any], n: int, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """``chat.completion.chunk`` objects: each choice's role first, then its pieces."""
    base = {**head, "object": "chat.completion.chunk"}
    for index in range(n):
        yield {
            **base,
            "choices": [
                {
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
    last = None
    for d in deltas:
        last = d
        if d.text or d.finish_reason or d.logprobs:
            yield {
                **base,
                "choices": [
                    {
                        "index": d.index,
                        "delta": {"content": d.text} if d.text else {},
                        "logprobs": _chat_logprobs(d.logprobs),
                        "finish_reason": d.finish_reason,
                    }
                ],
            }
    if include_usage and last is not None:
        yield {**base, "choices": [], "usage": usage(last.prompt_tokens, last.completion_tokens)}


def _legacy_logprobs(entries: list[dict[str, Any]] | None, offset: int) -> dict[str, Any] | None:
    """The legacy completions shape, ``text_offset`` counted from ``offset`` characters."""
    if entries is None:
        return None
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
        "text_offset": offsets,
    }


def text_completion(out: Completion, head: dict[str, Any], prompt_chars: int) -> dict[str, Any]:
    """A ``text_completion`` object (legacy ``/v1/completions``)."""

    def choice(c: Choice) -> dict[str, Any]:
        return {
            "index": c.index,
            "text": c.text,
            "logprobs": _legacy_logprobs(c.logprobs, prompt_chars),
            "finish_reason": c.finish_reason,
        }

    return {
        **head,
        "object": "text_completion",
        "choices": [choice(c) for c in out.choices],
        "usage": usage(out.prompt_tokens, out.completion_tokens),
    }


def completion_chunks(
    deltas: Iterator[StreamDelta], head: dict[str, Any], prompt_chars: int, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """Streamed ``text_completion`` objects, one piece of one choice each."""
    base = {**head, "object": "text_completion"}
    offsets: dict[int, int] = {}
    last = None
    for d in deltas:
        last = d
        if d.text or d.finish_reason or d.logprobs:
            start = offsets.get(d.index, prompt_chars)
            offsets[d.index] = start + len(d.text)
            yield {
                **base,
                "choices": [
                    {
                        "index": d.index,
                        "text": d.text,
                        "logprobs": _legacy_logprobs(d.logprobs, start),
                        "finish_reason": d.finish_reason,
                    }
                ],
            }
    if include_usage and last is not None:
        yield {**base, "choices": [], "usage": usage(last.prompt_tokens, last.completion_tokens)}


def embedding_list(
    vectors: list[list[float]], model: str, tokens: int, encoding_format: str = "float"
) -> dict[str, Any]:
    """``/v1/embeddings``' list; ``base64`` packs each vector as little-endian float32."""
    import base64

    import numpy as np

    def encode(v: list[float]) -> Any:
        if encoding_format == "base64":
            return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
        return v

    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def classification_list(results: list[dict[str, Any]], model: str, tokens: int) -> dict[str, Any]:
    """``/v1/classifications``' list (TailorML extension): label, score and scores per input."""
    return {
        "object": "list",
        "model": model,
        "data": [{"index": i, **r} for i, r in enumerate(results)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def rerank_results(
    scores: list[float],
    documents: list[str],
    model: str,
    tokens: int,
    *,
    top_n: int | None,
    return_documents: bool,
) -> dict[str, Any]:
    """``/v1/rerank``'s answer (TailorML extension, the shape vLLM and Cohere use): results
    best first, each with its index in the request, its relevance and (asked) its text."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:top_n]
    results = []
    for i in order:
        result: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
        if return_documents:
            result["document"] = {"text": documents[i]}
        results.append(result)
    return {
        "id": f"rerank-{secrets.token_hex(12)}",
        "object": "rerank",
        "model": model,
        "results": results,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
