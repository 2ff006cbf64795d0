"""P4: request → approve → delivered, with the builtin connector.

The world: one access package granting a group's Member role, an app role and a site role
(``p5_expiry.build_packages``), whose policy lets any member user request it for 30 days with one
approval stage decided by one user; N distinct member users, bulk-inserted. A lifecycle is:

1. the user submits a ``userAdd`` request;
2. the approver approves the stage;
3. the job worker runs what that queued: the "approval needed" / "access delivered" emails,
   written to the outbox (the builtin connector delivers the three roles in the approving
   transaction, decision 0014).

In-process (SQLite and PostgreSQL): steps 1 and 2 call the operations directly, one ``db.write()``
each with the actor loaded inside it, as the API's ``operation()`` does; after each batch of
``worker_batch`` lifecycles the worker drains the queue. Through HTTP (SQLite): uvicorn, one
worker process on loopback, with the job worker running in the same process (as ``remit serve``
runs it, polling every 50 ms when idle); a load-generator process runs lifecycles on 8 keep-alive
connections: POST the request as the user, GET the approval (the stage id) and PATCH the stage
as the approver; the lifecycle counts when the database says the request is delivered.

Beside them, measured in the same run: the raw engine's commit rate (SQLite WAL with remit's
pragmas, PostgreSQL through psycopg with synchronous commit): one INSERT per transaction, and a
3-statement transaction (INSERT, UPDATE, SELECT). The ratio says how many raw transactions one
lifecycle costs.

``python -m bench.p4_lifecycle serve PORT DATA_DIR URL`` is the server, ``… drive`` the load.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from bench.common import (
    QUICK,
    Table,
    engines,
    median,
    pg_drop,
    progress,
    python_path,
    scale,
    scratch_dir,
)
from bench.p5_expiry import _pg_admin, _pg_url, build_packages, rid, user_rows
from bench.server import Server
from remit.db import SQLITE_PRAGMAS

IN_PROCESS_TARGET = {"SQLite": 1_000, "PostgreSQL": 300}
HTTP_TARGET = 200
N_IN_PROCESS = scale(500, 5)
N_HTTP = scale(400, 10)
REPEATS = scale(3, 1)
CONNECTIONS = 8
RAW_SECONDS = 0.2 if QUICK else 1.0
DOMAIN = "p4.bench.example"
APPROVER = rid(9, 0)
EM = "/v1.0/identityGovernance/entitlementManagement"
PG_DB = "remit_bench_p4"


# ---------------------------------------------------------------------------- the world


def build(url: str, users: int) -> dict[str, str]:
    """Migrate the empty database at ``url``, add the approver, ``users`` requestors and the
    package; its and its policy's ids."""
    from remit import bootstrap
    from remit.db import Database
    from remit.models.directory import User

    db = Database(url)
    try:
        bootstrap.upgrade(db)
        now = datetime.now(UTC) - timedelta(days=1)
        with db.engine.begin() as conn:
            approver = next(user_rows(0, 1, now, DOMAIN)) | {
                "id": APPROVER,
                "user_principal_name": f"approver@{DOMAIN}",
                "upn_key": f"approver@{DOMAIN}",
            }
            conn.execute(insert(User), [approver])
            for start in range(0, users, 5_000):
                conn.execute(
                    insert(User), list(user_rows(start, min(5_000, users - start), now, DOMAIN))
                )
        package = build_packages(db, 1, staff=False, approver=APPROVER)["packages"][0]
        return {"package": package.id, "policy": package.policy_id}
    finally:
        db.dispose()


def delivered(url: str) -> int:
    from remit.db import Database
    from remit.models.lifecycle import AssignmentRequest as R

    db = Database(url)
    try:
        with db.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(R.request_type == "userAdd", R.state == "delivered")
                ).scalar_one()
            )
    finally:
        db.dispose()


# ---------------------------------------------------------------------------- in-process


def in_process(url: str, ids: dict[str, str], data_dir: Path, first: int, count: int) -> float:
    """Run ``count`` lifecycles of users ``first``…; completed lifecycles per second."""
    from remit import logs
    from remit.authz.actor import load_actor
    from remit.context import Ctx
    from remit.db import Database
    from remit.jobs.runner import Worker
    from remit.lifecycle import operations, requests
    from remit.models.lifecycle import ApprovalStage
    from remit.notify import config
    from remit.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=url, log_level="warning")
    logs.configure("warning")
    config.configure(settings)
    db = Database(url)
    worker = Worker(db, settings)
    worker.drain()  # the periodic jobs' first runs, outside the timing
    try:
        started = time.perf_counter()
        for batch in range(first, first + count, settings.worker_batch):
            for i in range(batch, min(batch + settings.worker_batch, first + count)):
                with db.write() as s:
                    now = datetime.now(UTC)
                    ctx = Ctx(s, load_actor(s.connection(), rid(1, i), now=now), now)
                    request = requests.submit(
                        ctx,
                        kind="userAdd",
                        package_id=ids["package"],
                        policy_id=ids["policy"],
                        target_id=rid(1, i),
                    )
                    request_id = request.id
                with db.write() as s:
                    now = datetime.now(UTC)
                    ctx = Ctx(s, load_actor(s.connection(), APPROVER, now=now), now)
                    stage = s.execute(
                        select(ApprovalStage.id).where(
                            ApprovalStage.request_id == request_id,
                            ApprovalStage.status == "InProgress",
                        )
                    ).scalar_one()
                    operations.decide_stage(
                        ctx, request_id, stage, result="Approve", justification=None
                    )
            worker.drain()
        seconds = time.perf_counter() - started
    finally:
        config.configure(None)
        db.dispose()
    return count / seconds


# ---------------------------------------------------------------------------- through HTTP


class LifecycleServer(Server):
    module = "bench.p4_lifecycle"


def serve(port: int, data_dir: str, url: str) -> None:
    """remit on uvicorn (one worker process), with a job worker thread as ``remit serve`` has."""
    import uvicorn

    from remit import logs
    from remit.api.server import uvicorn_options
    from remit.app import create_app
    from remit.db import Database
    from remit.jobs.handlers import load_all
    from remit.jobs.runner import Worker
    from remit.notify import config
    from remit.settings import Settings

    logs.configure("warning")
    settings = Settings(
        data_dir=Path(data_dir), database_url=url, log_level="warning", worker_poll_seconds=0.05
    )
    config.configure(settings)
    db = Database(url)
    app = create_app(settings, db=db)
    load_all()
    Worker(db, settings).start_thread()
    options = uvicorn_options(settings)
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", **options)


class _Client(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a request at a time, Content-Length bodies (none on a
    204)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.buf = loop, bytearray()
        self.reply: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        length = 0
        for h in head[1:]:
            if h.lower().startswith("content-length:"):
                length = int(h.split(":", 1)[1])
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        assert self.reply is not None
        self.reply.set_result((int(head[0].split(" ", 2)[1]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ConnectionError("the server closed the connection"))

    async def call(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        self.reply = self.loop.create_future()
        assert self.transport is not None
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        status, raw = await self.reply
        return status, (json.loads(raw) if raw else None)


async def _drive(job: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    todo = list(zip(job["users"], job["tokens"], strict=True))
    approver = job["approver"]
    failures: list[str] = []

    async def one_connection() -> None:
        _, client = await loop.create_connection(lambda: _Client(loop), "127.0.0.1", job["port"])
        while todo:
            user, token = todo.pop()
            body = {
                "requestType": "userAdd",
                "assignment": {
                    "accessPackageId": job["package"],
                    "assignmentPolicyId": job["policy"],
                    "targetId": user,
                },
            }
            status, made = await client.call("POST", f"{EM}/assignmentRequests", token, body)
            if status != 201:
                failures.append(f"POST {status}: {str(made)[:200]}")
                continue
            path = f"{EM}/accessPackageAssignmentApprovals/{made['id']}"
            status, approval = await client.call("GET", path, approver)
            stage = next(
                (s for s in (approval or {}).get("stages", []) if s["status"] == "InProgress"), None
            )
            if status != 200 or stage is None:
                failures.append(f"GET approval {status}: {str(approval)[:200]}")
                continue
            decision = {"reviewResult": "Approve", "justification": "ok"}
            status, _ = await client.call(
                "PATCH", f"{path}/stages/{stage['id']}", approver, decision
            )
            if status != 204:
                failures.append(f"PATCH {status}")
        assert client.transport is not None
        client.transport.close()

    started = time.time()
    await asyncio.gather(*(one_connection() for _ in range(job["connections"])))
    return {"started": started, "sent": time.time(), "failures": failures}


def drive(job: dict[str, Any]) -> dict[str, Any]:
    """Run the load-generator process on ``job``; its result."""
    env = {**os.environ, "PYTHONPATH": python_path()}
    done = subprocess.run(
        [sys.executable, "-m", "bench.p4_lifecycle", "drive"],
        input=json.dumps(job).encode(),
        capture_output=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the P4 load generator failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def through_http(
    url: str, ids: dict[str, str], data_dir: Path, first: int, rounds: int
) -> list[float]:
    """``rounds`` rounds of ``N_HTTP`` lifecycles each; completed lifecycles per second."""
    from remit.settings import Settings
    from remit.tokens import TokenService

    tokens = TokenService(Settings(data_dir=data_dir))
    now = datetime.now(UTC)
    approver = tokens.issue(APPROVER, f"approver@{DOMAIN}", now=now, ttl=timedelta(hours=2))
    rates = []
    with LifecycleServer("serve", data_dir, url) as server:
        done = delivered(url)
        for n in range(rounds):
            numbers = range(first + n * N_HTTP, first + (n + 1) * N_HTTP)
            job = {
                "port": server.port,
                "connections": CONNECTIONS,
                "users": [rid(1, i) for i in numbers],
                "tokens": [
                    tokens.issue(rid(1, i), f"user{i}@{DOMAIN}", now=now, ttl=timedelta(hours=2))
                    for i in numbers
                ],
                "approver": approver,
                "package": ids["package"],
                "policy": ids["policy"],
            }
            progress(f"P4 through HTTP: round {n + 1} of {rounds}")
            result = drive(job)
            if result["failures"]:
                raise RuntimeError(f"P4 through HTTP: {result['failures'][:3]}")
            deadline = time.time() + 120
            while (found := delivered(url)) < done + N_HTTP and time.time() < deadline:
                time.sleep(0.02)
            finished = time.time()
            if found < done + N_HTTP:
                raise RuntimeError(
                    f"P4 through HTTP: {found - done} of {N_HTTP} delivered in 120 s"
                )
            done = found
            rates.append(N_HTTP / (finished - result["started"]))
    return rates


# ---------------------------------------------------------------------------- the raw engine


def raw_sqlite(path: Path) -> tuple[float, float]:
    """SQLite WAL with remit's pragmas: single INSERT + commit per second, 3-statement
    transactions per second."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")

    def single(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO raw (v, n) VALUES (?, ?)", (f"v{i}", i))
        conn.execute("COMMIT")

    def three(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("INSERT INTO raw (v, n) VALUES (?, ?)", (f"v{i}", i)).lastrowid
        conn.execute("UPDATE raw SET n = n + 1 WHERE id = ?", (row,))
        conn.execute("SELECT v, n FROM raw WHERE id = ?", (row,)).fetchone()
        conn.execute("COMMIT")

    try:
        return _rate(single), _rate(three)
    finally:
        conn.close()


def raw_postgres(url: str) -> tuple[float, float]:
    """The same through psycopg (synchronous commit)."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS raw (id SERIAL PRIMARY KEY, v TEXT, n INTEGER)")
        conn.commit()

        def single(i: int) -> None:
            conn.execute("INSERT INTO raw (v, n) VALUES (%s, %s)", (f"v{i}", i))
            conn.commit()

        def three(i: int) -> None:
            row = conn.execute(
                "INSERT INTO raw (v, n) VALUES (%s, %s) RETURNING id", (f"v{i}", i)
            ).fetchone()
            assert row is not None
            conn.execute("UPDATE raw SET n = n + 1 WHERE id = %s", (row[0],))
            conn.execute("SELECT v, n FROM raw WHERE id = %s", (row[0],)).fetchone()
            conn.commit()

        return _rate(single), _rate(three)


def _rate(fn: Any) -> float:
    for i in range(50):  # warm-up
        fn(i)
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < RAW_SECONDS:
        for i in range(50):
            fn(count + i)
        count += 50
    return count / elapsed


# ---------------------------------------------------------------------------- the table


def measure(table: Table, engine: str) -> None:
    scratch = scratch_dir("p4")
    users = N_IN_PROCESS * REPEATS + (N_HTTP * REPEATS if engine == "SQLite" else 0)
    if engine == "SQLite":
        url = f"sqlite:///{scratch / 'world.db'}"
    else:
        _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)', f'CREATE DATABASE "{PG_DB}"')
        url = _pg_url(PG_DB)
    try:
        progress(f"P4 on {engine}: building the world ({users:,} users)")
        ids = build(url, users)
        rates, raw = [], []
        for n in range(REPEATS):
            progress(f"P4 on {engine}: in-process, round {n + 1} of {REPEATS}")
            rates.append(in_process(url, ids, scratch, n * N_IN_PROCESS, N_IN_PROCESS))
            raw.append(raw_sqlite(scratch / "raw.db") if engine == "SQLite" else raw_postgres(url))
        single, three = median([r[0] for r in raw]), median([r[1] for r in raw])
        table.row(f"{engine}, raw: INSERT + commit", f"{single:,.0f}/s")
        table.row(f"{engine}, raw: 3-statement transaction", f"{three:,.0f}/s")
        rate, target = median(rates), IN_PROCESS_TARGET[engine]
        table.row(
            f"{engine}, in-process lifecycles (N={N_IN_PROCESS:,} x {REPEATS})",
            f"{rate:,.0f}/s (1 per {three / rate:.0f} raw transactions)",
            f"≥ {target:,}/s",
            rate >= target,
        )
        if engine == "SQLite":
            http = through_http(url, ids, scratch, N_IN_PROCESS * REPEATS, REPEATS)
            rate = median(http)
            table.row(
                f"{engine}, through HTTP, 1 worker (N={N_HTTP:,} x {REPEATS})",
                f"{rate:,.0f}/s (1 per {three / rate:.0f} raw transactions)",
                f"≥ {HTTP_TARGET:,}/s",
                rate >= HTTP_TARGET,
            )
    finally:
        if engine == "PostgreSQL":
            pg_drop(PG_DB)
        shutil.rmtree(scratch, ignore_errors=True)


def run() -> Table:
    table = Table(
        "P4 lifecycle: request → approve → delivered (builtin connector, 3 roles)",
        "in-process: submit and approve through the operations (one db.write() each), the job"
        " worker draining after every worker_batch; through HTTP: uvicorn, 1 worker, job worker"
        f" in-process, {CONNECTIONS} connections from a load-generator process (POST request,"
        " GET approval, PATCH stage), counted when the database shows the request delivered."
        "\nraw: the engine alone in the same run (SQLite WAL, synchronous=NORMAL; PostgreSQL"
        " via psycopg, synchronous commit); medians over rounds.",
    )
    for engine in engines(table):
        measure(table, engine)
    return table


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1:] == ["drive"]:
        print(json.dumps(asyncio.run(_drive(json.load(sys.stdin)))))
    else:
        run().print()
