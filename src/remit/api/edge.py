"""The HTTP edge: what every request passes before a route runs (issue #11, docs/decisions/0018).

In order, each check refusing with Graph error JSON before the next one runs:

1. the request's head: at most ``max_header_count`` fields and ``max_header_bytes`` of names
   and values (431); uvicorn's parser bounds the raw head before that (``remit serve``);
2. the decoded path and query string hold no control character that no field accepts (NUL,
   the other C0 controls but tab, line feed and carriage return, DEL): 400;
3. a declared ``Content-Length`` above ``MAX_BODY``: 413;
4. on every path but the public ones (health, the docs), a bearer token, verified here, before
   any byte of the body is read: 401, or 429 with ``Retry-After`` once the client's address has
   spent its burst of failures (``remit.throttle``); the identity is left in the scope for
   ``state.identity`` so that the token is verified once;
5. while the app reads the body: 413 as soon as it passes ``MAX_BODY`` (chunked or not), and
   400 for a control character in any string or key of a JSON body.

An answer given before the body was read closes the connection, so that the server does not
go on reading (or discarding) what the client still sends. Every response carries the request
id, ``nosniff``, ``Cache-Control: no-store``, ``X-Frame-Options: DENY`` and a CSP
(``default-src 'none'`` for the API; the docs page's own, see ``docs_policy``).

A plain ASGI class: ``@app.middleware("http")`` (BaseHTTPMiddleware) costs a task group and a
pair of memory streams per request, more than some whole read endpoints.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from remit.api import errors
from remit.api.state import VERIFIED, AppState
from remit.errors import Unauthenticated
from remit.throttle import FailureLimiter, client_key
from remit.tokens import Identity
from remit.validation import control_character

MAX_BODY = 1024 * 1024
API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
# What the docs page loads (FastAPI's defaults): Swagger UI's script and CSS from jsDelivr,
# the favicon from fastapi.tiangolo.com, the OpenAPI document from here.
DOCS_SOURCES = "https://cdn.jsdelivr.net"
DOCS_FAVICON = "https://fastapi.tiangolo.com"
ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
)
# A JSON body whose strings could hold a control character has one of these bytes: a backslash
# (any escape: ``\u0000``, but also ``\b`` and ``\f``, which are controls too), a raw DEL, or a
# NUL byte (a body in UTF-16 or UTF-32, which ``json.loads`` detects and decodes, holds NUL bytes
# beside its ASCII characters; raw C0 bytes are invalid inside a UTF-8 JSON string).
_SUSPECT = (b"\\", b"\x7f", b"\x00")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# status, Graph error code, message, extra headers
Refusal = tuple[int, str, str, dict[str, str]]


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        state: AppState,
        limiter: FailureLimiter,
        public: frozenset[str],
        docs: dict[str, Callable[[str], bytes]],
    ) -> None:
        self.app = app
        self.state = state
        self.limiter = limiter
        self.public = public
        self.docs = docs  # path -> (root_path -> the page's CSP)
        self.max_header_bytes = state.settings.max_header_bytes
        self.max_header_count = state.settings.max_header_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid
        docs = self.docs.get(scope["path"])
        head = _head(scope["headers"])
        # Until the app runs, a body is one the server would be left to read: close instead.
        reply = _Reply(send, rid, docs(scope.get("root_path", "")) if docs else API_POLICY)
        reply.close = head.has_body
        refused = self._refusal(scope, head)
        if refused is not None:
            status, code, message, headers = refused
            response = errors.graph_error(Request(scope), status, code, message)
            response.headers.update(headers)
            await response(scope, receive, reply)
            return
        reply.close = False
        if head.has_body:
            receive = _Body(receive, reply)
        await self.app(scope, receive, reply)

    def _refusal(self, scope: Scope, head: _Head) -> Refusal | None:
        """Why the request is refused before the app runs, or None."""
        if head.fields > self.max_header_count or head.size > self.max_header_bytes:
            return 431, "invalidRequest", "the request's header fields are too large", {}
        bad = _control_in_url(scope["path"], scope["query_string"])
        if bad is not None:
            return 400, "invalidRequest", f"the URL holds a control character ({bad})", {}
        length = head.length
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return 413, "requestTooLarge", "the request body is too large", {}
        if scope["path"] in self.public:
            return None
        return self._authenticate(scope, head)

    def _authenticate(self, scope: Scope, head: _Head) -> Refusal | None:
        """None when the token is good (its identity is left in the scope), else 401 or 429."""
        try:
            scope["state"][VERIFIED] = self._verify(head.authorization)
        except Unauthenticated as exc:
            # Only a token presented counts as a failure: a bare request is how clients
            # discover that one is needed.
            client = scope.get("client")
            key = client_key(client[0]) if client else ""
            wait = None if head.authorization is None else self.limiter.fail(key)
            if wait is None:
                return 401, exc.code, exc.message, {}
            return (
                429,
                "activityLimitReached",
                "too many failed sign-ins from this address; retry later",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return None

    def _verify(self, authorization: bytes | None) -> Identity:
        if authorization is None:
            raise Unauthenticated("a bearer token is required")
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("a bearer token is required")
        state = self.state
        return state.verified.verify(state.tokens, token, now=state.clock())


class _Head(NamedTuple):
    fields: int
    size: int  # bytes of names and values
    authorization: bytes | None  # the first
    length: bytes | None  # Content-Length
    has_body: bool


def _head(headers: list[tuple[bytes, bytes]]) -> _Head:
    size = 0
    authorization = length = None
    chunked = False
    for name, value in headers:
        size += len(name) + len(value)
        if name == b"authorization":
            authorization = authorization or value
        elif name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            chunked = True
    has_body = chunked or (length is not None and length not in (b"0", b""))
    return _Head(len(headers), size, authorization, length, has_body)


class _Reply:
    """``send``, with the edge's headers on the response's start."""

    def __init__(self, send: Send, rid: str, policy: bytes) -> None:
        self.send = send
        self.rid = rid
        self.policy = policy
        self.close = False  # ask the server to close the connection after this response

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            raw = list(message.get("headers", ()))
            if not any(name == b"request-id" for name, _ in raw):
                raw.append((b"request-id", self.rid.encode()))
            raw.extend(ALWAYS)
            raw.append((b"content-security-policy", self.policy))
            if self.close:
                raw.append((b"connection", b"close"))
            message["headers"] = raw
        await self.send(message)


class _Body:
    """``receive``, refusing a body that passes ``MAX_BODY`` (413) as soon as it does, and a
    JSON body with a control character in a string or key (400) once it is whole.

    The refusals are raised as ``HTTPException`` to the reader (FastAPI reads the body before
    it solves dependencies or calls the route), and rendered by ``errors``' handler.
    """

    def __init__(self, receive: Receive, reply: _Reply) -> None:
        self.receive = receive
        self.reply = reply
        self.received = 0
        self.chunks: list[bytes] = []  # the same bytes objects the reader keeps: no copy
        self.suspect = False

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] != "http.request":
            return message
        body: bytes = message.get("body", b"")
        self.received += len(body)
        if self.received > MAX_BODY:
            self.reply.close = True  # the rest of the body stays unread
            raise HTTPException(413, "the request body is too large")
        self.chunks.append(body)
        if not self.suspect:
            self.suspect = any(marker in body for marker in _SUSPECT)
        if self.suspect and not message.get("more_body", False):
            found = _control_in_json(b"".join(self.chunks))
            if found is not None:
                raise HTTPException(400, f"the request body holds a control character ({found})")
        return message


def _name(char: str) -> str:
    return f"U+{ord(char):04X}"


def _control_in_url(path: str, query: bytes) -> str | None:
    """The first control character of the decoded path or query string, named, or None."""
    found = control_character(path, multiline=True)
    if found is None and query:
        found = control_character(unquote_plus(query.decode("latin-1")), multiline=True)
    return None if found is None else _name(found)


def _control_in_json(body: bytes) -> str | None:
    """The first control character of any string or key of a JSON body, named, or None.

    A body that is not JSON is left to the route, which refuses it in its own words.
    """
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = control_character(item, multiline=True)
            if found is not None:
                return _name(found)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def docs_policy(app: FastAPI) -> dict[str, Callable[[str], bytes]]:
    """The CSP of each docs page (path -> root path -> policy): FastAPI's Swagger UI loads its
    script and CSS from jsDelivr and runs one inline script, allowed by its hash. The page is
    rendered here as FastAPI renders it; a test checks the served page against the policy.
    """
    if not (app.docs_url and app.openapi_url):
        return {}
    openapi_url, redirect_url = app.openapi_url, app.swagger_ui_oauth2_redirect_url
    cache: dict[str, bytes] = {}

    def policy(root_path: str) -> bytes:
        root = root_path.rstrip("/")
        if root not in cache:
            page = get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=root + redirect_url if redirect_url else None,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=app.swagger_ui_parameters,
            )
            scripts = _INLINE_SCRIPT.findall(bytes(page.body).decode())
            if redirect_url:
                redirect = get_swagger_ui_oauth2_redirect_html()
                scripts += _INLINE_SCRIPT.findall(bytes(redirect.body).decode())
            hashes = " ".join(f"'sha256-{script_hash(s)}'" for s in scripts)
            cache[root] = (
                f"default-src 'none'; script-src {DOCS_SOURCES} {hashes}; "
                f"style-src {DOCS_SOURCES} 'unsafe-inline'; img-src 'self' data: {DOCS_FAVICON}; "
                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
            ).encode()
        return cache[root]

    pages = [app.docs_url, *([redirect_url] if redirect_url else [])]
    return dict.fromkeys(pages, policy)


def script_hash(script: str) -> str:
    """A CSP source hash of an inline script's text."""
    return base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
