"""Run a fine-tune's training in a child process and follow it from the worker.

The child is ``python -m tailorml.platform.jobs.train_child``: the training
run of ``tailorml.train.run`` (which documents its events, exit codes and
signals) followed by the fidelity check of the model as served. The worker writes the
``RunSpec`` into the job's folder, starts the child with the worker's own
interpreter and environment (``OMP_NUM_THREADS`` and the like pass
through), and reads the events from a pipe as they come:

- ``message`` and ``metrics`` events go into the database in batches, one
  transaction every ``FLUSH_SECONDS`` or ``FLUSH_EVENTS`` events, whichever
  comes first: a run reports after every step, and a transaction per step
  would make a fast run wait on the database;
- a ``checkpoint`` is recorded only after every event before it is
  written, so the events a resumed job shows end where its checkpoint does;
- the stop flag (cancel, a lost lease, the worker stopping) becomes SIGTERM
  to the child, then SIGKILL after ``worker_stop_grace_seconds``; the job
  then raises ``JobCancelledError`` and the worker decides between
  cancelled and handed back, as it does for a job in its own process.

A spec asking for ``processes`` N > 1 is launched under torchrun
(``python -m torch.distributed.run --standalone --nproc-per-node N -m
tailorml.platform.jobs.train_child ...``): the pipe is torchrun's stdout,
which it hands to its workers (it closes other descriptors), and only rank
0 writes events to it; torchrun forwards SIGTERM to every rank, and a
SIGKILL to torchrun takes the ranks with it (each dies with its parent).
Each rank gets ``OMP_NUM_THREADS`` = the worker's thread budget (its own
``OMP_NUM_THREADS``, else the CPU count) divided by N, at least 1. Under
torchrun the exit status is torchrun's (1 for any failed rank), so the
end event, not the status, says how the run ended.

How it ends: a ``result`` is the ``TrainResult``; an ``error`` is raised
again as the same ``TailorError`` (class, code, message, param), so the
job's error reads as it did in-process; anything else (a crash, a kill
nobody here asked for) is a ``TrainerProcessError``, whose text reaches
only the worker log, with the end of the child's output (``trainer.log``
in the job's folder, kept for the operator).
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import tailorml
from tailorml.errors import JobCancelledError
from tailorml.platform.jobs.context import JobContext
from tailorml.train.run import (
    EXIT_CANCELLED,
    EXIT_OK,
    error_from_event,
    result_from_event,
)
from tailorml.train.run_spec import RunSpec, write_run_spec
from tailorml.train.spec import TrainResult

log = logging.getLogger("tailorml.worker")

FLUSH_SECONDS = 0.5
FLUSH_EVENTS = 64
POLL_SECONDS = 0.1  # how often the stop flag is looked at while no event comes
LOG_TAIL_CHARS = 4000


CHILD_MODULE = "tailorml.platform.jobs.train_child"
# One machine, its own rendezvous on a free port; the rest of the command line is ours.
TORCHRUN = ["-m", "torch.distributed.run", "--standalone"]


class TrainerProcessError(RuntimeError):
    """The training process crashed or ended without an answer; the worker log has its output."""


def run_trainer(ctx: JobContext, spec: RunSpec) -> TrainResult:
    """Train ``spec`` in a child process, with its events and checkpoints stored for the job."""
    work = ctx.work_dir
    spec_path = write_run_spec(spec, work / "run_spec.json")
    processes = spec.train.processes
    read_fd, write_fd = os.pipe()
    try:
        with open(work / "trainer.log", "ab") as output:
            child_args = [
                str(spec_path),
                "--events-fd",
                "1" if processes > 1 else str(write_fd),
                "--parent-pid",
                str(os.getpid()),
                "--serve-device",
                ctx.settings.serve_device,
                "--serve-dtype",
                ctx.settings.serve_dtype,
            ]
            launcher = [sys.executable]
            if processes > 1:
                launcher += [*TORCHRUN, f"--nproc-per-node={processes}"]
            child = subprocess.Popen(
                [*launcher, "-m", CHILD_MODULE, *child_args],
                env=_child_env(processes),
                stdin=subprocess.DEVNULL,
                stdout=write_fd if processes > 1 else output,
                stderr=output,
                pass_fds=() if processes > 1 else (write_fd,),
            )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the child holds its copy; end of file comes when it exits
    follower = _Follower(ctx, child)
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as events:
            follower.follow(events.fileno())
        while child.poll() is None:  # the events are over; the interpreter is shutting down
            follower.watch_stop()
            time.sleep(POLL_SECONDS)
    except BaseException:
        child.kill()  # the worker itself failed (a database error): leave no trainer behind
        child.wait()
        raise
    return follower.outcome(work / "trainer.log")


def _child_env(processes: int = 1) -> dict[str, str]:
    """The worker's environment, with the folder this ``tailorml`` came from first on the path
    (and, for several processes, each one's share of the threads).

    Why: the child must run the code the worker planned with. A relative
    ``PYTHONPATH`` entry, or an interpreter whose installed ``tailorml`` is
    another checkout, would otherwise load a different copy without a word.
    An installed package needs nothing: the child finds it the same way.
    """
    env = dict(os.environ)
    root = str(Path(tailorml.__file__).resolve().parents[1])
    installed = {str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("purelib", "platlib")}
    if root not in installed:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    if processes > 1:
        given = env.get("OMP_NUM_THREADS", "")
        budget = int(given) if given.isdigit() and int(given) > 0 else os.cpu_count() or 1
        env["OMP_NUM_THREADS"] = str(max(1, budget // processes))
    return env


class _Follower:
    """Reads the child's events, batches them into the database, and stops the child on request."""

    def __init__(self, ctx: JobContext, child: subprocess.Popen[bytes]) -> None:
        self.ctx = ctx
        self.child = child
        self.pending: list[dict[str, Any]] = []
        self.oldest = 0.0  # when the oldest pending event came
        self.stop_sent: float | None = None
        self.end: dict[str, Any] | None = None  # the result, error, cancelled or crash event

    def follow(self, fd: int) -> None:
        """Until the child closes the pipe (it exited): handle events, flush, watch the stop flag."""
        partial = b""
        while True:
            self.watch_stop()
            ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                *lines, partial = (partial + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        self._handle(line)
            elif self.child.poll() is not None:
                break  # exited, and a grandchild still holds the pipe: nothing more will come
            if self.pending and (
                len(self.pending) >= FLUSH_EVENTS or time.monotonic() - self.oldest >= FLUSH_SECONDS
            ):
                self._flush()
        if partial.strip():
            self._handle(partial)
        self._flush()

    def watch_stop(self) -> None:
        if self.child.poll() is not None or not self.ctx.should_stop():
            return
        now = time.monotonic()
        if self.stop_sent is None:
            self.stop_sent = now
            self.child.send_signal(signal.SIGTERM)
        elif now - self.stop_sent >= self.ctx.settings.worker_stop_grace_seconds:
            log.warning(
                "the trainer of job %s did not stop within %.1f s of SIGTERM; killing it",
                self.ctx.job_id,
                self.ctx.settings.worker_stop_grace_seconds,
            )
            self.child.kill()

    def _handle(self, line: bytes) -> None:
        try:
            event = json.loads(line)
            kind = event["type"]
        except (ValueError, TypeError, KeyError):
            log.warning("job %s: not an event from the trainer: %.200r", self.ctx.job_id, line)
            return
        if kind in ("message", "metrics"):
            if not self.pending:
                self.oldest = time.monotonic()
            self.pending.append(event)
        elif kind == "checkpoint":
            self._flush()
            self.ctx.record_checkpoint(int(event["step"]), Path(event["path"]), event["metrics"])
        else:
            self.end = event

    def _flush(self) -> None:
        if self.pending:
            self.ctx.emit_many(self.pending)
            self.pending = []

    def outcome(self, output: Path) -> TrainResult:
        """The result, or the exception that says how the run ended otherwise."""
        code, end = self.child.returncode, self.end or {}
        if end.get("type") == "result":
            if code != EXIT_OK:  # the model was written before the result was sent: it stands
                log.warning(
                    "job %s: the trainer ended with %s after its result",
                    self.ctx.job_id,
                    _status(code),
                )
            return result_from_event(end)
        if end.get("type") == "error":
            raise error_from_event(end)
        stopped = code in (EXIT_CANCELLED, -signal.SIGKILL) or end.get("type") == "cancelled"
        if self.stop_sent is not None and stopped:
            raise JobCancelledError(str(end.get("message") or "Training was cancelled."))
        what = f" on {end['exception']}" if end.get("type") == "crash" else ""
        if code == EXIT_CANCELLED or end.get("type") == "cancelled":
            what = " stopped by a signal this worker did not send"
        raise TrainerProcessError(
            f"the training process of job {self.ctx.job_id} ended{what} with {_status(code)}; "
            f"the end of {output}:\n{_tail(output)}"
        )


def _status(code: int) -> str:
    if code >= 0:
        return f"exit status {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - LOG_TAIL_CHARS))
            return fh.read().decode(errors="replace")
    except OSError as exc:
        return f"(not readable: {exc})"
