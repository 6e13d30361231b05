"""Which grammar library constrains decoding fastest on this CPU: llguidance, xgrammar, outlines-core.

For ``response_format`` ``json_schema`` the engine masks, at every decoding
step, the tokens that cannot continue a valid document. What that costs is
the grammar's compile time (once per schema, cached) and the mask time per
token (every step of every constrained row). This measures both on the
SmolLM2 vocabulary (49,152 tokens, the tiny test decoder's tokenizer) for
three schemas, walking each library through the tokens of a valid answer.

    .venv/bin/python benchmarks/serve/grammar_libraries.py

xgrammar and outlines-core are not project dependencies: install them into
the venv to run this (``pip install xgrammar==0.2.9 outlines-core==0.2.14``).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SCHEMAS: dict[str, tuple[dict[str, Any], Any]] = {
    "flat": (
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        {"name": "Ada Lovelace", "age": 36},
    ),
    "nested": (
        {
            "type": "object",
            "properties": {
                "label": {"enum": ["spam", "ham"]},
                "score": {"type": "number"},
                "reasons": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
                "sender": {
                    "type": "object",
                    "properties": {"domain": {"type": "string"}, "known": {"type": "boolean"}},
                    "required": ["domain", "known"],
                },
            },
            "required": ["label", "score", "reasons", "sender"],
        },
        {
            "label": "spam",
            "score": 0.97,
            "reasons": ["asks for a bank transfer", "unknown sender"],
            "sender": {"domain": "example.com", "known": False},
        },
    ),
    "any_json": ({}, {"order": 1234, "items": [{"sku": "A-1", "qty": 2}], "note": "leave at door"}),
}


def llguidance_run(
    tokenizer: Any, schema: dict[str, Any], ids: list[int]
) -> tuple[float, list[float]]:
    import llguidance
    import llguidance.hf
    import llguidance.torch

    lltok = llguidance.hf.from_tokenizer(tokenizer)
    start = time.perf_counter()
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema))
    matcher = llguidance.LLMatcher(lltok, grammar)
    bitmask = llguidance.torch.allocate_token_bitmask(1, lltok.vocab_size)
    llguidance.torch.fill_next_token_bitmask(matcher, bitmask, 0)
    compile_s = time.perf_counter() - start
    steps = []
    for token in ids:
        assert matcher.consume_token(token), matcher.get_error()
        t = time.perf_counter()
        llguidance.torch.fill_next_token_bitmask(matcher, bitmask, 0)
        steps.append(time.perf_counter() - t)
    return compile_s, steps


def xgrammar_run(
    tokenizer: Any, schema: dict[str, Any], ids: list[int]
) -> tuple[float, list[float]]:
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer))
    compiler = xgr.GrammarCompiler(info, cache_enabled=False)
    start = time.perf_counter()
    compiled = (
        compiler.compile_json_schema(json.dumps(schema))
        if schema
        else compiler.compile_builtin_json_grammar()
    )
    matcher = xgr.GrammarMatcher(compiled)
    bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
    matcher.fill_next_token_bitmask(bitmask)
    compile_s = time.perf_counter() - start
    steps = []
    for token in ids:
        assert matcher.accept_token(token)
        t = time.perf_counter()
        matcher.fill_next_token_bitmask(bitmask)
        steps.append(time.perf_counter() - t)
    return compile_s, steps


def outlines_run(
    tokenizer: Any, schema: dict[str, Any], ids: list[int]
) -> tuple[float, list[float]]:
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.json_schema import build_regex_from_schema

    decoder = _byte_decoder()
    tokens: dict[bytes, list[int]] = {}
    eos = tokenizer.eos_token_id
    for text, i in tokenizer.get_vocab().items():
        if i == eos or i in tokenizer.all_special_ids:
            continue
        tokens.setdefault(bytes(decoder[c] for c in text), []).append(i)
    vocabulary = Vocabulary(eos, tokens)
    # outlines' generic "any JSON" regex is unbounded; an object of string/number values
    # stands in for json_object, as outlines' own docs suggest.
    target = schema or {"type": "object", "additionalProperties": True}
    start = time.perf_counter()
    regex = build_regex_from_schema(json.dumps(target))
    index = Index(regex, vocabulary)
    guide = Guide(index)
    guide.get_tokens()
    compile_s = time.perf_counter() - start
    steps = []
    for token in ids:
        guide.advance(token)
        t = time.perf_counter()
        guide.get_tokens()
        steps.append(time.perf_counter() - t)
    return compile_s, steps


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-to-unicode table, inverted (byte-level BPE token strings to bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def main() -> None:
    from transformers import AutoTokenizer

    from tailorml.models.tiny import build_tiny_model

    folder = build_tiny_model("decoder", Path(tempfile.mkdtemp()) / "decoder")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    runs = {"llguidance": llguidance_run, "xgrammar": xgrammar_run, "outlines-core": outlines_run}
    print(f"load {os.getloadavg()[0]:.2f}; vocabulary {len(tokenizer)} tokens")
    print("| schema | library | compile ms | mask ms per token (mean / p99) |")
    print("|---|---|---|---|")
    for name, (schema, answer) in SCHEMAS.items():
        ids = tokenizer.encode(json.dumps(answer), add_special_tokens=False)
        for library, run in runs.items():
            try:
                compile_s, steps = run(tokenizer, schema, ids)
            except Exception as exc:  # a library that cannot do this schema says so
                print(f"| {name} | {library} | failed: {type(exc).__name__}: {exc} | |")
                continue
            p99 = sorted(steps)[int(0.99 * (len(steps) - 1))]
            print(f"| {name} | {library} | {compile_s * 1e3:.1f} | "
                  f"{statistics.mean(steps) * 1e3:.3f} / {p99 * 1e3:.3f} |")  # fmt: skip
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
