"""The HTTP edge under a real ``remit serve`` process on loopback (issue #11, point 1).

A chunked upload without a token, or past the body limit with one, is answered while the client
is still sending, and the server's memory (VmRSS from /proc) grows by less than 20 MiB over
50 MB sent; the server's parser (``api/server.py``) refuses a request head past its bound
before it is read whole, with 431, whatever the head's size; the
responses carry no ``server`` banner. The server shares the test database and data directory
(so the tenant's tokens are good there) and runs no job worker.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from remit.db import Database
from tests.factories import EM, Tenant

CATALOGS = f"{EM}/catalogs"
UPLOAD = 50 * 1024 * 1024
CHUNK = 64 * 1024
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    """``remit serve`` in its own process, ready once it accepts connections."""

    def __init__(self, db_url: str, data_dir: Path) -> None:
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="remit-edge-", suffix=".log")[1])
        env = {
            **os.environ,
            "REMIT_DATABASE_URL": db_url,
            "REMIT_DATA_DIR": str(data_dir),
            "REMIT_WORKER_IN_PROCESS": "false",
            "REMIT_LOG_LEVEL": "warning",
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "remit", "serve", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"remit serve exited:\n{self.tail()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"remit serve did not start:\n{self.tail()}"
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        """The server process's resident memory, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def served(migrated_db: Database, session_dir: Path) -> Iterator[Served]:
    # The settings fixture's data directory: its signing key signs the tenant's tokens.
    server = Served(migrated_db.url, session_dir / "data")
    yield server
    server.close()


def head(path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: remit.test",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def upload(served: Served, headers: dict[str, str]) -> tuple[int, int, int]:
    """Send a 50 MB chunked body as long as the server takes it, watching for its answer
    before each chunk: (the answer's status, the bytes sent before it came, the server's
    largest RSS growth seen meanwhile)."""
    before = served.rss()
    growth, sent, answer = 0, 0, b""
    chunk = b"%x\r\n" % CHUNK + b"x" * CHUNK + b"\r\n"
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(head(CATALOGS, {**headers, "Transfer-Encoding": "chunked"}))
        opening = b'{"displayName": "big", "description": "'
        sock.sendall(b"%x\r\n%s\r\n" % (len(opening), opening))
        while sent < UPLOAD:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or closed): stop sending
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
            if sent % MIB == 0:
                growth = max(growth, served.rss() - before)
        growth = max(growth, served.rss() - before)
        assert sent < UPLOAD, "the whole body was sent before any answer"
        sock.settimeout(30)
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return status_of(answer), sent, growth


def test_a_chunked_upload_without_a_token_is_refused_before_it_ends(served: Served) -> None:
    status, sent, growth = upload(served, {"Content-Type": "application/json"})
    assert status == 401
    assert sent < UPLOAD
    assert growth < 20 * MIB, f"the server grew by {growth / MIB:.1f} MiB"


def test_a_chunked_upload_with_a_token_is_refused_once_past_the_limit(
    served: Served, tenant: Tenant
) -> None:
    headers = {"Content-Type": "application/json", **tenant.headers("hana")}
    status, sent, growth = upload(served, headers)
    assert status == 413
    assert sent < UPLOAD
    assert growth < 20 * MIB, f"the server grew by {growth / MIB:.1f} MiB"


def test_a_two_mib_chunked_body_with_a_token_is_a_graph_413(served: Served, tenant: Tenant) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"displayName": "big", "description": "'
        for _ in range(2 * MIB // CHUNK):
            yield b"x" * CHUNK
        yield b'"}'

    headers = {"Content-Type": "application/json", **tenant.headers("hana")}
    with httpx.Client(base_url=served.url) as client:
        try:
            r = client.post(CATALOGS, content=chunks(), headers=headers)
        except httpx.TransportError:
            pytest.fail("the connection broke before the 413 was read")
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "requestTooLarge"


def test_a_one_megabyte_header_is_refused_without_growing_the_server(served: Served) -> None:
    before = served.rss()
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(30)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(
                b"GET /remit/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MIB + b"\r\n\r\n"
            )
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            answer = sock.recv(65536)
    # As below: a reset may discard the 431 before it is read; the refusal is the same.
    assert answer == b"" or status_of(answer) == 431, answer[:200]
    assert served.rss() - before < 2 * MIB


def test_a_fifty_megabyte_header_is_refused_while_it_arrives(served: Served) -> None:
    """The head is refused once past its bound: the client is cut off long before it is done,
    and the server never holds more than the bound and a read of it."""
    before = served.rss()
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(30)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /remit/health HTTP/1.1\r\nHost: x\r\nX-Big: ")
            while sent < UPLOAD:
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(65536)
                    break
                sock.sendall(b"a" * CHUNK)
                sent += CHUNK
            answer = answer or sock.recv(65536)
    # The server answers 431 and closes with the client's bytes unread, so its kernel may reset
    # the connection, and a reset can discard the answer before the client reads it: a cut-off
    # connection without the answer is the same refusal.
    assert answer == b"" or status_of(answer) == 431, answer[:200]
    assert sent < UPLOAD, "the whole head was sent before any answer"
    assert served.rss() - before < 20 * MIB


def test_endless_trailer_fields_after_a_chunked_body_are_cut_off(
    served: Served, tenant: Tenant
) -> None:
    """httptools passes trailer fields on as header fields after the head: a client with a good
    token that sends the last chunk and then trailers without end is cut off (the app is
    already reading the body, so the server closes), and the server does not grow."""
    before = served.rss()
    growth, sent = 0, 0
    trailer = b"X-Trailer: " + b"t" * (CHUNK - 13) + b"\r\n"
    headers = {"Content-Type": "application/json", **tenant.headers("hana")}
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(head(CATALOGS, {**headers, "Transfer-Encoding": "chunked"}))
        sock.sendall(b"2\r\n{}\r\n0\r\n")
        while sent < UPLOAD:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered or closed
            try:
                sock.sendall(trailer)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(trailer)
            if sent % MIB < len(trailer):
                growth = max(growth, served.rss() - before)
        growth = max(growth, served.rss() - before)
    assert sent < UPLOAD, "the server read 50 MB of trailer fields"
    assert growth < 20 * MIB, f"the server grew by {growth / MIB:.1f} MiB"


def test_two_hundred_header_fields_are_refused(served: Served, tenant: Tenant) -> None:
    many = [(f"x-field-{i}", "v") for i in range(200)]
    with httpx.Client(base_url=served.url) as client:
        r = client.get(CATALOGS, headers=[*tenant.headers("hana").items(), *many])
    assert r.status_code == 431
    assert r.json()["error"]["code"] == "invalidRequest"


def test_responses_carry_the_security_headers_and_no_server_banner(
    served: Served, tenant: Tenant
) -> None:
    with httpx.Client(base_url=served.url) as client:
        for r in (
            client.get(CATALOGS, headers=tenant.headers("hana")),
            client.get(CATALOGS),
            client.get("/remit/health"),
        ):
            assert r.status_code in (200, 401), r.text
            assert "server" not in r.headers
            assert r.headers["cache-control"] == "no-store"
            assert r.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


@pytest.mark.parametrize(
    "path",
    [
        f"{CATALOGS}/a%00b",
        f"{CATALOGS}?$filter=displayName eq 'a%00b'",
        f"{CATALOGS}?$select=id%01",
    ],
)
def test_a_control_character_in_the_url_is_a_400(served: Served, tenant: Tenant, path: str) -> None:
    with httpx.Client(base_url=served.url) as client:
        r = client.get(path, headers=tenant.headers("hana"))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalidRequest"


def test_a_nul_in_a_json_body_is_a_400(served: Served, tenant: Tenant) -> None:
    headers = {"Content-Type": "application/json", **tenant.headers("hana")}
    with httpx.Client(base_url=served.url) as client:
        r = client.post(CATALOGS, content=b'{"displayName": "a\\u0000b"}', headers=headers)
    assert r.status_code == 400, r.text
    assert "control character" in r.json()["error"]["message"]
