"""Constrained decoding: answers that match a JSON Schema (``response_format``), with llguidance.

At every step of a constrained request the tokens that cannot continue a
document matching the schema are masked out of the scores before a token
is picked, so the answer parses and validates by construction (or ends
with ``length`` when ``max_tokens`` cuts it). When the document is complete
only the model's stop tokens stay allowed, and the answer ends. Answers are
compact JSON (no free whitespace: see ``COMPACT``).

The library was chosen by measurement (``benchmarks/serve/grammar_libraries.py``,
SmolLM2's 49,152-token vocabulary, this CPU, three schemas): llguidance
compiles a schema in 1-6 ms and masks one step in 0.01-0.04 ms on average;
xgrammar masks faster (0.003-0.006 ms) but compiles slower and installs
triton (about 1 GB); outlines-core takes 17 ms to 6.9 s to compile and
0.2-0.5 ms a step. A decoding step of the smallest served model takes
milliseconds, so llguidance's mask is well under 1 % of it.

llguidance's own helper that applies the mask to the logits is a
``torch.compile`` kernel (a C++ toolchain and seconds of compiling on a
CPU); the mask is applied here with numpy's bit unpacking instead.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tailorml.errors import InvalidRequestError

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

# Compact JSON (", " and ": " between items, no other whitespace): with whitespace allowed
# anywhere, a model can pad an answer with blanks until max_tokens, as OpenAI's and vLLM's
# users have seen; structure is what the schema asks for, not layout.
COMPACT: JsonCompileOptions = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}


@dataclass(frozen=True)
class Grammar:
    """What an answer must match: a JSON Schema, as JSON text (hashable, cacheable)."""

    schema: str

    @classmethod
    def json_object(cls) -> Grammar:
        """Any JSON object (``response_format: {"type": "json_object"}``)."""
        return cls('{"type": "object"}')

    @classmethod
    def from_schema(cls, schema: Any, *, param: str = "response_format") -> Grammar:
        """The grammar of ``schema`` (a dict), or a 400 saying what is wrong with it."""
        import llguidance

        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "response_format.json_schema.schema must be a JSON Schema object.", param=param
            )
        text = json.dumps(schema, sort_keys=True)
        try:
            problem = llguidance.LLMatcher.validate_grammar(
                llguidance.LLMatcher.grammar_from_json_schema(text)
            )
        except Exception as exc:  # the schema's own syntax (llguidance raises ValueError)
            problem = str(exc)
        if problem:
            raise InvalidRequestError(
                f"response_format.json_schema.schema is not a schema this server can enforce: "
                f"{problem}. Use the JSON Schema subset of OpenAI's structured outputs.",
                param=param,
            )
        return cls(text)


class Matcher:
    """Where one answer is in its grammar: which tokens may come next, and whether it is done."""

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        import llguidance.torch

        self._matcher = matcher
        self._vocab = vocab_size
        self._bitmask = llguidance.torch.allocate_token_bitmask(1, vocab_size)

    def mask(self, scores: Any) -> None:
        """Set the scores (``[1, vocab]``) of every token the grammar forbids to -inf, in place."""
        import llguidance.torch
        import numpy as np
        import torch

        llguidance.torch.fill_next_token_bitmask(self._matcher, self._bitmask, 0)
        bits = np.unpackbits(self._bitmask.numpy().view(np.uint8), bitorder="little")
        allowed = torch.from_numpy(bits[: self._vocab].astype(bool)).to(scores.device)
        scores[0, : self._vocab].masked_fill_(~allowed, float("-inf"))
        scores[0, self._vocab :] = float("-inf")  # padding rows of the output layer

    def consume(self, token: int) -> None:
        if not self._matcher.consume_token(token):
            raise RuntimeError(
                f"the grammar refused a token it allowed: {self._matcher.get_error()}"
            )

    @property
    def done(self) -> bool:
        """The document is complete and nothing may follow it."""
        return bool(self._matcher.is_stopped())


class GrammarCompiler:
    """Matchers over one tokenizer; its llguidance tokenizer is built once per set of stop ids."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self._hf = hf_tokenizer
        self._lock = threading.Lock()
        self._tokenizers: dict[frozenset[int], Any] = {}

    def matcher(self, grammar: Grammar, stop_ids: frozenset[int]) -> Matcher:
        import llguidance
        import llguidance.hf

        with self._lock:
            lltok = self._tokenizers.get(stop_ids)
            if lltok is None:
                # The stop ids are the "end of answer" tokens the grammar allows once complete.
                eos = sorted(stop_ids) or None
                lltok = llguidance.hf.from_tokenizer(self._hf, eos_token=eos)
                self._tokenizers[stop_ids] = lltok
        matcher = llguidance.LLMatcher(
            lltok, llguidance.LLMatcher.grammar_from_json_schema(grammar.schema, overrides=COMPACT)
        )
        if matcher.is_error():
            raise InvalidRequestError(
                f"response_format cannot be enforced: {matcher.get_error()}",
                param="response_format",
            )
        return Matcher(matcher, lltok.vocab_size)
