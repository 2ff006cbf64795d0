"""How uvicorn serves remit: one set of options for ``remit serve``, the benchmarks and the tests.

uvicorn's default HTTP parser (httptools) reads a request's head whole, whatever its size: a
100 MB header field took a bare server from 33 to 128 MiB and was answered 200. Its other
parser (h11) bounds the head, but halves a bare server's requests per second on this machine
(decision 0018). So remit keeps httptools and bounds the head itself: ``BoundedHttpTools``
counts the bytes that arrive while a request's head is incomplete and, past the bound, answers
431 and closes the connection. What it holds of a head is at most the bound plus one read of
the socket. The edge (``api/edge.py``) then bounds the number and size of the header fields
that the parser passed on.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from remit.settings import Settings

# Room for the request line (method, path and query string) beside the header fields.
REQUEST_LINE_BYTES = 8 * 1024

_REFUSAL = json.dumps(
    {"error": {"code": "invalidRequest", "message": "the request's head is too large"}}
).encode()
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_REFUSAL)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _REFUSAL
)


class BoundedHttpTools(HttpToolsProtocol):
    """httptools, refusing a request once what it sends besides its body passes ``max_head``.

    Per read of the socket, after the parser has seen it, the bytes that were not body are
    counted from the start of a request to its end: the request line and header fields, the
    framing of a chunked body, and its trailer fields, which httptools passes on as header
    fields after the head was complete (a stream of them would otherwise grow ``scope
    ["headers"]`` without end). Past the bound the connection is answered 431 and closed, or,
    once the app is running the request, closed. What the parser holds of such bytes is so at
    most the bound and one read. A read may carry the end of one request and the start of the
    next: the count may then take in a little of the previous one, harmless beside a bound of
    ~24 KiB against heads of a few hundred bytes and chunk framing of a few bytes per chunk.
    """

    max_head = 16 * 1024 + REQUEST_LINE_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._in_request = False
        self._app_started = False
        self._not_body = 0
        self._body_bytes = 0
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_request, self._app_started, self._not_body = True, False, 0

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._app_started = True

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_request = False
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        body_before = self._body_bytes
        super().data_received(data)
        if not self._in_request or self.transport.is_closing():
            return
        self._not_body += len(data) - (self._body_bytes - body_before)
        if self._not_body > self.max_head:
            if not self._app_started:
                self.transport.write(_431)
            self.transport.close()


def http_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """The parser class for these settings (the bound is a class attribute: uvicorn builds one
    protocol object per connection from the class)."""
    return type(
        "BoundedHttpTools",
        (BoundedHttpTools,),
        {"max_head": settings.max_header_bytes + REQUEST_LINE_BYTES},
    )


@functools.cache
def _protocol_of_environment() -> type[HttpToolsProtocol]:
    return http_protocol(Settings())


def protocol_of_environment(**kwargs: Any) -> HttpToolsProtocol:
    """One connection's parser in a worker process of ``remit serve --workers N``.

    uvicorn hands its configuration to the worker processes it spawns by pickling it, and the
    class ``http_protocol`` builds for a bound is not picklable; an import string is. So each
    worker process builds the class once, from the settings of the environment, as it builds
    its app (``remit.app.app_of_environment``), and uvicorn calls this per connection as it
    would call the class.
    """
    return _protocol_of_environment()(**kwargs)


def uvicorn_options(settings: Settings, *, workers: int = 1) -> dict[str, Any]:
    """What ``uvicorn.run``/``uvicorn.Config`` get beside the app, host and port: the same
    parser, bound and headers in one process or in each of ``workers`` processes."""
    return {
        "http": (
            http_protocol(settings)
            if workers == 1
            else f"{__name__}:{protocol_of_environment.__name__}"
        ),
        "server_header": False,
        "access_log": False,
    }
