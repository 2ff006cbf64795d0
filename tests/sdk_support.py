"""A real remit server on loopback for the Graph SDK tests, and SDK clients per persona."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient

from remit.api.server import uvicorn_options
from remit.app import create_app
from remit.db import Database
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import Tenant

HOST = "127.0.0.1"


class StaticTokenProvider(AccessTokenProvider):
    """graph-api.md §B.1: a fixed token, attached only for the allowed hosts."""

    def __init__(self, token: str, hosts: list[str]) -> None:
        self._token = token
        self._validator = AllowedHostsValidator(hosts)

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self._token if self._validator.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._validator


async def close(client: httpx.AsyncClient) -> None:
    await client.aclose()
    # msgraph-core's AsyncGraphTransport does not pass aclose() on to the transport it wraps,
    # which would leave the sockets to the garbage collector (a ResourceWarning, so an error).
    transport: Any = client._transport
    while (inner := getattr(transport, "transport", None)) is not None:
        await inner.aclose()
        transport = inner


@dataclass
class Remit:
    """A remit server on loopback and the tenant behind it."""

    base_url: str
    t: Tenant
    adapters: list[GraphRequestAdapter] = field(default_factory=list)

    def graph(self, alias: str | None) -> GraphServiceClient:
        """A client for ``alias`` (``None``: no token at all)."""
        token = self.t.token(alias) if alias else ""
        adapter = GraphRequestAdapter(
            BaseBearerTokenAuthenticationProvider(StaticTokenProvider(token, [HOST]))
        )
        adapter.base_url = self.base_url  # before the client copies it (§B.1)
        self.adapters.append(adapter)
        return GraphServiceClient(request_adapter=adapter)

    def run(self, scenario: Callable[[], Awaitable[None]]) -> None:
        """Run an async scenario, then close every client's connection pool on the same loop."""

        async def main() -> None:
            try:
                await scenario()
            finally:
                for adapter in self.adapters:
                    await close(adapter._http_client)

        asyncio.run(main())


class Server(uvicorn.Server):
    """uvicorn, telling the test thread when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextmanager
def serving(
    db: Database, settings: Settings, clock: SteppingClock, tenant: Tenant, *, page_size: int
) -> Iterator[Remit]:
    """uvicorn serving remit over the test database (the tenant's data_dir, so its key)."""
    app = create_app(settings.model_copy(update={"page_size": page_size}), db=db, clock=clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    # As ``remit serve`` serves it (api/server.py).
    options = uvicorn_options(settings)
    config = uvicorn.Config(app, lifespan="off", ws="none", log_config=None, **options)
    server = Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    if not server.ready.wait(timeout=60):
        raise RuntimeError("uvicorn did not start")
    try:
        yield Remit(f"http://{HOST}:{sock.getsockname()[1]}/v1.0", tenant)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
