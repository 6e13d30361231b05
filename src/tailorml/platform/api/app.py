"""The app factory: ``create_app(settings)`` builds the FastAPI app with no import-time globals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from tailorml import __version__
from tailorml.platform.api.errors import install_error_handlers, openai_error
from tailorml.platform.api.routes import admin, datasets, files, fine_tuning, inference, models
from tailorml.platform.api.state import AppState
from tailorml.platform.db.engine import make_engine, make_sessionmaker, migrate
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage


def create_app(settings: Settings | None = None, *, run_migrations: bool = True) -> FastAPI:
    settings = settings or Settings()
    settings.ensure_dirs()
    settings.secret()  # create it now, not under a request race
    engine = make_engine(settings.resolved_database_url)
    if run_migrations:
        migrate(engine)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        storage=LocalStorage(settings.data_dir),
    )
    app = FastAPI(
        title="TailorML",
        version=__version__,
        description="Customized models for your customers, behind an OpenAI-compatible API.",
    )
    app.state.tailor = state
    install_error_handlers(app)

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Uploads have their own (larger) limit, enforced while streaming to storage.
        declared = int(request.headers.get("content-length") or 0)
        if declared > settings.max_request_bytes and not request.url.path.startswith("/v1/files"):
            return openai_error(
                413,
                f"The request body is {declared} bytes; the limit is {settings.max_request_bytes}.",
                code="payload_too_large",
            )
        return await call_next(request)

    for router in (
        files.router,
        datasets.router,
        fine_tuning.router,
        models.router,
        inference.router,
        admin.router,
    ):
        app.include_router(router)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    return app
