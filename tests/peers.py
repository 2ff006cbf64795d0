"""Real protocol peers on loopback for the tests: an SMTP server (aiosmtpd) that keeps what it
accepts, and an HTTP receiver for webhooks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from remit.notify import config
from remit.settings import Settings


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool
    peer: tuple[str, int]  # the client's address: one per connection


@dataclass
class MailSink:
    """An aiosmtpd handler: keeps what it accepts, refuses recipients when told to."""

    messages: list[Received] = field(default_factory=list)
    rcpt_attempts: int = 0
    refuse_with: str | None = None  # e.g. "451 4.3.0 try again later"
    refuse_domains: dict[str, str] = field(default_factory=dict)  # domain -> reply to RCPT
    # After each accepted message: None keeps the connection, "" closes it, any other text is
    # said first ("421 4.4.2 Idle timeout", as servers end a connection they will not keep).
    hang_up_after_data: str | None = None
    greetings: int = 0  # EHLOs: one per connection (two with STARTTLS)
    quits: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        self.rcpt_attempts += 1
        refusal = self.refuse_with or self.refuse_domains.get(address.rpartition("@")[2])
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        self.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                parsed,  # type: ignore[arg-type]
                session.ssl is not None,
                bool(session.authenticated),
                tuple(session.peer),
            )
        )
        if self.hang_up_after_data is not None:
            asyncio.get_running_loop().call_soon(self._hang_up, server.transport)
        return "250 Message accepted"

    def _hang_up(self, transport: Any) -> None:
        """After the reply is written: as a server that keeps no connection beyond a message."""
        if self.hang_up_after_data:
            transport.write(f"{self.hang_up_after_data}\r\n".encode())
        transport.close()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.greetings += 1
        return responses

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"

    def to(self, address: str) -> list[str]:
        """The subjects of the messages sent to ``address``."""
        return [
            str(m.message["Subject"])
            for m in self.messages
            if any(address.lower() == r.lower() for r in m.rcpt_tos)
        ]


class LoopbackController(Controller):
    """aiosmtpd's threaded controller on a port the system picks (port 0)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def start_smtp(sink: MailSink, **kwargs: Any) -> LoopbackController:
    controller = LoopbackController(sink, hostname="127.0.0.1", port=0, **kwargs)
    controller.start()
    return controller


@contextmanager
def mail_to_sink(settings: Settings) -> Iterator[MailSink]:
    """A sink on loopback that this process's emails go to while the block runs."""
    sink = MailSink()
    controller = start_smtp(sink)
    config.configure(
        settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": controller.port})
    )
    try:
        yield sink
    finally:
        config.configure(None)
        controller.stop()


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook receiver: records each POST and answers from a script (then 200)."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.hits.append(Hit(dict(self.headers.items()), body))
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/remit?sig=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
