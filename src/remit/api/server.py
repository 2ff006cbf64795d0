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
    """httptools, refusing a request whose head passes ``max_head`` bytes while it arrives.

    Bytes are counted per read after the parser has seen them, while the head of the current
    request is still incomplete; a read that completes a head is not counted (its tail is the
    body's). The count may take in the end of a previous request's body that shares a read with
    the next head: the bound is generous beside real heads (a few KiB), so that is harmless.
    """

    max_head = 16 * 1024 + REQUEST_LINE_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._in_head = False
        self._head_bytes = 0
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head:
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


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What ``uvicorn.run``/``uvicorn.Config`` get beside the app, host and port."""
    return {
        "http": http_protocol(settings),
        "server_header": False,
        "access_log": False,
    }
