"""``create_app``: builds the FastAPI application around a database, settings and a clock."""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from remit import __version__
from remit.api import (
    errors,
    routes_assignments,
    routes_audit,
    routes_catalogs,
    routes_directory,
    routes_extensions,
    routes_external,
    routes_packages,
    routes_policies,
    routes_remit,
    routes_requests,
    routes_roles,
)
from remit.api.state import AppState
from remit.clock import Clock, utcnow
from remit.db import Database
from remit.settings import Settings
from remit.tokens import TokenService

MAX_BODY = 1024 * 1024
_heap_frozen = False


def freeze_startup_heap() -> None:
    """Put what is alive once the app is built (modules, mappers, the app) out of the GC's way.

    Python's full collections walk every tracked object; with the startup heap among them, a
    request that builds many objects (an actor with thousands of grants) now and then pays a
    ~90 ms pause, which is the whole of a list page's p99 (bench P2). Once per process.
    """
    global _heap_frozen  # noqa: PLW0603 - a once-per-process switch
    if not _heap_frozen:
        gc.collect()
        gc.freeze()
        _heap_frozen = True


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    freeze_startup_heap()
    yield


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
        lifespan=_lifespan,
    )
    app.state.remit = state
    errors.install(app)
    # FastAPI tries routes in order, ~0.5 µs each: the hot reads (catalogs, access packages)
    # come first. Policies precede packages: accessPackages/filterByCurrentUser(...) would
    # otherwise match accessPackages/{id}; no other paths overlap.
    for module in (
        routes_catalogs,
        routes_policies,
        routes_packages,
        routes_directory,
        routes_roles,
        routes_requests,
        routes_assignments,
        routes_audit,
        routes_extensions,
        routes_external,
        routes_remit,
    ):
        app.include_router(module.router)

    app.add_middleware(RequestHeaders)
    return app


class RequestHeaders:
    """A request id and ``nosniff`` on every response; 413 for a body declared too large.

    A plain ASGI middleware: ``@app.middleware("http")`` (BaseHTTPMiddleware) costs a task group
    and a pair of memory streams per request, more than some whole read endpoints.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["request-id"] = rid
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            response = errors.graph_error(
                Request(scope), 413, "requestTooLarge", "the request body is too large"
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
