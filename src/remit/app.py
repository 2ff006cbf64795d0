"""The composition root: ``create_app`` builds the Graph API (and, when it comes, the portal)
around a database, settings and a clock. It sits above the adapters; ``remit.__main__`` joins it
to the CLI as ``remit serve``.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from remit import __version__, logs
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
from remit.api.edge import Edge, docs_policy
from remit.api.state import AppState
from remit.clock import Clock, utcnow
from remit.db import Database
from remit.settings import Settings
from remit.throttle import FailureLimiter
from remit.tokens import TokenService

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


def _lifespan(owned: Database | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Freeze the startup heap; at shutdown, dispose of the database the app made itself."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_heap()
        try:
            yield
        finally:
            if owned is not None:
                owned.dispose()

    return lifespan


def app_of_environment() -> FastAPI:
    """The app of one worker process of ``remit serve --workers N`` (uvicorn's app factory).

    Settings come from the environment, which the process inherited from ``remit serve``; the
    process logs as that one does. The start-up work (migrations, builtins, the demo, the key
    files) was done once by ``remit serve`` before its workers started, and the job worker runs
    there too (docs/decisions/0030): this builds the app and its own database engine only.
    """
    settings = Settings()
    logs.configure(settings.log_level)
    return create_app(settings)


def create_app(settings: Settings, *, db: Database | None = None, clock: Clock = utcnow) -> FastAPI:
    """The API over ``db``, or over a database of its own (disposed when the app stops)."""
    owned: Database | None = None
    if db is None:
        db = owned = Database(
            settings.resolved_database_url(), write_wait_seconds=settings.write_wait_seconds
        )
    state = AppState(settings=settings, db=db, tokens=TokenService(settings), clock=clock)
    app = FastAPI(
        title="remit",
        version=__version__,
        description="Delegated access governance with a Microsoft Graph-shaped API.",
        docs_url="/remit/docs",
        openapi_url="/remit/openapi.json",
        redoc_url=None,
        lifespan=_lifespan(owned),
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

    # Failed sign-ins per client address: here for the API edge, on app.state for the portal.
    app.state.auth_failures = FailureLimiter(
        settings.auth_failures_per_window, settings.auth_failure_window_seconds, clock=clock
    )
    public = {"/remit/health", app.docs_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url}
    app.add_middleware(
        Edge,
        state=state,
        limiter=app.state.auth_failures,
        public=frozenset(p for p in public if p),
        docs=docs_policy(app),
    )
    return app
