"""One place that maps domain and framework errors to Graph error JSON (graph-api §A.7)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from remit.db import DATABASE_ERRORS, domain_error, retry_reason
from remit.errors import (
    Busy,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Unauthenticated,
)

log = structlog.get_logger("remit.api")

STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    Invalid: 400,
    Unauthenticated: 401,
    Busy: 503,
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
        response = graph_error(request, status, exc.code, exc.message, target=exc.target)
        if isinstance(exc, Busy):
            # Nothing was begun: the same call, made again after this, may simply succeed.
            response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response

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

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # Db.write() maps what it can; this catches what is raised in a read, or outside it.
        found = domain_error(exc)
        if found is not None:
            return await _domain(request, found)
        reason = retry_reason(exc)
        if reason is not None:
            # The call had no effect (a dead pooled connection, or a transaction PostgreSQL
            # rolled back as a deadlock victim): the next try may well succeed.
            log.warning(reason, request_id=request_id(request))
            response = graph_error(request, 503, "serviceNotAvailable", reason)
            response.headers["Retry-After"] = "1"
            return response
        return await _unexpected(request, exc)

    # One handler per class (not the catch-all below, after which Starlette re-raises and the
    # server drops the connection).
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        found = domain_error(exc)  # the driver's own error, from a HotSelect's cursor
        if found is not None:
            return await _domain(request, found)
        log.exception("unhandled error", request_id=request_id(request), path=request.url.path)
        return graph_error(request, 500, "generalException", "an unexpected error occurred")
