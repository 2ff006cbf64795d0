"""P4: request POST → approval GET → stage PATCH → delivered, through HTTP as people drive it.

The world (QUALITY.md P4): 2,000 member users, 1,000 access packages (``p5_expiry.build_packages``:
each grants its own group's Member role, an app role and a site role through the builtin
connector, with a policy any member may request for 30 days, one approval stage decided by one
approver) and 20,000 past requests. The past requests are copies of real ones: one request
approved and one denied through the operations, then cloned with Core in bulk for other users,
packages and dates (request, stage, stage approver and, for an approval, its assignment, since
expired): 60% delivered and expired, 30% denied, 10% timed out (decision 0032). It is built on
SQLite and copied row for row into PostgreSQL (faster than building it twice; same rows).

A lifecycle is one (user, package) pair never requested before. A client is one keep-alive
connection running lifecycles one after another: POST the ``userAdd`` request as the user, GET
the approval as the approver (for the open stage's id), PATCH the stage with ``Approve``. The
builtin connector delivers the three roles in the approving transaction (decision 0014); a
lifecycle counts once the database shows its request delivered (checked after each round, waited
for if need be). The job worker runs all along, as ``remit serve`` runs it, writing the two emails
of each lifecycle to the outbox.

The server is ``python -m remit serve`` (``bench.server.RemitServe``) configured by the
environment, remit's defaults otherwise: SQLite with 1 process; PostgreSQL with 1 process and
with 2 (``--workers 2``, where ``remit serve`` has it). Each is driven by a load-generator process
(``bench.loadgen``, mode ``lifecycle``) with 1 and with 4 clients, in interleaved rounds; per call
(POST, GET, PATCH) the p50 and p99 over every call of the rounds. Beside them, from the same load
generator in the same run, a bare FastAPI endpoint returning a constant (req/s with 1 and 4
connections), and, as a line without a bar (decision 0016), the in-process rate: the operations
called directly, one ``db.write()`` each, the job worker draining after each batch.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text

from bench.common import (
    QUICK,
    Table,
    engines,
    median,
    percentile,
    pg_drop,
    progress,
    scale,
    scratch_dir,
)
from bench.loadgen import run_job
from bench.p5_expiry import _pg_admin, _pg_url, build_packages, rid, user_rows
from bench.server import BARE_PATH, RemitServe, Server, serve_workers_supported

USERS = scale(2_000, 100)
PACKAGES = scale(1_000, 10)
HISTORY = scale(20_000, 200)
N_ROUND = scale(120, 6)  # lifecycles per round and client count
ROUNDS = scale(3, 1)
WARMUP = scale(12, 2)
N_IN_PROCESS = scale(300, 5)
IN_PROCESS_ROUNDS = scale(3, 1)
CLIENTS = (1, 4)
BARE_SECONDS = 0.5 if QUICK else 1.5
P99_MS = 50.0
RATE = 40.0
DOMAIN = "p4.bench.example"
APPROVER = rid(9, 0)
HISTORIAN = rid(9, 1)  # the user whose two real requests the past ones are copied from
PG_DB = "remit_bench_p4"


# ---------------------------------------------------------------------------- the world


class World:
    """The packages (id, policy id) and the next unused (user, package) pair of one database."""

    def __init__(self, url: str, packages: list[tuple[str, str]]) -> None:
        self.url, self.packages, self.next = url, packages, 0

    def take(self, n: int) -> list[tuple[int, str, str, str]]:
        """``n`` fresh (user number, user id, package id, policy id): user k mod USERS, the package
        shifted by one each time the users come round, so that no pair repeats."""
        found = []
        for k in range(self.next, self.next + n):
            user, lap = k % USERS, k // USERS
            package, policy = self.packages[(user + lap) % PACKAGES]
            found.append((user, rid(1, user), package, policy))
        self.next += n
        return found


def build(path: Path) -> list[tuple[str, str]]:
    """The world in a new SQLite file: its packages' (id, policy id)."""
    from remit import bootstrap
    from remit.db import Database
    from remit.models.directory import User

    db = Database(f"sqlite:///{path}")
    try:
        bootstrap.upgrade(db)
        now = datetime.now(UTC) - timedelta(days=500)
        specials = [(APPROVER, "approver"), (HISTORIAN, "historian")]
        with db.engine.begin() as conn:
            for n, (user_id, name) in enumerate(specials):
                upn = f"{name}@{DOMAIN}"
                row = next(user_rows(USERS + n, 1, now, DOMAIN))
                conn.execute(
                    insert(User),
                    [row | {"id": user_id, "user_principal_name": upn, "upn_key": upn}],
                )
            conn.execute(insert(User), list(user_rows(0, USERS, now, DOMAIN)))
        made = build_packages(db, PACKAGES, staff=False, approver=APPROVER)["packages"]
        packages = [(p.id, p.policy_id) for p in made]
        add_history(db, packages)
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return packages
    finally:
        db.dispose()


def add_history(db: Any, packages: list[tuple[str, str]]) -> None:
    """HISTORY closed requests of the users, cloned from two real ones (one approved, one
    denied) with Core: delivered (assignment expired since), denied, timed out."""
    from remit.authz.actor import load_actor
    from remit.context import Ctx
    from remit.lifecycle import operations, requests
    from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest, StageApprover

    templates: dict[str, dict[str, Any]] = {}
    for result, (package, policy) in zip(("Approve", "Deny"), packages, strict=False):
        with db.write() as s:
            now = datetime.now(UTC)
            ctx = Ctx(s, load_actor(s.connection(), HISTORIAN, now=now), now)
            made = requests.submit(
                ctx, kind="userAdd", package_id=package, policy_id=policy, target_id=HISTORIAN
            )
            request_id = made.id
        with db.write() as s:
            now = datetime.now(UTC)
            ctx = Ctx(s, load_actor(s.connection(), APPROVER, now=now), now)
            stage = s.execute(
                select(ApprovalStage.id).where(ApprovalStage.request_id == request_id)
            ).scalar_one()
            operations.decide_stage(ctx, request_id, stage, result=result, justification="past")
        with db.engine.connect() as conn:

            def one(table: Any, *where: Any, conn: Any = conn) -> dict[str, Any]:
                return dict(conn.execute(select(table).where(*where)).mappings().one())

            templates[result] = {
                "request": one(AssignmentRequest.__table__, AssignmentRequest.id == request_id),
                "stage": one(ApprovalStage.__table__, ApprovalStage.id == stage),
                "approver": one(StageApprover.__table__, StageApprover.stage_id == stage),
            }
            if result == "Approve":
                templates[result]["assignment"] = one(
                    Assignment.__table__, Assignment.request_id == request_id
                )

    def shifted(row: dict[str, Any], by: timedelta, **values: Any) -> dict[str, Any]:
        moved = {k: (v + by if isinstance(v, datetime) else v) for k, v in row.items()}
        return moved | values

    rows: dict[Any, list[dict[str, Any]]] = {}
    for i in range(HISTORY):
        kind = "Approve" if i % 10 < 6 else "Deny"
        t = templates[kind]
        user = rid(1, (i * 7) % USERS)
        package, policy = packages[(i * 13) % PACKAGES]
        by = -timedelta(days=40 + i % 400, minutes=i % 1440)
        request_id, stage_id = rid(5, i), rid(6, i)
        common = {"access_package_id": package, "policy_id": policy}
        request = shifted(
            t["request"], by, id=request_id, target_id=user, requestor_id=user, **common
        )
        stage = shifted(t["stage"], by, id=stage_id, request_id=request_id)
        if i % 10 == 9:  # nobody decided in time
            request["status"] = "TimedOut"
            stage |= {"review_result": "TimedOut", "reviewed_by": None, "justification": None}
        if kind == "Approve":
            assignment_id = rid(7, i)
            request["assignment_id"] = assignment_id
            a = shifted(t["assignment"], by, id=assignment_id, target_id=user, **common)
            a |= {"request_id": request_id, "state": "expired", "status": "Expired"}
            a |= {"active_key": None, "end_reason": "expired", "expired_at": a["expires_at"]}
            rows.setdefault(Assignment.__table__, []).append(a)
        rows.setdefault(AssignmentRequest.__table__, []).append(request)
        rows.setdefault(ApprovalStage.__table__, []).append(stage)
        rows.setdefault(StageApprover.__table__, []).append(t["approver"] | {"stage_id": stage_id})
    with db.engine.begin() as conn:
        for table in (
            AssignmentRequest.__table__,
            ApprovalStage.__table__,
            StageApprover.__table__,
        ):
            conn.execute(insert(table), rows[table])
        conn.execute(insert(Assignment.__table__), rows[Assignment.__table__])


def copy_to_postgres(sqlite_url: str, pg_url: str) -> None:
    """Migrate the PostgreSQL database, then replace its rows by the SQLite world's, table by
    table (triggers and foreign keys off meanwhile), and move its sequences past the copied ids."""
    from remit import bootstrap
    from remit.db import Base, Database

    db = Database(pg_url)
    try:
        bootstrap.upgrade(db)
    finally:
        db.dispose()
    source, target = create_engine(sqlite_url), create_engine(pg_url)
    try:
        with source.connect() as src, target.begin() as dst:
            dst.execute(text("SET session_replication_role = replica"))
            for table in reversed(Base.metadata.sorted_tables):
                dst.execute(table.delete())
            for table in Base.metadata.sorted_tables:
                found = [dict(r) for r in src.execute(select(table)).mappings()]
                for start in range(0, len(found), 5_000):
                    dst.execute(insert(table), found[start : start + 5_000])
            sequences = dst.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND column_default LIKE 'nextval%'"
                )
            ).all()
            for table_name, column in sequences:
                dst.execute(
                    text(
                        # names read from the catalog just above, not input
                        f"SELECT setval(pg_get_serial_sequence('{table_name}', '{column}'),"  # noqa: S608
                        f' COALESCE((SELECT max("{column}") FROM "{table_name}"), 0) + 1, false)'
                    )
                )
        with target.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        source.dispose()
        target.dispose()


def delivered(url: str, request_ids: list[str]) -> int:
    """How many of ``request_ids`` the database shows delivered."""
    from remit.models.lifecycle import AssignmentRequest as R

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return sum(
                int(
                    conn.execute(
                        select(func.count()).where(
                            R.id.in_(request_ids[i : i + 500]), R.state == "delivered"
                        )
                    ).scalar_one()
                )
                for i in range(0, len(request_ids), 500)
            )
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- in-process


def submit(db: Any, user: str, package: str, policy: str) -> str:
    """One write transaction, as the API's ``operation()`` makes it: ``user`` requests the
    package for themselves; the request's id."""
    from remit.authz.actor import load_actor
    from remit.context import Ctx
    from remit.lifecycle import requests

    with db.write() as s:
        now = datetime.now(UTC)
        ctx = Ctx(s, load_actor(s.connection(), user, now=now), now)
        request = requests.submit(
            ctx, kind="userAdd", package_id=package, policy_id=policy, target_id=user
        )
        return request.id


def approve(db: Any, request_id: str) -> None:
    """One write transaction: the approver approves the request's open stage."""
    from remit.authz.actor import load_actor
    from remit.context import Ctx
    from remit.lifecycle import operations
    from remit.models.lifecycle import ApprovalStage

    with db.write() as s:
        now = datetime.now(UTC)
        ctx = Ctx(s, load_actor(s.connection(), APPROVER, now=now), now)
        stage = s.execute(
            select(ApprovalStage.id).where(
                ApprovalStage.request_id == request_id,
                ApprovalStage.status == "InProgress",
            )
        ).scalar_one()
        operations.decide_stage(ctx, request_id, stage, result="Approve", justification=None)


def in_process(world: World, data_dir: Path, count: int) -> float:
    """Run ``count`` lifecycles through the operations; completed lifecycles per second."""
    from remit import logs
    from remit.db import Database
    from remit.jobs.runner import Worker
    from remit.notify import config
    from remit.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=world.url, log_level="warning")
    logs.configure("warning")
    config.configure(settings)
    db = Database(world.url)
    worker = Worker(db, settings)
    worker.drain()  # the periodic jobs' first runs, outside the timing
    work = world.take(count)
    try:
        started = time.perf_counter()
        for batch in range(0, count, settings.worker_batch):
            for _, user, package, policy in work[batch : batch + settings.worker_batch]:
                approve(db, submit(db, user, package, policy))
            worker.drain()
        seconds = time.perf_counter() - started
    finally:
        config.configure(None)
        db.dispose()
    return count / seconds


# ---------------------------------------------------------------------------- through HTTP


class Tokens:
    """Bearer tokens signed with the key in the servers' data directory, one per user."""

    def __init__(self, data_dir: Path) -> None:
        from remit.settings import Settings
        from remit.tokens import TokenService

        self.service, self.now = TokenService(Settings(data_dir=data_dir)), datetime.now(UTC)
        self.issued: dict[int, str] = {}
        self.approver = self.issue(APPROVER, f"approver@{DOMAIN}")

    def issue(self, user_id: str, upn: str) -> str:
        return self.service.issue(user_id, upn, now=self.now, ttl=timedelta(hours=2))

    def of(self, user: int) -> str:
        if user not in self.issued:
            self.issued[user] = self.issue(rid(1, user), f"user{user}@{DOMAIN}")
        return self.issued[user]


def lifecycles(port: int, world: World, tokens: Tokens, clients: int, n: int) -> dict[str, Any]:
    """``n`` lifecycles with ``clients`` clients; lifecycles/s and the calls' latencies (µs)."""
    work = [[user, tokens.of(i), p, policy] for i, user, p, policy in world.take(n)]
    job = {"mode": "lifecycle", "port": port, "clients": clients, "approver": tokens.approver}
    result = run_job(job | {"work": work})
    if result["failures"]:
        raise RuntimeError(f"P4 through HTTP: {result['failures'][:3]}")
    ended, ids = result["ended"], result["requests"]
    deadline = time.time() + 60
    while (found := delivered(world.url, ids)) < n and time.time() < deadline:
        time.sleep(0.02)
        ended = time.time()
    if found < n:
        raise RuntimeError(f"P4 through HTTP: {found} of {n} delivered 60 s after the last call")
    return {"rate": n / (ended - result["started"]), "latencies_us": result["latencies_us"]}


def bare_rates(port: int) -> dict[int, float]:
    job = {"mode": "rate", "port": port, "paths": [BARE_PATH], "headers": {}}
    job |= {"warmup": 0.2, "seconds": BARE_SECONDS}
    return {c: run_job(job | {"connections": c})["rps"] for c in CLIENTS}


def through_http(
    table: Table,
    name: str,
    server: RemitServe,
    world: World,
    tokens: Tokens,
    bare: dict[int, float],
    gate: bool,
) -> dict[int, float]:
    """Measure one server configuration; its rows; the median lifecycles/s per client count."""
    rates: dict[int, list[float]] = {c: [] for c in CLIENTS}
    calls: dict[int, dict[str, list[float]]] = {c: {} for c in CLIENTS}
    with server:
        lifecycles(server.port, world, tokens, max(CLIENTS), WARMUP)
        for n in range(ROUNDS):
            for c in CLIENTS:
                progress(f"P4 {name}: {c} client(s), round {n + 1} of {ROUNDS}")
                got = lifecycles(server.port, world, tokens, c, N_ROUND)
                rates[c].append(got["rate"])
                for kind, values in got["latencies_us"].items():
                    calls[c].setdefault(kind, []).extend(values)
    found = {c: median(rates[c]) for c in CLIENTS}
    for c in CLIENTS:
        rate, last = found[c], c == max(CLIENTS)
        share = 3 * rate / bare[c]
        table.row(
            f"{name}, {c} client{'s' if c > 1 else ''}: lifecycles",
            f"{rate:,.1f}/s ({3 * rate:,.0f} calls/s, {share:.1%} of bare's req/s)",
            f"≥ {RATE:,.0f}/s" if gate and last else "",
            rate >= RATE if gate and last else None,
        )
        tails = {
            k: (percentile(v, 50) / 1000, percentile(v, 99) / 1000) for k, v in calls[c].items()
        }
        worst = max(p99 for _, p99 in tails.values())
        table.row(
            f"{name}, {c} client{'s' if c > 1 else ''}: p50 / p99 per call",
            "  ".join(f"{k} {p50:.1f} / {p99:.1f} ms" for k, (p50, p99) in tails.items()),
            f"p99 ≤ {P99_MS:.0f} ms" if last else "",
            worst <= P99_MS if last else None,
        )
    ratio = found[max(CLIENTS)] / found[min(CLIENTS)]
    table.row(
        f"{name}: {max(CLIENTS)} clients / 1 client", f"{ratio:.2f}x", "≥ 1.00x", ratio >= 1.0
    )
    return found


# ---------------------------------------------------------------------------- the table


def measure(table: Table, engine: str, url: str, data_dir: Path, world: World) -> None:
    rates = []
    for n in range(IN_PROCESS_ROUNDS):
        progress(f"P4 on {engine}: in-process, round {n + 1} of {IN_PROCESS_ROUNDS}")
        rates.append(in_process(world, data_dir, N_IN_PROCESS))
    table.row(
        f"{engine}, in-process lifecycles (N={N_IN_PROCESS:,} x {IN_PROCESS_ROUNDS})",
        f"{median(rates):,.0f}/s",
        "reported, no bar (0016)",
    )
    tokens = Tokens(data_dir)
    with Server("bare") as server:
        bare = bare_rates(server.port)
    for c, rps in bare.items():
        table.row(
            f"{engine} run: bare FastAPI, {c} connection{'s' if c > 1 else ''}", f"{rps:,.0f} req/s"
        )
    if engine == "SQLite":
        server = RemitServe(data_dir, url)
        through_http(table, "SQLite, 1 process", server, world, tokens, bare, True)
        return
    server = RemitServe(data_dir, url)
    one = through_http(table, "PostgreSQL, 1 process", server, world, tokens, bare, False)
    if not serve_workers_supported():
        table.row("PostgreSQL, 2 processes", "n/a (no --workers)", f"≥ {RATE:.0f}/s")
        return
    server = RemitServe(data_dir, url, workers=2)
    two = through_http(table, "PostgreSQL, 2 processes", server, world, tokens, bare, True)
    ratio = two[max(CLIENTS)] / one[min(CLIENTS)]
    table.row(
        f"PostgreSQL: 2 processes {max(CLIENTS)} clients / 1 process 1 client",
        f"{ratio:.2f}x",
        "≥ 1.70x (issue #13)",
        ratio >= 1.7,
    )


def run() -> Table:
    table = Table(
        "P4 lifecycle: request POST → approval GET → stage PATCH → delivered, through HTTP",
        f"{USERS:,} users, {PACKAGES:,} packages (3 roles each, builtin connector), {HISTORY:,}"
        " past requests; `python -m remit serve` (job worker in-process), a load-generator"
        f" process with 1 and {max(CLIENTS)} keep-alive clients, {ROUNDS} interleaved rounds of"
        f" {N_ROUND} lifecycles; lifecycles/s: median over rounds, counted when the database"
        " shows them delivered; p50/p99 over every call of the rounds.\nbare: a FastAPI endpoint"
        " returning a constant, the same load generator, req/s with as many connections.",
    )
    measured = engines(table)
    scratch = scratch_dir("p4")
    try:
        progress(f"P4: building the world ({USERS:,} users, {PACKAGES:,} packages)")
        started = time.perf_counter()
        packages = build(scratch / "world.db")
        progress(f"P4: built in {time.perf_counter() - started:.0f} s")
        urls = {"SQLite": f"sqlite:///{scratch / 'world.db'}"}
        if "PostgreSQL" in measured:  # copied before SQLite's lifecycles add to the world
            progress("P4: copying the world into PostgreSQL")
            _pg_admin(
                f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)', f'CREATE DATABASE "{PG_DB}"'
            )
            urls["PostgreSQL"] = _pg_url(PG_DB)
            copy_to_postgres(urls["SQLite"], urls["PostgreSQL"])
        for engine in measured:
            measure(table, engine, urls[engine], scratch, World(urls[engine], packages))
    finally:
        if "PostgreSQL" in measured:
            pg_drop(PG_DB)
        shutil.rmtree(scratch, ignore_errors=True)
    return table


if __name__ == "__main__":
    run().print()
