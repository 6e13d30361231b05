"""Liveness and readiness, for a load balancer or an orchestrator (no key needed).

``GET /healthz`` answers while the process serves HTTP. ``GET /readyz``
checks that the database answers (503 if not) and says how many workers are
alive: from the supervisor when ``tailor serve`` runs them in this process,
otherwise from the database (workers holding an unexpired job lease, which
counts busy workers only: an idle worker writes nothing the database keeps).
A dead or crash-looping worker does not make the API unready, since it still
serves models; the counts let a monitor alert on it. ``GET /health`` is kept
for existing probes and answers like ``/healthz``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from tailorml import __version__
from tailorml.platform.api.deps import StateDep
from tailorml.platform.jobs import queue

router = APIRouter(tags=["ops"])
log = logging.getLogger("tailorml.api")


@router.get("/health")
@router.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", response_model=None)
def readyz(state: StateDep) -> dict[str, Any] | JSONResponse:
    try:
        with state.read_sessions() as session:
            session.execute(text("SELECT 1"))
        if state.supervisor is not None:
            workers = state.supervisor.snapshot()
        else:
            workers = {"source": "database", "busy": queue.live_workers(state.read_sessions)}
    except SQLAlchemyError as exc:
        log.warning("readiness: the database does not answer: %s", type(exc).__name__)
        return JSONResponse(
            status_code=503,
            content={"status": "unavailable", "database": "unreachable", "version": __version__},
        )
    return {"status": "ready", "database": "ok", "workers": workers, "version": __version__}
