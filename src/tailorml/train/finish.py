"""What a run does once its model is saved: the report, the record index, the fidelity probes.

Each step reads the same split of the records training used (the held-out
ones for the report and the probes, the trained ones for the index), so the
split is made once here (``data.split_records``) and handed to them. The
report and the index are extras: a failure is a warning and the model is
kept. The probes are a check: when the adapter on its base and the merged
weights disagree, ``FidelityError`` fails the run.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

from tailorml.errors import JobCancelledError
from tailorml.records import Record
from tailorml.train.run_spec import RunSpec
from tailorml.train.spec import TrainResult


@dataclass
class Finish:
    """The steps after training, over one split of the run's records."""

    spec: RunSpec
    result: TrainResult
    trained: list[Record]
    held: list[Record]
    lines: list[int]  # each trained record's line in the training file, from 1
    on_event: Callable[[dict], None]
    should_stop: Callable[[], bool]

    @classmethod
    def of(
        cls,
        spec: RunSpec,
        result: TrainResult,
        train_records: list[Record],
        valid_records: list[Record] | None,
        on_event: Callable[[dict], None],
        should_stop: Callable[[], bool],
    ) -> Finish:
        from tailorml.train.data import split_records
        from tailorml.train.tasks import load_task

        task = load_task(spec.train.task)
        trained, held, _ = split_records(task, spec.train, train_records, valid_records)
        line_of = {id(record): n + 1 for n, record in enumerate(train_records)}
        lines = [line_of[id(r)] for r in trained]
        return cls(spec, result, trained, held, lines, on_event, should_stop)

    def say(self, message: str, level: str = "info") -> None:
        self.on_event({"type": "message", "level": level, "message": message})

    def run(self) -> None:
        train = self.spec.train
        if train.report:
            self.report()
            if train.differential_privacy is None:
                self.index()
            else:  # the index answers with training records verbatim: no DP guarantee survives
                self.say(
                    "The training records are not indexed for explain.neighbors: it would show "
                    "them verbatim, which differential privacy rules out."
                )
        if train.fidelity_check:
            self.probes()

    def _extra(self, step: Callable[[], None], what: str) -> None:
        """Run an extra step; its failure is a warning (the model is trained and saved)."""
        try:
            step()
        except JobCancelledError:
            raise
        except Exception as exc:  # an extra's bug must not lose the model
            traceback.print_exc()
            self.say(
                f"{what} ({type(exc).__name__}); the model is kept and serves as usual.", "warning"
            )

    def report(self) -> None:
        """``report.json`` beside the model (``tailorml.eval.report``), on the held-out records."""
        self._extra(self._report, "The evaluation report could not be written")

    def _report(self) -> None:
        from tailorml.eval.report import build_report, write_report

        report = build_report(
            self.result.model_dir,
            self.spec.base,
            self.trained,
            self.held,
            training=self.result.metrics,
            say=self.say,
            should_stop=self.should_stop,
            judge=self.spec.judge,
        )
        write_report(self.result.model_dir, report)
        evaluation = report.get("evaluation") or {}
        headline = evaluation.get("headline")
        if headline:
            self.say(
                f"Evaluation report: {headline['metric']} {headline['base']:.3f} for the base, "
                f"{headline['tuned']:.3f} tuned, on {evaluation['n']} held-out records."
            )
        verdict = evaluation.get("judge")
        if verdict:
            low, high = verdict["ci95"]
            self.say(
                f"Judge: the tuned model wins {verdict['win_rate']:.2f} (95 % CI "
                f"{low:.2f}-{high:.2f}) of {verdict['n']} prompts against the base "
                f"({verdict['wins']} wins, {verdict['losses']} losses, {verdict['ties']} ties)."
            )

    def index(self) -> None:
        """The trained records indexed in the model's own representation
        (``tailorml.eval.neighbors``), for ``explain: {"neighbors": k}``."""
        self._extra(self._index, "The training records could not be indexed for explain.neighbors")

    def _index(self) -> None:
        from tailorml.eval.neighbors import build_index

        n = build_index(
            self.result.model_dir, self.trained, self.lines, should_stop=self.should_stop
        )
        self.say(f"Indexed {n} training records for explain.neighbors.")

    def probes(self) -> None:
        """The fidelity probes answered by the trained model, adapter on its base and merged
        (``tailorml.eval.fidelity``): held-out records first, then trained ones."""
        from tailorml.eval.fidelity import write_expectations

        n = write_expectations(
            self.result.model_dir, self.held + self.trained, should_stop=self.should_stop
        )
        if n and self.spec.train.method == "lora":
            self.say(
                f"Fidelity probes: the adapter on its base and the merged model agree on {n} probes."
            )
        elif n:
            self.say(f"Fidelity probes: {n} answers of the trained model stored.")
