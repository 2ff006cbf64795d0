"""One place that maps domain and framework errors to Graph error JSON (graph-api §A.7)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from remit.db import integrity_conflict, nul_refused, stale_conflict
from remit.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unauthenticated

# SQLSTATEs of a transaction the database rolled back on its own: serialization failure,
# deadlock detected.
TRANSIENT = frozenset({"40001", "40P01"})

log = structlog.get_logger("remit.api")

STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    Invalid: 400,
    Unauthenticated: 401,
}
HTTP_CODES = {
    400: "invalidRequest",
    401: "unauthenticated",
    403: "accessDenied",
    404: "itemNotFound",
    405: "notSupported",
    409: "conflict",
    413: "requestTooLarge",
    415: "unsupportedMediaType",
    422: "invalidRequest",
}


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = str(uuid.uuid4())
        request.state.request_id = rid
    return str(rid)


def graph_error(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    target: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    rid = request_id(request)
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "innerError": {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": rid,
            "client-request-id": request.headers.get("client-request-id", rid),
        },
    }
    if target:
        body["target"] = target
    if details:
        body["details"] = details
    headers = {"request-id": rid}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="remit"'
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
        return graph_error(request, status, exc.code, exc.message, target=exc.target)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "code": "invalidValue",
                "message": str(e.get("msg", "invalid")),
                "target": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
            }
            for e in exc.errors()[:20]
        ]
        first = details[0] if details else {"message": "invalid request", "target": None}
        message = str(first["message"])
        if first["target"]:
            message = f"{first['target']}: {message}"
        return graph_error(request, 400, "invalidRequest", message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "invalidRequest")
        message = "the resource was not found" if exc.status_code == 404 else str(exc.detail)
        return graph_error(request, exc.status_code, code, message)

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        return await _domain(request, stale_conflict())

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        refused = nul_refused(exc)  # Db.write() maps these; this catches one raised in a read
        if refused is not None:
            return await _domain(request, refused)
        if isinstance(exc, IntegrityError):
            # Db.write() turns these into Conflict; this catches one raised outside it.
            return await _domain(request, integrity_conflict(exc))
        if exc.connection_invalidated:
            # The pool had a dead connection (database restarted); the next try gets a new one.
            log.warning("database connection lost", request_id=request_id(request))
            response = graph_error(
                request, 503, "serviceNotAvailable", "the database connection was lost; retry"
            )
            response.headers["Retry-After"] = "1"
            return response
        if getattr(exc.orig, "sqlstate", None) in TRANSIENT:
            # PostgreSQL chose this transaction as a deadlock victim (or could not serialise
            # it): it was rolled back whole, so the call had no effect and may be retried.
            log.warning(
                "transaction rolled back by the database; retry", request_id=request_id(request)
            )
            response = graph_error(
                request, 503, "serviceNotAvailable", "a concurrent change interfered; retry"
            )
            response.headers["Retry-After"] = "1"
            return response
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        refused = nul_refused(exc)  # the driver's own error, from a HotSelect's cursor
        if refused is not None:
            return await _domain(request, refused)
        log.exception("unhandled error", request_id=request_id(request), path=request.url.path)
        return graph_error(request, 500, "generalException", "an unexpected error occurred")
