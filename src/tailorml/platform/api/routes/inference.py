"""/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/classifications, /v1/rerank.

Each resolves the model for the calling tenant, checks that the model can do
the task, and calls the serving engine; ``stream: true`` answers with
server-sent events ending in ``data: [DONE]``. Handlers are plain ``def``
so the blocking engine runs in the server's thread pool. The model lookup
is a short read transaction that ends before inference starts: a request
that generates for seconds holds no database lock or snapshot meanwhile.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from tailorml.errors import InvalidRequestError
from tailorml.platform.api import shapes
from tailorml.platform.api.deps import StateDep, TenantDep
from tailorml.platform.api.protocol import (
    ChatCompletionRequest,
    ClassificationRequest,
    CompletionRequest,
    EmbeddingRequest,
    RerankRequest,
)
from tailorml.platform.api.state import AppState
from tailorml.platform.db.engine import read_scope

router = APIRouter(prefix="/v1", tags=["inference"])


def _ref(state: AppState, tenant_id: str, model: str, *, need: str) -> Any:
    with read_scope(state.read_sessions) as session:
        ref = state.models.resolve(session, tenant_id=tenant_id, model_id=model)
    if need == "generate" and ref.architecture != "decoder":
        raise InvalidRequestError(
            f"{model} is an encoder ({ref.task or 'embedding'} model) and cannot generate text; "
            "use /v1/classifications or /v1/embeddings, or a decoder model for completions.",
            param="model",
            code="invalid_model_for_endpoint",
        )
    if need == "rerank" and ref.architecture == "decoder":
        raise InvalidRequestError(
            f"{model} is a decoder ({ref.task or 'chat'} model) and cannot rerank; use an "
            "embedding model or a classifier (cross-encoder) trained on query/document pairs.",
            param="model",
            code="invalid_model_for_endpoint",
        )
    if need == "classify" and ref.task != "classification":
        raise InvalidRequestError(
            f"{model} is not a classifier; fine-tune a model on text/label data and call it here.",
            param="model",
            code="invalid_model_for_endpoint",
        )
    return ref


def _meter(state: AppState, tenant_id: str, model: str, prompt: int, completion: int = 0) -> None:
    """Count the request's use (in memory; written within a second: platform/usage.py)."""
    state.usage.record_request(tenant_id, model, prompt_tokens=prompt, completion_tokens=completion)


def _metered(state: AppState, tenant_id: str, model: str, deltas: Iterator[Any]) -> Iterator[Any]:
    """The stream's deltas; what was generated is counted when it ends, or when the client
    goes away part-way (this generator is closed then, and closes the engine's at once so its
    admission ticket is given back)."""
    last = None
    try:
        for last in deltas:
            yield last
    finally:
        close = getattr(deltas, "close", None)
        if close is not None:
            close()
        if last is not None:
            _meter(state, tenant_id, model, last.prompt_tokens, last.completion_tokens)


def _sse(chunks: Iterator[dict[str, Any]]) -> StreamingResponse:
    def body() -> Iterator[str]:
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


@router.post("/chat/completions", response_model=None)
def chat_completions(body: ChatCompletionRequest, state: StateDep, tenant_id: TenantDep) -> Any:
    ref = _ref(state, tenant_id, body.model, need="generate")
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in body.messages
    ]
    opts = body.engine_options()
    head = {"id": f"chatcmpl-{secrets.token_hex(12)}", "created": int(time.time()),
            "model": body.model}  # fmt: skip
    if not body.stream:
        out = state.serving.chat(ref, messages, **opts, tenant=tenant_id)
        _meter(state, tenant_id, body.model, out.prompt_tokens, out.completion_tokens)
        return shapes.chat_completion(out, head)
    deltas = state.serving.stream_chat(ref, messages, **opts, tenant=tenant_id)
    deltas = _metered(state, tenant_id, body.model, deltas)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return _sse(shapes.chat_chunks(deltas, head, body.n, include_usage))


@router.post("/completions", response_model=None)
def completions(body: CompletionRequest, state: StateDep, tenant_id: TenantDep) -> Any:
    ref = _ref(state, tenant_id, body.model, need="generate")
    opts = body.engine_options()
    head = {"id": f"cmpl-{secrets.token_hex(12)}", "created": int(time.time()),
            "model": body.model}  # fmt: skip
    if not body.stream:
        out = state.serving.complete(ref, body.prompt, **opts, tenant=tenant_id)
        _meter(state, tenant_id, body.model, out.prompt_tokens, out.completion_tokens)
        return shapes.text_completion(out, head, len(body.prompt))
    deltas = state.serving.stream_complete(ref, body.prompt, **opts, tenant=tenant_id)
    deltas = _metered(state, tenant_id, body.model, deltas)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return _sse(shapes.completion_chunks(deltas, head, len(body.prompt), include_usage))


@router.post("/embeddings")
def embeddings(body: EmbeddingRequest, state: StateDep, tenant_id: TenantDep) -> dict[str, Any]:
    if body.dimensions is not None:
        raise InvalidRequestError(
            "dimensions is not supported by these models; leave it out.", param="dimensions"
        )
    ref = _ref(state, tenant_id, body.model, need="embed")
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if body.explain is not None and body.explain.neighbors is not None:
        state.serving.nearest_records(ref, [], body.explain.neighbors)  # refuse before work
    vectors, tokens = state.serving.embed(ref, inputs, truncate=body.truncate, tenant=tenant_id)
    _meter(state, tenant_id, body.model, tokens)
    out = shapes.embedding_list(vectors, body.model, tokens, body.encoding_format)
    if body.explain is not None and body.explain.neighbors is not None:
        near = state.serving.nearest_records(ref, vectors, body.explain.neighbors)
        for item, found in zip(out["data"], near, strict=True):
            item["neighbors"] = found
    return out


@router.post("/classifications")
def classifications(
    body: ClassificationRequest, state: StateDep, tenant_id: TenantDep
) -> dict[str, Any]:
    ref = _ref(state, tenant_id, body.model, need="classify")
    inputs = [body.input] if isinstance(body.input, str) else body.input
    results, tokens = state.serving.classify(
        ref, inputs, truncate=body.truncate, tenant=tenant_id, explain=body.attributions()
    )
    k = body.neighbors()
    if k is not None:
        near, _ = state.serving.neighbors(ref, inputs, k, truncate=body.truncate, tenant=tenant_id)
        for result, found in zip(results, near, strict=True):
            result["neighbors"] = found
    _meter(state, tenant_id, body.model, tokens)
    return shapes.classification_list(results, body.model, tokens)


@router.post("/rerank")
def rerank(body: RerankRequest, state: StateDep, tenant_id: TenantDep) -> dict[str, Any]:
    """TailorML extension: order documents by relevance to a query (an embedding model's
    cosine, or a cross-encoder classifier's probability of "relevant")."""
    ref = _ref(state, tenant_id, body.model, need="rerank")
    documents = body.texts()
    scores, tokens = state.serving.rerank(
        ref, body.query, documents, truncate=body.truncate, tenant=tenant_id
    )
    _meter(state, tenant_id, body.model, tokens)
    return shapes.rerank_results(
        scores, documents, body.model, tokens,
        top_n=body.top_n, return_documents=body.return_documents,
    )  # fmt: skip
