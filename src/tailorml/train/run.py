"""One training run in its own process: ``python -m tailorml.train.run SPEC.json``.

Why a process: a training run holds gigabytes, may crash in native code and
must stop when told; in a process of its own it does all three without
taking the worker (its heartbeats, its database connections) down with it,
and the worker stays a light process that follows it.

The run reads the ``RunSpec`` (``tailorml.train.run_spec``), the records
(``tailorml.records.read_records``), calls ``train()`` and writes one JSON
object per line to the events file descriptor (``--events-fd``, stdout by
default; stdout is then pointed at stderr, so whatever torch or
transformers print cannot mix into the events):

- ``message`` and ``metrics``: exactly as ``train()`` emits them;
- ``checkpoint`` (``step``, ``path``, ``metrics``): after each checkpoint is on disk;
- after training, messages of the evaluation report (``tailorml.eval.report``),
  written as ``report.json`` in the model folder before the result;
- at the end, one of ``result`` (the ``TrainResult`` fields, paths as
  strings; exit 0), ``error`` (a ``TailorError``: ``error`` its class,
  ``code``, ``message``, ``param``; exit 2), ``cancelled`` (exit 3) or
  ``crash`` (the exception's type; exit 1, the traceback on stderr).

Signals: SIGTERM or SIGINT asks the run to stop; ``train()`` sees it before
the next step or validation batch and the process exits "cancelled",
keeping its checkpoints. SIGUSR1 is reserved for pausing a run and ignored
until then. The run also stops when its parent dies (the kernel kills it on
Linux, ``PR_SET_PDEATHSIG``; elsewhere the stop check notices), so a trainer
left by a killed worker never writes on in a job folder that another worker
resumes.

Under torchrun (``python -m torch.distributed.run --nproc-per-node N -m
tailorml.train.run SPEC.json``) every rank runs this module and trains its
share (``tailorml.train.distributed``); only rank 0 writes events, to
stdout: torchrun passes its own stdout to the ranks but closes other file
descriptors, so ``--events-fd`` must stay 1 there. torchrun forwards
SIGTERM to every rank, and the ranks agree on stopping before the next
step, so the group ends "cancelled" together. A rank's parent is then
torchrun; ``--parent-pid`` names the process whose death stops the run
(the platform's worker), checked while torchrun lives.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

from tailorml import errors
from tailorml.errors import JobCancelledError, TailorError
from tailorml.records import read_records
from tailorml.train import distributed
from tailorml.train.checkpoints import CheckpointInfo
from tailorml.train.finish import Finish
from tailorml.train.run_spec import RunSpec, from_json_value, read_run_spec, to_json_value
from tailorml.train.spec import TrainResult

__all__ = ["RunSpec", "error_from_event", "main", "result_from_event", "run_training"]

EXIT_OK = 0
EXIT_CRASH = 1  # what Python itself answers for an uncaught exception
EXIT_ERROR = 2  # a TailorError: the request or the data is wrong, the event says how
EXIT_CANCELLED = 3
EXIT_USAGE = 64  # bad command line (BSD's EX_USAGE), kept apart from EXIT_ERROR

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


AfterTraining = Callable[[TrainResult, Callable[[str], None]], None]


def run_training(
    spec: RunSpec,
    *,
    on_event: Callable[[dict], None],
    should_stop: Callable[[], bool],
    after_training: AfterTraining | None = None,
) -> TrainResult:
    """Read the records and train as ``spec`` says; checkpoints are reported as events.

    After the model is saved: its evaluation report and training-record index, the fidelity
    probes (``tailorml.eval.fidelity``; a disagreement raises ``FidelityError``), then
    ``after_training(result, say)``: the caller's own checks before the result is final (the
    platform checks the model as the serving engine loads it).
    """
    from tailorml.train.loop import train

    train_records = read_records(spec.training_file, spec.task)
    valid_records = None
    if spec.validation_file is not None:
        valid_records = read_records(spec.validation_file, spec.task)

    def on_checkpoint(info: CheckpointInfo) -> None:
        on_event({"type": "checkpoint", **to_json_value(info)})

    result = train(
        spec.train,
        spec.base,
        train_records,
        valid_records,
        spec.out_dir,
        on_event=on_event,
        on_checkpoint=on_checkpoint,
        should_stop=should_stop,
        resume_from=spec.resume_from,
    )
    if not distributed.is_main():  # rank 0 reports and checks the model it wrote
        return result
    Finish.of(spec, result, train_records, valid_records, on_event, should_stop).run()
    if after_training is not None:
        after_training(
            result,
            lambda message: on_event({"type": "message", "level": "info", "message": message}),
        )
    return result


def error_event(exc: TailorError) -> dict[str, Any]:
    """The ``error`` event of ``exc``, naming the nearest class of ``tailorml.errors``."""
    name = next(
        c.__name__
        for c in type(exc).__mro__
        if c.__module__ == errors.__name__ and issubclass(c, TailorError)
    )
    return {
        "type": "error",
        "error": name,
        "code": exc.code,
        "message": exc.message,
        "param": exc.param,
    }


def error_from_event(event: dict[str, Any]) -> TailorError:
    """The ``TailorError`` an ``error`` event stands for: same class, code, message and param."""
    cls = getattr(errors, str(event.get("error")), None)
    if not (isinstance(cls, type) and issubclass(cls, TailorError)):
        cls = TailorError
    # Every class of the tree takes (message, param=...); the message is already complete
    # (FileFormatError's listed lines included), and the code is set as the child had it.
    exc = cls(str(event.get("message", "")), param=event.get("param"))
    exc.code = str(event.get("code") or exc.code)
    return exc


def result_from_event(event: dict[str, Any]) -> TrainResult:
    """The ``TrainResult`` of a ``result`` event."""
    fields = {k: v for k, v in event.items() if k != "type"}
    return from_json_value(TrainResult, fields, "The result event")


class EventSink:
    """Writes events as JSON lines to a file descriptor, flushed one by one.

    A reader that went away (a broken pipe) is remembered rather than
    raised: nobody is listening any more, so the run should stop, and the
    stop check reads ``gone``.
    """

    def __init__(self, stream: IO[bytes] | None) -> None:
        self.stream = stream
        self.gone = False

    @classmethod
    def discard(cls) -> EventSink:
        """The sink of a rank other than 0: writes nothing; fd 1 goes to stderr as in ``open``."""
        os.dup2(2, 1)
        return cls(None)

    @classmethod
    def open(cls, fd: int) -> EventSink:
        if fd == 1:
            # Keep the real stdout for events; fd 1 (print, C libraries) now goes to stderr.
            fd = os.dup(1)
            os.dup2(2, 1)
        os.set_inheritable(fd, False)  # a process the run starts does not hold the pipe open
        return cls(os.fdopen(fd, "wb"))

    def write(self, event: dict[str, Any]) -> None:
        if self.gone or self.stream is None:
            return
        try:
            self.stream.write(json.dumps(to_json_value(event)).encode() + b"\n")
            self.stream.flush()
        except BrokenPipeError:
            self.gone = True


class StopFlag:
    """``should_stop`` of a run: a stop signal came, the parent is gone, or nobody reads events.

    ``owner``: under torchrun, the process that started torchrun (the parent's parent); the
    run stops when it is gone too.
    """

    def __init__(self, parent_pid: int, sink: EventSink, owner: int | None = None) -> None:
        self.parent_pid = parent_pid
        self.sink = sink
        self.owner = owner
        self.requested = False

    def request(self, signum: int, frame: object) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return (
            self.requested
            or self.sink.gone
            or os.getppid() != self.parent_pid
            or (self.owner is not None and not _alive(self.owner))
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this process when its parent dies.

    Checkpoints are written atomically, so a kill at any moment leaves the
    job folder resumable. The kernel ties this to the parent *thread* that
    started us: the worker starts and waits for the run in the same thread.
    Elsewhere (or without a C library) ``StopFlag`` notices at the next step.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m tailorml.train.run",
        description="Train as a RunSpec JSON file says, writing events as JSON lines.",
    )
    parser.add_argument("spec", help="the RunSpec JSON file (tailorml.train.run_spec)")
    parser.add_argument(
        "--events-fd",
        type=int,
        default=1,
        help="file descriptor the events go to, one JSON object a line (default: stdout)",
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="stop when this process is no longer the parent (default: the parent at start)",
    )
    return parser


def main(argv: list[str] | None = None, *, after_training: AfterTraining | None = None) -> int:
    """Run the spec; return the exit status (``EXIT_*``)."""
    args = _parser().parse_args(argv)
    parent, owner = args.parent_pid, None
    if distributed.launched_by_torchrun():
        if args.events_fd != 1:
            _parser().error(
                "under torchrun the events go to stdout: torchrun closes other file descriptors "
                "in its workers; leave --events-fd at 1"
            )
        parent, owner = os.getppid(), args.parent_pid  # our parent is torchrun
    sink = EventSink.open(args.events_fd) if distributed.is_main() else EventSink.discard()
    stop = StopFlag(parent if parent is not None else os.getppid(), sink, owner)
    die_with_parent()
    signal.signal(signal.SIGTERM, stop.request)
    signal.signal(signal.SIGINT, stop.request)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # reserved: pause
    try:
        if stop():  # the parent died before the kernel was told to kill us with it
            raise JobCancelledError("The run was stopped before it started: its parent is gone.")
        spec = read_run_spec(args.spec)
        result = run_training(
            spec, on_event=sink.write, should_stop=stop, after_training=after_training
        )
    except JobCancelledError as exc:
        sink.write({"type": "cancelled", "message": exc.message})
        return EXIT_CANCELLED
    except TailorError as exc:
        sink.write(error_event(exc))
        return EXIT_ERROR
    except Exception as exc:  # process boundary: the traceback for the operator, the type for all
        traceback.print_exc()
        sink.write({"type": "crash", "exception": type(exc).__name__})
        return EXIT_CRASH
    sink.write({"type": "result", **to_json_value(result)})
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
