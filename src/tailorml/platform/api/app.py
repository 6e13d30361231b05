"""The app factory: ``create_app(settings)`` builds the FastAPI app with no import-time globals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from tailorml import __version__
from tailorml.platform.api.audit import AuditMiddleware
from tailorml.platform.api.deps import authenticate_request
from tailorml.platform.api.errors import install_error_handlers
from tailorml.platform.api.guard import GuardLimits, RequestGuard
from tailorml.platform.api.metrics import MetricsMiddleware
from tailorml.platform.api.openapi import install_openapi
from tailorml.platform.api.routes import (
    admin,
    audit,
    batches,
    datasets,
    files,
    fine_tuning,
    health,
    inference,
    metrics,
    models,
    usage,
)
from tailorml.platform.api.state import AppState
from tailorml.platform.db.engine import make_engine, make_sessionmaker, migrate
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage

log = logging.getLogger("tailorml.api")

# A temporary upload file untouched this many body timeouts is left over from a killed
# process. A live writer touches its file at every chunk, and the guard refuses a body that
# pauses longer than one body timeout (its writer then deletes the file), so ten leave room
# for a slow disk. Another API replica sharing the folder may be writing one right now.
STALE_TEMP_BODY_TIMEOUTS = 10
# ... and never less than this, for clocks of replicas on a shared folder that disagree.
STALE_TEMP_MIN_SECONDS = 600.0


def create_app(settings: Settings | None = None, *, run_migrations: bool = True) -> FastAPI:
    settings = settings or Settings()
    settings.ensure_dirs()
    settings.secret()  # create it now, not under a request race
    engine = make_engine(settings.resolved_database_url)
    if run_migrations:
        migrate(engine)
    storage = LocalStorage(settings.data_dir)
    removed = storage.remove_stale_temp_files(
        older_than_seconds=max(
            STALE_TEMP_BODY_TIMEOUTS * settings.body_timeout_seconds, STALE_TEMP_MIN_SECONDS
        )
    )
    if removed:
        log.info("Removed %d temporary files left by interrupted uploads.", removed)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        storage=storage,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.usage.close()  # write the last second's usage before the process ends
        state.audit.close()  # and the audit events not written yet

    app = FastAPI(
        title="TailorML",
        version=__version__,
        description="Customized models for your customers, behind an OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.tailor = state
    install_error_handlers(app)
    # Authentication, body limits and quotas before any route reads a byte (see guard.py).
    app.add_middleware(
        RequestGuard,
        limits=partial(GuardLimits.from_settings, settings),
        authenticate=partial(authenticate_request, state),
        meter=state.quotas,
    )
    # Request ids and the audit log, outside the guard so its refusals are audited too.
    app.add_middleware(AuditMiddleware, writer=lambda: state.audit)
    # Outermost, so the guard's own refusals (401, 413, 431) are counted too.
    app.add_middleware(MetricsMiddleware, metrics=state.http_metrics)

    for router in (
        files.router,
        datasets.router,
        fine_tuning.router,
        models.router,
        inference.router,
        batches.router,
        admin.router,
        audit.router,
        audit.admin_router,
        health.router,
        metrics.router,
        usage.router,
        usage.admin_router,
    ):
        app.include_router(router)
    install_openapi(app)  # errors documented as they are answered (400, not 422)
    return app
