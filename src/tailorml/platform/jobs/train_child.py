"""The fine-tune's child process: ``python -m tailorml.platform.jobs.train_child SPEC ...``.

It is ``tailorml.train.run`` (same arguments, events, exit codes and
signals) with two steps added before the result, both through the serving
engine as the API loads the model: the fidelity check
(``fidelity.check_served``) and the report's explanations of a few samples
(``report_explain``). It lives
in the platform because it uses two libraries, training and serving, which
do not import each other; the child has torch loaded already, so the check
costs the model's load and a few short answers, not another process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial

from tailorml.platform.jobs.fidelity import check_served
from tailorml.platform.jobs.report_explain import add_explanations
from tailorml.train import run
from tailorml.train.spec import TrainResult


def _after(device: str, dtype: str, result: TrainResult, say: Callable[[str], None]) -> None:
    from tailorml.serve.engine import Engine

    engine = Engine(max_loaded=1, device=device, dtype=dtype)
    say(check_served(result.model_dir, device=device, dtype=dtype, engine=engine))
    say(add_explanations(result.model_dir, engine))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--serve-device", default="cpu")
    parser.add_argument("--serve-dtype", default="auto")
    ours, rest = parser.parse_known_args(argv)
    return run.main(rest, after_training=partial(_after, ours.serve_device, ours.serve_dtype))


if __name__ == "__main__":
    sys.exit(main())
