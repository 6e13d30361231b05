"""A training run in its own process (``python -m tailorml.train.run``): the spec file, the
events, the exit codes, SIGTERM, a parent that dies; on the tiny encoder, so each run is seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tailorml import errors
from tailorml.errors import FileFormatError, InvalidRequestError, TailorError
from tailorml.eval.report import read_report
from tailorml.records import record_to_dict
from tailorml.train.run import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_OK,
    EventSink,
    StopFlag,
    error_event,
    error_from_event,
    result_from_event,
    run_training,
)
from tailorml.train.run_spec import RunSpec, read_run_spec, to_json_value, write_run_spec
from tailorml.train.spec import TrainResult
from tests.conftest import REPO

from .conftest import spam_records
from .test_loop import METRIC_KEYS, cls_spec


def _jsonl(path: Path, records) -> Path:  # type: ignore[no-untyped-def]
    path.write_text("".join(json.dumps(record_to_dict(r)) + "\n" for r in records))
    return path


def run_spec(tmp_path: Path, base, **train) -> RunSpec:  # type: ignore[no-untyped-def]
    """24 training and 8 validation e-mails: 3 steps an epoch at batch size 8."""
    return RunSpec(
        train=cls_spec(**{"n_epochs": 1, "checkpoint_every": 1, **train}),
        base=base,
        training_file=_jsonl(tmp_path / "train.jsonl", spam_records("train", 24)),
        validation_file=_jsonl(tmp_path / "valid.jsonl", spam_records("dev", 8)),
        task="classification",
        out_dir=tmp_path / "out",
    )


def _env() -> dict[str, str]:
    # This checkout's sources, whatever the working directory of the child.
    path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def start(spec: RunSpec, tmp_path: Path) -> subprocess.Popen[bytes]:
    """``python -m tailorml.train.run`` on ``spec``, events on stdout, the rest in run.log."""
    path = write_run_spec(spec, tmp_path / "run_spec.json")
    return subprocess.Popen(
        [sys.executable, "-m", "tailorml.train.run", str(path)],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "run.log", "wb"),  # noqa: SIM115
        env=_env(),
    )


def finish(proc: subprocess.Popen[bytes], tmp_path: Path) -> tuple[int, list[dict]]:
    assert proc.stdout is not None
    lines = proc.stdout.read().splitlines()
    code = proc.wait(timeout=120)
    # Nothing but events on the events stream, even though the libraries print.
    return code, [json.loads(line) for line in lines]


def test_the_spec_survives_a_json_round_trip(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = run_spec(tmp_path, tiny_encoder, lora_target_modules=["query", "value"], max_length=64)
    spec.resume_from = tmp_path / "out" / "checkpoints" / "step-3"
    again = read_run_spec(write_run_spec(spec, tmp_path / "spec.json"))
    assert again == spec
    assert isinstance(again.base.path, Path) and isinstance(again.base.tasks, tuple)
    assert isinstance(again.train.learning_rate, float)
    result = TrainResult(tmp_path / "model", {"train_loss": 0.5, "step": 3}, 120, 3, ["ham"])
    assert result_from_event({"type": "result", **to_json_value(result)}) == result


def test_a_bad_spec_names_every_problem_at_once(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = to_json_value(run_spec(tmp_path, tiny_encoder))
    data["train"]["n_epochs"] = "2"
    data["train"]["method"] = "half"
    data["train"]["learning_rate"] = True
    data["base"]["tasks"] = "classification"
    del data["out_dir"]
    data["gpus"] = 8
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidRequestError) as info:
        read_run_spec(path)
    message = info.value.message
    for problem in (
        "train.n_epochs must be an integer, got '2'",
        "train.method must be one of 'full', 'lora', got 'half'",
        "train.learning_rate must be a number, got True",
        "base.tasks must be a list",
        "out_dir is missing",
        "gpus is not a field of RunSpec",
    ):
        assert problem in message, message
    path.write_text("{not json")
    with pytest.raises(InvalidRequestError, match="is not JSON"):
        read_run_spec(path)
    with pytest.raises(InvalidRequestError, match="does not exist"):
        read_run_spec(tmp_path / "none.json")


@pytest.mark.parametrize(
    "cls",
    [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, TailorError)],
)
def test_every_error_class_crosses_the_process_boundary(cls) -> None:  # type: ignore[no-untyped-def]
    exc = cls("Something is wrong; fix it.", param="training_file")
    exc.code = "a_code"
    again = error_from_event(json.loads(json.dumps(error_event(exc))))
    assert type(again) is cls
    assert (again.code, again.message, again.param) == ("a_code", exc.message, "training_file")


def test_a_file_format_error_keeps_its_listed_lines() -> None:
    exc = FileFormatError("t.jsonl has 1 invalid line(s):", problems=[(3, "no label")])
    again = error_from_event(error_event(exc))
    assert again.message == exc.message and "line 3: no label" in again.message


def test_an_error_class_from_elsewhere_crosses_as_its_tailorml_base() -> None:
    class RecipeProblem(InvalidRequestError):
        default_code = "bad_recipe"

    again = error_from_event(error_event(RecipeProblem("No such step.", param="recipe")))
    assert type(again) is InvalidRequestError
    assert (again.code, again.message, again.param) == ("bad_recipe", "No such step.", "recipe")


def test_the_stop_flag(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sink = EventSink(open(tmp_path / "events", "wb"))  # noqa: SIM115
    stop = StopFlag(os.getppid(), sink)
    assert not stop()
    stop.request(signal.SIGTERM, None)
    assert stop()
    assert StopFlag(os.getpid(), sink)(), "a parent that is not ours any more means stop"
    gone = StopFlag(os.getppid(), sink)
    sink.gone = True
    assert gone(), "nobody reads the events: stop"


def test_a_run_writes_events_checkpoints_and_the_model(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, events = finish(start(run_spec(tmp_path, tiny_encoder), tmp_path), tmp_path)
    assert code == EXIT_OK, (tmp_path / "run.log").read_text()
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message" and kinds[-1] == "result"
    assert set(kinds) == {"message", "metrics", "checkpoint", "result"}
    metrics = [e for e in events if e["type"] == "metrics"]
    assert [m["step"] for m in metrics] == [0, 1, 2, 3]
    assert all(set(m) == METRIC_KEYS for m in metrics)
    checkpoints = [e for e in events if e["type"] == "checkpoint"]
    assert [c["step"] for c in checkpoints] == [1, 2]  # every step, not the last
    for ckpt in checkpoints:
        at = events.index(ckpt)
        # After its step's metrics and the loop's own "Saved" message.
        assert events[at - 1]["message"] == f"Saved checkpoint step-{ckpt['step']}."
        assert events[at - 2] == metrics[ckpt["step"]]
        assert Path(ckpt["path"]).is_dir() and ckpt["metrics"]["step"] == ckpt["step"]
    result = result_from_event(events[-1])
    assert result.model_dir == tmp_path / "out" / "model" and result.steps == 3
    assert result.labels == ["ham", "spam"] and result.trained_tokens > 0
    assert (result.model_dir / "tailor_model.json").is_file()
    assert (result.model_dir / "model.safetensors").is_file()
    # The evaluation report, on the validation file's 8 records, before the result.
    report = read_report(result.model_dir)
    assert report is not None and report["evaluation"]["n"] == 8
    said = [e["message"] for e in events if e["type"] == "message"]
    assert any(m.startswith("Evaluation report: accuracy") for m in said)


def test_a_failed_report_keeps_the_model(tiny_encoder, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The report runs after the model is saved: its failure is a warning, not a lost run."""
    import tailorml.eval.report

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("report bug")

    monkeypatch.setattr(tailorml.eval.report, "build_report", broken)
    events: list[dict] = []
    result = run_training(
        run_spec(tmp_path, tiny_encoder), on_event=events.append, should_stop=lambda: False
    )
    assert (result.model_dir / "model.safetensors").is_file()
    assert read_report(result.model_dir) is None
    warning = [e for e in events if e.get("level") == "warning"][-1]
    assert "could not be written (RuntimeError)" in warning["message"]


def test_sigterm_stops_the_run_at_a_step_boundary(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = start(run_spec(tmp_path, tiny_encoder, n_epochs=50, checkpoint_every=1000), tmp_path)
    assert proc.stdout is not None
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["type"] == "metrics" and events[-1]["step"] >= 2:
            proc.send_signal(signal.SIGTERM)
            break
    code, rest = finish(proc, tmp_path)
    events += rest
    assert code == EXIT_CANCELLED, (tmp_path / "run.log").read_text()
    assert events[-1] == {"type": "cancelled", "message": events[-1]["message"]}
    assert "cancelled before step" in events[-1]["message"]
    steps = [e["step"] for e in events if e["type"] == "metrics"]
    assert steps == list(range(steps[-1] + 1)) and steps[-1] < 150
    assert not (tmp_path / "out" / "model").exists()


def test_a_bad_request_is_an_error_event(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = run_spec(tmp_path, tiny_encoder, task="chat")  # the encoder trains classification
    code, events = finish(start(spec, tmp_path), tmp_path)
    assert code == EXIT_ERROR, (tmp_path / "run.log").read_text()
    (event,) = events
    assert event["type"] == "error" and event["error"] == "InvalidRequestError"
    assert event["code"] == "invalid_request" and event["param"] is None
    assert "not chat" in event["message"]
    assert not (tmp_path / "out").exists()

    (tmp_path / "run_spec.json").write_text('{"train": {}}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "tailorml.train.run", str(tmp_path / "run_spec.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    code, events = finish(proc, tmp_path)
    assert code == EXIT_ERROR and events[0]["error"] == "InvalidRequestError"
    assert "base is missing" in events[0]["message"]


# A parent that starts the run, says the run's pid and waits: the test kills it.
PARENT = """
import subprocess, sys, time
run = subprocess.Popen(
    [sys.executable, "-m", "tailorml.train.run", sys.argv[1]],
    stdout=open(sys.argv[2], "wb"), stderr=open(sys.argv[3], "wb"),
)
print(run.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie no one has reaped yet is not running)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_run_dies_with_its_parent(tiny_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = write_run_spec(
        run_spec(tmp_path, tiny_encoder, n_epochs=50, checkpoint_every=1000), tmp_path / "s.json"
    )
    events = tmp_path / "events.jsonl"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(spec), str(events), str(tmp_path / "run.log")],
        stdout=subprocess.PIPE,
        env=_env(),
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    deadline = time.time() + 120
    while '"step": 1,' not in (events.read_text() if events.exists() else ""):
        assert time.time() < deadline and _alive(pid), (tmp_path / "run.log").read_text()
        time.sleep(0.05)
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while _alive(pid):
        assert time.time() < deadline, "the run outlived its parent"
        time.sleep(0.05)
    written = events.read_text()
    time.sleep(0.5)
    assert events.read_text() == written and '"type": "result"' not in written
    assert not (tmp_path / "out" / "model").exists()
