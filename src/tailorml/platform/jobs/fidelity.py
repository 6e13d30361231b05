"""Before a fine-tuned model is published: does it answer, as served, as it did in training?

Training stores its answers to a few probes (``tailorml.eval.fidelity``);
here the same probes go through the serving engine on the API's device and
dtype (``tailorml.serve.fidelity``) and the answers are compared. Any
difference fails the job with the difference shown, so a model whose chat
template, adapter loading or weights changed on the way never reaches a
tenant's callers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailorml.errors import FidelityError
from tailorml.eval.fidelity import compare_greedy, compare_probabilities, read_expectations
from tailorml.serve.fidelity import answer_probes


def check_served(
    model_dir: Path, *, device: str = "cpu", dtype: str = "auto", engine: Any = None
) -> str:
    """A one-line summary when the served model agrees with training; ``FidelityError``
    naming every probe that differs otherwise."""
    expected = read_expectations(model_dir)
    if expected is None or not expected["probes"]:
        return "Fidelity check: no probes for this task; nothing compared."
    served = answer_probes(model_dir, expected, device=device, dtype=dtype, engine=engine)
    differences = []
    for n, (probe, got) in enumerate(zip(expected["probes"], served, strict=True)):
        what = f"probe {n + 1}"
        if "probabilities" in probe:
            found = compare_probabilities(probe["probabilities"], got["probabilities"], what)
        else:
            found = compare_greedy(probe["answer"], got, what)
        if found:
            differences.append(found)
    if differences:
        raise FidelityError(
            "The model as the serving engine loads it does not answer as the trained model "
            "did, so it is not published: " + "; ".join(differences) + ". A changed chat "
            "template (the tokenizer files saved with the model), an adapter loaded onto other "
            "layers or another dtype cause this; the job's folder keeps the model for a look."
        )
    return (
        f"Fidelity check: the served model answers the {len(served)} probes as training did "
        f"({device}, dtype {dtype})."
    )
