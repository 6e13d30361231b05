"""The evaluation report's explanations: why the served model answers a few held-out samples.

For a sample of the report's validation records (its side-by-side
samples), the serving engine answers as a caller would get it: a
classifier's per-token integrated-gradients attributions
(``explain: true``), and for any model the training records nearest the
input in the model's own representation (``explain.neighbors``). Added to
``report.json`` after training, in the fine-tune's child process
(``train_child``), which has both libraries at hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailorml.errors import TailorError
from tailorml.eval.report import read_report, write_report
from tailorml.serve.models import ModelRef

EXPLAINED_SAMPLES = 3
NEIGHBORS = 3


def add_explanations(model_dir: Path, engine: Any) -> str:
    """Explain up to ``EXPLAINED_SAMPLES`` of the report's samples; a one-line summary."""
    report = read_report(model_dir)
    if report is None or not report.get("samples"):
        return "Report explanations: no report samples to explain."
    ref = ModelRef.from_folder("report-explain", Path(model_dir))
    inputs = [s["input"] for s in report["samples"][:EXPLAINED_SAMPLES]]
    explanations: list[dict[str, Any]] = [{"input": text} for text in inputs]
    try:
        if report["task"] == "classification":
            answers, _ = engine.classify(ref, inputs, explain=True, truncate=True)
            for item, answer in zip(explanations, answers, strict=True):
                ex = answer["explanation"]
                item |= {
                    "label": answer["label"],
                    "score": answer["score"],
                    "tokens": ex["tokens"],
                    "attributions": ex["attributions"],
                    "convergence_delta": ex["convergence_delta"],
                }
        found, _ = engine.neighbors(ref, inputs, NEIGHBORS, truncate=True)
        for item, near in zip(explanations, found, strict=True):
            item["neighbors"] = near
    except TailorError as exc:  # no index (a task without one): the report stays as it was
        return f"Report explanations: not added ({exc.message})"
    finally:
        engine.unload(ref.key)
    report["explanations"] = explanations
    write_report(model_dir, report)
    return (
        f"Report explanations: {len(explanations)} held-out samples explained by the served model."
    )
