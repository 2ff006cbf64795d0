"""A uvicorn server in its own process: ``python -m bench.server remit|bare PORT DATA_DIR DB_URL``.

Both apps are served the same way, as ``remit serve`` serves remit: one worker, loopback,
uvloop, httptools with a bounded request head, no server banner, no access log
(``remit.api.server.uvicorn_options``).

``RemitServe`` is remit started as its users start it: ``python -m remit serve`` configured by
the environment (``REMIT_*``), with its job worker, and ``REMIT_WORKERS`` processes where this
checkout's ``remit serve`` has ``--workers`` (``serve_workers_supported``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from bench.common import python_path

BARE_PATH = "/bare"


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get(BARE_PATH)
    async def bare() -> dict[str, Any]:
        return {"value": "constant"}

    return app


def remit_app(data_dir: str, database_url: str) -> FastAPI:
    from remit.app import create_app
    from remit.db import Database
    from remit.settings import Settings

    settings = Settings(data_dir=Path(data_dir), database_url=database_url, log_level="warning")
    return create_app(settings, db=Database(database_url))


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    from remit.api.server import uvicorn_options
    from remit.settings import Settings

    app = bare_app() if kind == "bare" else remit_app(argv[2], argv[3])
    options = uvicorn_options(Settings())
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """``with Server("remit", data_dir, url) as srv:`` — started, ready, then stopped.

    The server's output goes to a log file, shown (its end) only if something fails.
    ``module`` is the module run as the server (``python -m module KIND PORT DATA_DIR DB_URL``).
    """

    module = "bench.server"

    def __init__(self, kind: str, data_dir: Path | None = None, database_url: str = "") -> None:
        self.kind, self.port = kind, free_port()
        self.args = [kind, str(self.port), str(data_dir or ""), database_url]
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"remit-bench-{kind}-", suffix=".log")[1])

    def __enter__(self) -> Server:
        env = {**os.environ, "PYTHONPATH": python_path(), **self.env}
        command = [sys.executable, "-m", self.module, *self.args]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own module
                command, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {self.kind} server exited:\n{self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the {self.kind} server did not start:\n{self.tail()}")

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if exc_type is not None:
            print(f"-- end of the {self.kind} server's log:\n{self.tail()}", file=sys.stderr)
        self.log.unlink(missing_ok=True)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def serve_workers_supported() -> bool:
    """Whether this checkout's ``remit serve`` takes ``--workers`` (older ones: one process)."""
    import inspect

    from remit.__main__ import serve

    return "workers" in inspect.signature(serve).parameters


class RemitServe(Server):
    """``python -m remit serve`` with ``REMIT_WORKERS``, ``REMIT_PORT``, ``REMIT_DATA_DIR``,
    ``REMIT_DATABASE_URL`` and ``REMIT_LOG_LEVEL=warning``; the rest of the settings (the job
    worker in-process among them) are remit's defaults, overridable through ``settings``."""

    module = "remit"

    def __init__(
        self,
        data_dir: Path,
        database_url: str,
        *,
        workers: int = 1,
        settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"remit-serve-{workers}", data_dir, database_url)
        self.args = ["serve"]
        self.env = {
            # Explicit, since remit serve defaults to the CPU count on PostgreSQL; an older
            # remit ignores it and serves one process.
            "REMIT_WORKERS": str(workers),
            "REMIT_PORT": str(self.port),
            "REMIT_DATA_DIR": str(data_dir),
            "REMIT_DATABASE_URL": database_url,
            "REMIT_LOG_LEVEL": "warning",
            **(settings or {}),
        }


if __name__ == "__main__":
    main(sys.argv[1:])
