"""The worker process: claims jobs, keeps their lease alive, runs them, records the outcome.

``tailor worker`` runs one; ``tailor serve`` starts ``TAILOR_WORKERS`` of
them beside the API. Several workers on several machines may share one
PostgreSQL database. A heartbeat thread renews the lease and turns a
cancellation request (or a lost lease) into the stop flag the job polls, so
cancelling stops training within a couple of heartbeats.

SIGTERM (``request_stop``) stops claiming and asks the running job to stop at
once; a job that has not stopped ``worker_stop_grace_seconds`` later (a step
blocked in I/O that never looks at the stop flag) is handed back to the
queue and the process exits, so a stop is bounded. The job is never marked
failed for it: another worker resumes it from its last checkpoint. A
fine-tune trains in a child process (``trainer_process``): the stop flag
reaches it as SIGTERM, and it dies with the worker if the worker dies.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import traceback
import uuid
from typing import Any

from tailorml import registry
from tailorml.errors import JobCancelledError, TailorError
from tailorml.platform.db.engine import make_engine, make_sessionmaker
from tailorml.platform.jobs import queue
from tailorml.platform.jobs.context import JobContext
from tailorml.platform.scrub import scrub
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage
from tailorml.platform.usage import JobMeter

log = logging.getLogger("tailorml.worker")

# The exit status of a worker that left a job it could not stop within the grace period.
EXIT_STOP_GRACE_EXPIRED = 75

# What a job's error may hold: a message this long says what went wrong, and
# a library error quoting a whole record or file must not bloat every read.
MAX_ERROR_CHARS = 2000


def default_worker_id() -> str:
    """``host-pid-random``, cut to fit ``jobs.lease_owner`` (64 characters) on long host names."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _load_job_kinds() -> None:
    # Registration happens on import; job kinds live beside this module.
    from tailorml.platform.jobs import batch, dataset, fine_tune  # noqa: F401


class Worker:
    def __init__(self, settings: Settings, *, worker_id: str | None = None):
        self.settings = settings
        self.worker_id = (worker_id or default_worker_id())[:64]
        self.engine = make_engine(settings.resolved_database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.storage = LocalStorage(settings.data_dir)
        self.shutdown = threading.Event()
        self._current: tuple[queue.Claim, JobContext] | None = None
        self._stop_timer: threading.Timer | None = None
        parent = os.environ.get("TAILOR_PARENT_PID")
        self.parent_pid = int(parent) if parent else None
        _load_job_kinds()

    def orphaned(self) -> bool:
        """True when the `tailor serve` that started this worker is gone."""
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    def request_stop(self) -> None:
        """Stop claiming, ask the running job to stop, and exit after the grace period if it has
        not (``leave``). Safe to call from a signal handler; a second call changes nothing."""
        if self.shutdown.is_set():
            return
        self.shutdown.set()
        current = self._current
        if current is not None:
            current[1].stop.set()
        grace = self.settings.worker_stop_grace_seconds
        self._stop_timer = threading.Timer(grace, self.leave, kwargs={"grace": grace})
        self._stop_timer.daemon = True
        self._stop_timer.start()

    def leave(self, *, grace: float) -> None:
        """The grace period is over: hand the job back to the queue and end the process now."""
        current = self._current
        if current is not None:
            job_id = current[0].job_id
            log.warning(
                "job %s did not stop within %.1f s of SIGTERM (a step blocked?); handing it back "
                "to the queue and exiting",
                job_id,
                grace,
            )
            try:
                queue.release(self.sessions, job_id=job_id, worker_id=self.worker_id)
            except Exception:  # process boundary: exit anyway; the lease expires on its own
                log.exception("could not hand job %s back; its lease will expire", job_id)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_STOP_GRACE_EXPIRED)

    def run(self, *, max_jobs: int | None = None) -> int:
        """Work until ``shutdown`` is set (or ``max_jobs`` are done); return the jobs run."""
        done = 0
        log.info("worker %s started", self.worker_id)
        while not self.shutdown.is_set() and (max_jobs is None or done < max_jobs):
            if self.orphaned():
                log.warning("the serve process that started this worker is gone; stopping")
                break
            claimed = queue.claim(
                self.sessions, worker_id=self.worker_id, lease_seconds=self.settings.lease_seconds
            )
            if claimed is None:
                self.shutdown.wait(self.settings.poll_seconds)
                continue
            self.execute(claimed)
            done += 1
        return done

    def public_message(self, message: str) -> str:
        """A message fit for the tenant: server folders replaced by names (data-folder paths
        relative to it, other absolute paths cut to their last part), length capped.

        Library errors may quote a file under the data folder (a checkpoint,
        the model cache); the tenant knows its objects by id, never by path.
        """
        for root in sorted(
            {str(self.settings.data_dir.resolve()), str(self.settings.data_dir)},
            key=len,
            reverse=True,
        ):
            if root not in (".", ""):
                message = message.replace(root + os.sep, "").replace(root, "<data>")
        message = scrub(message)  # any other absolute path (site-packages, home, /tmp)
        if len(message) > MAX_ERROR_CHARS:
            message = message[: MAX_ERROR_CHARS - 1] + "…"
        return message

    def execute(self, claimed: queue.Claim) -> None:
        ctx = JobContext(
            job_id=claimed.job_id,
            tenant_id=claimed.tenant_id,
            spec=claimed.spec,
            attempt=claimed.attempt,
            settings=self.settings,
            sessions=self.sessions,
            storage=self.storage,
        )
        lost = threading.Event()
        beat_done = threading.Event()
        # Compute seconds of this attempt, written as it runs; training tokens when it ends.
        meter = JobMeter(
            self.sessions,
            job_id=claimed.job_id,
            tenant_id=claimed.tenant_id,
            job_kind=claimed.kind,
            spec=claimed.spec,
            jobs_dir=self.settings.jobs_dir,
        )

        def heartbeat() -> None:
            while not beat_done.wait(self.settings.heartbeat_seconds):
                owner, cancel = queue.renew(
                    self.sessions,
                    job_id=claimed.job_id,
                    worker_id=self.worker_id,
                    lease_seconds=self.settings.lease_seconds,
                )
                if not owner:
                    lost.set()
                if self.orphaned():
                    self.shutdown.set()
                if cancel or not owner or self.shutdown.is_set():
                    ctx.stop.set()
                meter.tick()

        beat = threading.Thread(target=heartbeat, name=f"heartbeat-{claimed.job_id}", daemon=True)
        beat.start()
        self._current = (claimed, ctx)
        if self.shutdown.is_set():
            ctx.stop.set()  # SIGTERM arrived while claiming
        finish: dict[str, Any] = dict(
            factory=self.sessions, job_id=claimed.job_id, worker_id=self.worker_id
        )
        try:
            run = registry.lookup("job_kind", claimed.kind)
            result = run(ctx)
        except JobCancelledError:
            if not lost.is_set() and not self.shutdown.is_set():
                queue.finish(**finish, status="cancelled", message="Job cancelled.")
            elif self.shutdown.is_set() and not lost.is_set():
                # Stopping, not cancelled: hand the job back so another worker resumes it now.
                queue.release(self.sessions, job_id=claimed.job_id, worker_id=self.worker_id)
        except TailorError as exc:
            message = self.public_message(exc.message)
            error = {"code": exc.code, "message": message, "param": exc.param}
            queue.finish(**finish, status="failed", error=error, message=f"Job failed: {message}")
        except Exception as exc:  # process boundary: record the failure, keep the worker alive
            log.error("job %s crashed:\n%s", claimed.job_id, traceback.format_exc())
            # Only the exception's type reaches the tenant: its text may name server
            # paths, addresses or settings. The traceback is in the worker's log.
            error = {
                "code": "internal_error",
                "message": f"The job stopped on an internal error ({type(exc).__name__}); "
                f"the operator's worker log has the details for job {claimed.job_id}.",
                "param": None,
            }
            queue.finish(
                **finish, status="failed", error=error, message=f"Job failed: {error['message']}"
            )
        else:
            queue.finish(
                **finish,
                status="succeeded",
                result=result,
                message="The job has successfully completed.",
            )
        finally:
            self._current = None
            beat_done.set()
            beat.join()
            try:
                meter.close()
            except Exception:  # process boundary: the job's outcome stands; the log has why
                log.exception("usage of job %s not recorded", claimed.job_id)


def run_worker(settings: Settings) -> None:
    """Entry point of ``tailor worker``: stop cleanly on SIGTERM/SIGINT."""
    # `tailor serve` names its workers, so that it can hand back the job of one it saw die.
    worker = Worker(settings, worker_id=os.environ.get("TAILOR_WORKER_ID") or None)

    def _stop(signum: int, _frame: object) -> None:
        worker.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.run()
    if worker._stop_timer is not None:
        worker._stop_timer.cancel()
