"""Reranking: how relevant each document is to a query, by an embedder or a cross-encoder.

``Engine.rerank`` scores with whichever kind of encoder the model is:

- an embedding model (a base encoder, or one fine-tuned on pairs) embeds the
  query and every document as ``/v1/embeddings`` would, and a document's
  relevance is its cosine with the query (in [-1, 1]); this is how a
  bi-encoder retrieval model ranks, so a fine-tuned embedder reranks with
  the same vectors it serves;
- a classifier reads each (query, document) pair as one input, the way
  cross-encoders (ms-marco MiniLM, bge-reranker) are trained: ``[CLS] query
  [SEP] document [SEP]`` with segment ids, and a document's relevance is the
  probability of the positive class (``relevant_class``), or the sigmoid of
  a single-logit head, in [0, 1].

A decoder (chat) model cannot rerank here; it is refused with a clear error.
"""

from __future__ import annotations

from tailorml.errors import ContextLengthExceededError, InvalidRequestError
from tailorml.serve.backend import Tokenizer

MAX_DOCUMENTS = 1000  # per request, as Cohere's rerank recommends; more: send them in parts
# Class names that mean "relevant" (lower-cased), as cross-encoders and tenants name them.
POSITIVE_NAMES = ("1", "relevant", "positive", "yes", "true", "entailment", "label_1")


def check_rerank(query: object, documents: object) -> list[str]:
    """The documents, once the query and documents are known good (else a 400 saying why)."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequestError("'query' must be a non-empty string.", param="query")
    if not isinstance(documents, list) or not documents:
        raise InvalidRequestError(
            "'documents' must be a non-empty list of strings (or of {\"text\": ...} objects).",
            param="documents",
        )
    if len(documents) > MAX_DOCUMENTS:
        raise InvalidRequestError(
            f"At most {MAX_DOCUMENTS} documents per rerank request, got {len(documents)}; "
            "send them in several requests and merge the scores.",
            param="documents",
        )
    for i, doc in enumerate(documents):
        if not isinstance(doc, str) or not doc.strip():
            raise InvalidRequestError(f"documents[{i}] must be a non-empty string.",
                                      param="documents")  # fmt: skip
    return documents


def relevant_class(labels: tuple[str, ...], n_outputs: int) -> int:
    """Which output of a classifier means "relevant": a single logit's, the class named
    like ``POSITIVE_NAMES``, or the second of two (how binary cross-encoders are trained)."""
    if n_outputs == 1:
        return 0
    names = [label.lower() for label in labels] if len(labels) == n_outputs else []
    for i, name in enumerate(names):
        if name in POSITIVE_NAMES:
            return i
    if n_outputs == 2:
        return 1
    raise InvalidRequestError(
        f"This classifier has {n_outputs} classes ({', '.join(labels)}) and none is named as "
        f"the relevant one ({', '.join(POSITIVE_NAMES)}); rerank with a binary or "
        "single-score cross-encoder, or with an embedding model.",
        param="model",
        code="invalid_model_for_endpoint",
    )


def _fit(ids: list[int], limit: int, truncate: bool, what: str) -> list[int]:
    """``ids`` within ``limit``: cut at the end (keeping the closing [SEP]) or refused."""
    if len(ids) <= limit:
        return ids
    if not truncate:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {limit} tokens, however {what} has "
            f'{len(ids)} tokens. Shorten it, or send "truncate": true to cut it.',
            param="documents" if what.startswith("document") else "query",
        )
    return ids[: limit - 1] + ids[-1:]


def single_inputs(
    tokenizer: Tokenizer, query: str, documents: list[str], limit: int, truncate: bool
) -> list[list[int]]:
    """Token ids of the query, then of each document, each as an embedding input."""
    texts = [("the query", query)] + [(f"document {i}", d) for i, d in enumerate(documents)]
    return [_fit(tokenizer.encode(t, special=True), limit, truncate, what) for what, t in texts]


def pair_inputs(
    tokenizer: Tokenizer, query: str, documents: list[str], limit: int, truncate: bool
) -> tuple[list[list[int]], list[list[int]] | None]:
    """Token ids of each (query, document) pair, and their segment ids (None if the model
    has none). A cut shortens the document, which comes second."""
    batch: list[list[int]] = []
    types: list[list[int]] = []
    for i, doc in enumerate(documents):
        ids, segments = tokenizer.encode_pair(query, doc)
        fitted = _fit(ids, limit, truncate, f"document {i} with the query")
        batch.append(fitted)
        if segments is not None:
            cut = len(fitted) < len(ids)
            types.append(segments[: len(fitted) - 1] + segments[-1:] if cut else segments)
    return batch, (types if types else None)


def cosines(vectors: list[list[float]]) -> list[float]:
    """The cosine of the first (unit) vector with each of the others."""
    query = vectors[0]
    return [sum(a * b for a, b in zip(query, v, strict=True)) for v in vectors[1:]]
