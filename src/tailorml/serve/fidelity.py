"""The probes of a fidelity check, answered by the model as the serving engine loads it.

Training stores its own answers to a few probes with the model
(``fidelity.json``, written by ``tailorml.eval.fidelity``); this module asks
the same probes through a real ``Engine``, on the device and in the dtype
the API serves with, so whatever differs between training and serving
(the chat template the engine renders with, the adapter loading, the
dtype) shows. The platform compares the two before it publishes a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailorml.serve.engine import Engine
from tailorml.serve.models import ModelRef


def answer_probes(
    model_dir: Path,
    expected: dict[str, Any],
    *,
    device: str = "cpu",
    dtype: str = "auto",
    engine: Engine | None = None,
) -> list[dict[str, Any]]:
    """The served answer to each probe of ``expected`` (``fidelity.json``'s content): a
    greedy answer's ``tokens`` and ``logprobs``, or a classifier's ``probabilities``.

    ``engine``: the engine to ask (one of its own on ``device`` and ``dtype`` otherwise).
    """
    engine = engine or Engine(max_loaded=1, device=device, dtype=dtype)
    ref = ModelRef.from_folder("fidelity-check", Path(model_dir))
    new_tokens = int(expected.get("new_tokens", 16))
    probes = expected["probes"]
    try:
        if expected["task"] == "classification":
            results, _ = engine.classify(ref, [p["text"] for p in probes])
            return [{"probabilities": r["scores"]} for r in results]
        answers = []
        options: dict[str, Any] = {"temperature": 0.0, "max_tokens": new_tokens, "logprobs": 0}
        for probe in probes:
            if "messages" in probe:
                out = engine.chat(ref, probe["messages"], **options)
            else:
                out = engine.complete(ref, probe["prompt"], **options)
            entries = out.choices[0].logprobs or []
            answers.append(
                {
                    "tokens": [e["token"] for e in entries],
                    "logprobs": [e["logprob"] for e in entries],
                }
            )
        return answers
    finally:
        engine.unload(ref.key)
