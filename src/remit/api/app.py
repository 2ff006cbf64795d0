"""``create_app``: builds the FastAPI application around a database, settings and a clock."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from remit import __version__
from remit.api import (
    errors,
    routes_audit,
    routes_catalogs,
    routes_directory,
    routes_packages,
    routes_remit,
    routes_roles,
)
from remit.api.state import AppState
from remit.clock import Clock, utcnow
from remit.db import Database
from remit.settings import Settings
from remit.tokens import TokenService

MAX_BODY = 1024 * 1024


def create_app(settings: Settings, *, db: Database | None = None, clock: Clock = utcnow) -> FastAPI:
    database = db or Database(settings.resolved_database_url())
    state = AppState(settings=settings, db=database, tokens=TokenService(settings), clock=clock)
    app = FastAPI(
        title="remit",
        version=__version__,
        description="Delegated access governance with a Microsoft Graph-shaped API.",
        docs_url="/remit/docs",
        openapi_url="/remit/openapi.json",
        redoc_url=None,
    )
    app.state.remit = state
    errors.install(app)
    for module in (
        routes_directory,
        routes_roles,
        routes_catalogs,
        routes_packages,
        routes_audit,
        routes_remit,
    ):
        app.include_router(module.router)

    @app.middleware("http")
    async def _request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = str(uuid.uuid4())
        request.state.request_id = rid
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            response: Response = errors.graph_error(
                request, 413, "requestTooLarge", "the request body is too large"
            )
        else:
            response = await call_next(request)
        response.headers["request-id"] = rid
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app
