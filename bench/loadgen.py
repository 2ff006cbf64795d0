"""A small HTTP/1.1 load generator, run in its own process so it does not share the server's GIL.

``python -m bench.loadgen`` reads a JSON job on stdin and prints a JSON result:
- ``{"mode": "rate", "port", "paths", "headers", "connections", "warmup", "seconds"}``: keep-alive
  connections each sending one request at a time; completed requests per second in the window.
- ``{"mode": "walk", "port", "path", "headers", "walks", "max_pages"}``: one connection, requests in
  sequence, following ``@odata.nextLink``; the latency of every page in µs.
- ``{"mode": "lifecycle", "port", "clients", "approver", "work": [[user, token, package, policy],
  ...]}``: P4's access-package lifecycles, each client one keep-alive connection running them one
  after another (POST the request as the user, GET its approval and PATCH the open stage as the
  approver); the latency of every call in µs by kind, the wall-clock start and end.
It speaks just enough HTTP (Content-Length bodies, none on a 204, no pipelining) to cost the
server's CPU far less than a general client such as httpx would.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover - uvicorn[standard] brings it
    uvloop = None


def request_bytes(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Client(asyncio.Protocol):
    """One keep-alive connection; ``on_response(status, body)`` decides what to send next."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buf = bytearray()
        self.need = -1
        self.status = 0
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.reply: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ready.set_result(None)

    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        self.reply = self.loop.create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.reply

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            length = next(
                (
                    int(h.split(":", 1)[1])
                    for h in head[1:]
                    if h.lower().startswith("content-length:")
                ),
                0,  # a 204 has no body and no Content-Length
            )
            self.need = end + 4 + length
            self.body_at = end + 4
        if len(self.buf) >= self.need:
            body = bytes(self.buf[self.body_at : self.need])
            del self.buf[: self.need]
            self.need = -1
            assert self.reply is not None
            self.reply.set_result((self.status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ConnectionError("the server closed the connection"))


async def connect(port: int) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(loop), "127.0.0.1", port)
    await client.ready
    return client


async def rate(job: dict[str, Any]) -> dict[str, Any]:
    requests = [request_bytes(p, job["headers"]) for p in job["paths"]]
    statuses: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    start = loop.time()
    counting_from = start + job["warmup"]
    stop = counting_from + job["seconds"]
    counted = 0

    async def worker(n: int) -> None:
        nonlocal counted
        client = await connect(job["port"])
        i = n
        while True:
            status, _ = await client.send(requests[i % len(requests)])
            i += 1
            now = loop.time()
            if now >= stop:
                break
            if now >= counting_from:
                counted += 1
                statuses[status] += 1
        assert client.transport is not None
        client.transport.close()

    await asyncio.gather(*(worker(n) for n in range(job["connections"])))
    return {"rps": counted / job["seconds"], "requests": counted, "statuses": dict(statuses)}


async def walk(job: dict[str, Any]) -> dict[str, Any]:
    client = await connect(job["port"])
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    pages = 0
    for _ in range(job["walks"]):
        path: str | None = job["path"]
        pages = 0
        while path is not None and pages < job["max_pages"]:
            started = time.perf_counter()
            status, body = await client.send(request_bytes(path, job["headers"]))
            latencies.append((time.perf_counter() - started) * 1e6)
            statuses[status] += 1
            pages += 1
            link = json.loads(body).get("@odata.nextLink") if status == 200 else None
            path = None if link is None else urlsplit(link)._replace(scheme="", netloc="").geturl()
    assert client.transport is not None
    client.transport.close()
    return {"latencies_us": latencies, "pages_per_walk": pages, "statuses": dict(statuses)}


EM = "/v1.0/identityGovernance/entitlementManagement"


def call_bytes(method: str, path: str, token: str, body: Any = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def lifecycle(job: dict[str, Any]) -> dict[str, Any]:
    """Lifecycles from one shared list, ``clients`` connections taking the next one when free."""
    todo = [tuple(w) for w in reversed(job["work"])]
    approver = job["approver"]
    latencies: dict[str, list[float]] = {"POST": [], "GET": [], "PATCH": []}
    failures: list[str] = []
    requests: list[str] = []

    async def timed(client: Client, kind: str, data: bytes) -> tuple[int, bytes]:
        started = time.perf_counter()
        status, body = await client.send(data)
        latencies[kind].append((time.perf_counter() - started) * 1e6)
        return status, body

    async def one_client() -> None:
        client = await connect(job["port"])
        while todo:
            user, token, package, policy = todo.pop()
            body = {
                "requestType": "userAdd",
                "assignment": {
                    "accessPackageId": package,
                    "assignmentPolicyId": policy,
                    "targetId": user,
                },
            }
            data = call_bytes("POST", f"{EM}/assignmentRequests", token, body)
            status, raw = await timed(client, "POST", data)
            if status != 201:
                failures.append(f"POST {status}: {raw[:200]!r}")
                continue
            request_id = json.loads(raw)["id"]
            path = f"{EM}/accessPackageAssignmentApprovals/{request_id}"
            status, raw = await timed(client, "GET", call_bytes("GET", path, approver))
            stages = json.loads(raw).get("stages", []) if status == 200 else []
            stage = next((s for s in stages if s["status"] == "InProgress"), None)
            if stage is None:
                failures.append(f"GET approval {status}: {raw[:200]!r}")
                continue
            decision = {"reviewResult": "Approve", "justification": "ok"}
            data = call_bytes("PATCH", f"{path}/stages/{stage['id']}", approver, decision)
            status, raw = await timed(client, "PATCH", data)
            if status != 204:
                failures.append(f"PATCH {status}: {raw[:200]!r}")
                continue
            requests.append(request_id)
        assert client.transport is not None
        client.transport.close()

    started = time.time()
    await asyncio.gather(*(one_client() for _ in range(job["clients"])))
    return {
        "started": started,
        "ended": time.time(),
        "latencies_us": latencies,
        "requests": requests,
        "failures": failures,
    }


MODES = {"rate": rate, "walk": walk, "lifecycle": lifecycle}


def main() -> None:
    job = json.load(sys.stdin)
    runner = MODES[job["mode"]]
    result = uvloop.run(runner(job)) if uvloop is not None else asyncio.run(runner(job))
    json.dump(result, sys.stdout)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` in a fresh load-generator process and return its result."""
    import os
    import subprocess

    from bench.common import python_path

    env = {**os.environ, "PYTHONPATH": python_path()}
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(job).encode(),
        capture_output=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


if __name__ == "__main__":
    main()
