"""P5: expire N assignments, revoke their resource roles, audit each.

The world: ten access packages, each granting a group's Member role, an app role and a site role
(builtin connector), built through the operations; then N users, each holding one delivered
assignment of one package, bulk-inserted with Core as delivery leaves them (the add request, the
assignment with its ``active_key``, three applied grant rows, the group membership, app role
assignment and site role membership with ``valid_until``). Every tenth user also holds a
"staff" package with no end that grants the same group role (reference counting: that role
stays). All N assignments end within the hour before the sweep's clock.

The world is built once per size and settled as a database that has been running a while is
(SQLite: the WAL folded into the file; PostgreSQL: ``VACUUM ANALYZE``, as autovacuum would have
done, so that the planner knows the tables' sizes). Each run sweeps a fresh copy of it (SQLite: a
copy of the file; PostgreSQL: ``CREATE DATABASE … TEMPLATE``) in a child process of its own,
which samples its RSS every 5 ms: the figure is the peak growth over its RSS just before the
sweep. Measured at two sizes: the wired path, the periodic job ``lifecycle.expiry_sweep`` run by
a ``jobs.runner.Worker`` (a chunk of ``sweep.CHUNK`` per run, one transaction each, the job
claimed again at once while a full chunk was due); the same chunks without the job runner
(``lifecycle.sweep.sweep``); and the floor, the same rows written by hand-made SQL on the raw
driver (``bench/p5_floor.py``). After the first run of each, the database is checked: every
assignment ended, its directory rows gone (but the staff role), one "Remove access package
assignment" event each, a fulfilled systemRemove request and an email job each, the audit chain
verifies. (The per-assignment path the job ran before, through ``assignments.end``, measured
89/s on SQLite and 48/s on PostgreSQL at N=2,000 in this benchmark.)

``python -m bench.p5_expiry child`` (JSON on stdin) is the child.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table as SqlTable
from sqlalchemy import create_engine, func, insert, select, text

from bench.common import (
    PG_SERVER,
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

TARGET_RATE = 10_000
FLAT = 1.5  # "flat": the peak at the large size within this factor of the small one's
SIZES = (scale(10_000, 100), scale(100_000, 200))
REPEATS = (scale(3, 1), scale(2, 1))
PACKAGES = scale(10, 2)
LIVE_EVERY = 10
T0 = datetime(2030, 1, 1, tzinfo=UTC)  # the sweep's clock; everything ends in the hour before
BATCH = 5_000
PG_PREFIX = "remit_bench_p5"


def rid(kind: int, n: int) -> str:
    """Deterministic ids, as fast to make as they are to read."""
    return str(uuid.UUID(int=(kind << 96) | n))


# ---------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class Package:
    id: str
    catalog_id: str
    policy_id: str
    roles: list[Any]  # RoleRef: group Member, app role, site role (staff: the group role)


def build_packages(db: Any, count: int, *, staff: bool, approver: str | None = None) -> Any:
    """``count`` packages of three roles each (a group's Member role, an app role, a site role),
    built through the operations as the system; each with a direct-assignment policy of 30 days,
    or, with ``approver``, a self-request policy for all members with one approval stage.
    With ``staff``, also a package per group with its Member role only and no end."""
    from remit.authz.actor import system_actor
    from remit.catalogs import operations as catalogs
    from remit.catalogs import resources
    from remit.context import Ctx
    from remit.directory import operations as d
    from remit.lifecycle import delivery, package_roles
    from remit.models.catalogs import CatalogResource, ResourceRole
    from remit.packages import operations as packages
    from remit.policies import operations as policies

    found: dict[str, list[Package]] = {"packages": [], "staff": []}
    with db.write() as s:
        ctx = Ctx(s, system_actor("bench"), T0 - timedelta(days=60))
        catalog = catalogs.create_catalog(ctx, display_name="Bench catalog")
        for k in range(count):
            group = d.create_group(ctx, display_name=f"Team {k}")
            app = d.create_application(ctx, display_name=f"App {k}", app_roles=[("Reader", "r")])
            site = d.create_site(
                ctx, display_name=f"Site {k}", web_url=f"https://sites.bench.example/{k}"
            )
            roles = {}
            for system, origin, name in (
                ("AadGroup", group.id, "Member"),
                ("AadApplication", app.id, "Reader"),
                ("SharePointOnline", site.id, "Members"),
            ):
                resources.add_resource(
                    ctx, catalog_id=catalog.id, origin_system_name=system, origin_id=origin
                )
                roles[system] = s.execute(
                    select(ResourceRole.id)
                    .join(CatalogResource, CatalogResource.id == ResourceRole.resource_id)
                    .where(
                        CatalogResource.catalog_id == catalog.id,
                        CatalogResource.origin_id == origin,
                        ResourceRole.display_name == name,
                    )
                ).scalar_one()
            kinds = [("packages", list(roles.values()))]
            if staff:
                kinds.append(("staff", [roles["AadGroup"]]))
            for kind, role_ids in kinds:
                name = f"{'Package' if kind == 'packages' else 'Staff'} {k}"
                package = packages.create_package(ctx, display_name=name, catalog_id=catalog.id)
                for role_id in role_ids:
                    package_roles.add_resource_role_scope(ctx, package.id, role_id=role_id)
                body = policy_body(package.id, forever=kind == "staff", approver=approver)
                policy = policies.create_policy(ctx, body)
                refs = delivery.package_roles(s, [package.id])[package.id]
                found[kind].append(Package(package.id, catalog.id, policy.id, refs))
    return found


def policy_body(package_id: str, *, forever: bool, approver: str | None) -> dict[str, Any]:
    expiration = (
        {"type": "noExpiration"} if forever else {"type": "afterDuration", "duration": "P30D"}
    )
    if approver is None:
        return {
            "displayName": "Direct",
            "description": "Direct assignment",
            "accessPackage": {"id": package_id},
            "allowedTargetScope": "notSpecified",
            "specificAllowedTargets": [],
            "expiration": expiration,
            "requestorSettings": {"enableTargetsToSelfAddAccess": False},
            "requestApprovalSettings": {"isApprovalRequiredForAdd": False, "stages": []},
        }
    stage = {
        "durationBeforeAutomaticDenial": "P14D",
        "isApproverJustificationRequired": False,
        "isEscalationEnabled": False,
        "primaryApprovers": [{"@odata.type": "#microsoft.graph.singleUser", "userId": approver}],
    }
    return {
        "displayName": "Members request",
        "description": "Any member may ask; one approval",
        "accessPackage": {"id": package_id},
        "allowedTargetScope": "allMemberUsers",
        "specificAllowedTargets": [],
        "expiration": expiration,
        "requestorSettings": {"enableTargetsToSelfAddAccess": True},
        "requestApprovalSettings": {
            "isApprovalRequiredForAdd": True,
            "isRequestorJustificationRequired": False,
            "stages": [stage],
        },
    }


def user_rows(first: int, count: int, now: datetime, domain: str) -> Iterator[dict[str, Any]]:
    for i in range(first, first + count):
        upn = f"user{i}@{domain}"
        yield {
            "id": rid(1, i),
            "user_principal_name": upn,
            "upn_key": upn,
            "display_name": f"User {i}",
            "mail": upn,
            "user_type": "Member",
            "account_enabled": True,
            "created_at": now,
        }


def _held(i: int, n: int, p: Package, live: bool) -> Iterator[tuple[SqlTable, dict[str, Any]]]:
    """The rows that delivery leaves for user ``i`` holding ``p`` (expiring, or staff: never)."""
    from remit.models.directory import AppRoleAssignment, GroupMember, SiteRoleMember
    from remit.models.lifecycle import Assignment, AssignmentRequest

    created = T0 - timedelta(days=30)
    kind = 5 if live else 2
    user, assignment, request = rid(1, i), rid(kind, i), rid(kind + 1, i)
    expires = None if live else T0 - timedelta(seconds=3600 * (1 - i / n))
    expiration = (
        {"type": "noExpiration", "endDateTime": None, "duration": None}
        if expires is None
        else {"type": "afterDateTime", "endDateTime": expires.isoformat(), "duration": None}
    )
    yield (
        AssignmentRequest.__table__,  # type: ignore[misc]
        {
            "id": request,
            "request_type": "adminAdd",
            "state": "delivered",
            "status": "Fulfilled",
            "access_package_id": p.id,
            "catalog_id": p.catalog_id,
            "policy_id": p.policy_id,
            "assignment_id": assignment,
            "target_id": user,
            "target_email": None,
            "requestor_id": None,
            "justification": None,
            "answers": [],
            "schedule": {"expiration": expiration},
            "created_at": created,
            "completed_at": created,
            "current_stage": None,
            "open_key": None,
            "delivery_error": None,
            "version": 1,
        },
    )
    yield (
        Assignment.__table__,  # type: ignore[misc]
        {
            "id": assignment,
            "access_package_id": p.id,
            "catalog_id": p.catalog_id,
            "policy_id": p.policy_id,
            "target_id": user,
            "state": "delivered",
            "status": "Delivered",
            "start_at": created,
            "expires_at": expires,
            "expiration": expiration,
            "expired_at": None,
            "created_at": created,
            "modified_at": created,
            "request_id": request,
            "ended_by": None,
            "end_reason": None,
            "extension_count": 0,
            "reminders_sent": 3,
            "out_of_scope_since": None,
            "active_key": f"{user}:{p.id}",
            "version": 1,
        },
    )
    if live:
        return  # its one role, the group's, is one of the expiring package's: made below
    for j, role in enumerate(p.roles):
        shared = role.origin_system == "AadGroup" and i % LIVE_EVERY == 0
        until = None if shared else expires
        yield (
            _grants_table(),
            {
                "id": rid(4, 3 * i + j),
                "subject_id": user,
                "origin_system": role.origin_system,
                "resource_origin_id": role.resource_origin_id,
                "role_origin_id": role.role_origin_id,
                "display_name": role.display_name,
                "holders": 2 if until is None else 1,
                "desired": True,
                "valid_until": until,
                "generation": 1,
                "applied_generation": 1,
                "applied_state": "granted",
                "attempts": 0,
                "last_error": None,
                "updated_at": created,
            },
        )
        if role.origin_system == "AadGroup":
            yield (
                GroupMember.__table__,  # type: ignore[misc]
                {
                    "group_id": role.resource_origin_id,
                    "member_id": user,
                    "member_type": "user",
                    "valid_until": until,
                },
            )
        elif role.origin_system == "AadApplication":
            yield (
                AppRoleAssignment.__table__,  # type: ignore[misc]
                {
                    "app_role_id": role.role_origin_id,
                    "principal_id": user,
                    "application_id": role.resource_origin_id,
                    "created_at": created,
                    "valid_until": until,
                },
            )
        else:
            yield (
                SiteRoleMember.__table__,  # type: ignore[misc]
                {
                    "site_role_id": role.role_origin_id,
                    "user_id": user,
                    "created_at": created,
                    "valid_until": until,
                },
            )


def _grants_table() -> SqlTable:
    from remit.models.lifecycle import ResourceGrant

    table: SqlTable = ResourceGrant.__table__  # type: ignore[assignment]
    return table


def build_base(url: str) -> dict[str, list[Package]]:
    """Migrate the empty database at ``url`` and add the packages; them, by kind."""
    from remit import bootstrap
    from remit.db import Database

    db = Database(url)
    try:
        bootstrap.upgrade(db)
        made: dict[str, list[Package]] = build_packages(db, PACKAGES, staff=True)
        return made
    finally:
        db.dispose()


def add_holders(url: str, n: int, made: dict[str, list[Package]]) -> None:
    """Fill a copy of the base with the ``n`` users and what delivery left them."""
    from remit.db import Database
    from remit.models.directory import User

    db = Database(url)
    pkgs, staff = made["packages"], made["staff"]
    users: SqlTable = User.__table__  # type: ignore[assignment]
    try:
        with db.engine.begin() as conn:
            batch: dict[SqlTable, list[dict[str, Any]]] = {}
            for start in range(0, n, BATCH):
                count = min(BATCH, n - start)
                conn.execute(insert(users), list(user_rows(start, count, T0, "p5.bench.example")))
                for i in range(start, start + count):
                    k = i % PACKAGES
                    for table, row in _held(i, n, pkgs[k], live=False):
                        batch.setdefault(table, []).append(row)
                    if i % LIVE_EVERY == 0:
                        for table, row in _held(i, n, staff[k], live=True):
                            batch.setdefault(table, []).append(row)
                for table, rows in batch.items():
                    conn.execute(insert(table), rows)
                batch.clear()
    finally:
        db.dispose()


# ---------------------------------------------------------------------------- copies


class Worlds:
    """On one engine: the migrated base with the packages (built once), the world of each size
    (a copy of the base with its holders), and fresh copies of those for each run."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.dir = scratch_dir("p5")
        self.made: dict[str, list[Package]] = {}
        self.base = ""
        self.templates: dict[int, str] = {}
        self.copies: list[str] = []

    def template(self, n: int) -> str:
        if not self.base:
            progress(f"P5 on {self.engine}: migrating, adding the packages")
            self.base = self._empty("base")
            self.made = build_base(self.base)
            self._settle(self.base)
        if n not in self.templates:
            progress(f"P5 on {self.engine}: adding {n:,} holders")
            started = time.perf_counter()
            url = self._clone(self.base, f"world_{n}")
            add_holders(url, n, self.made)
            self._settle(url)
            self.templates[n] = url
            progress(f"P5 on {self.engine}: built in {time.perf_counter() - started:.0f} s")
        return self.templates[n]

    def copy(self, n: int) -> str:
        url = self._clone(self.template(n), f"copy_{len(self.copies)}")
        self.copies.append(url)
        return url

    def _empty(self, name: str) -> str:
        if self.engine == "SQLite":
            return f"sqlite:///{self.dir / f'{name}.db'}"
        name = f"{PG_PREFIX}_{name}"
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        return _pg_url(name)

    def _clone(self, source: str, name: str) -> str:
        if self.engine == "SQLite":
            path = self.dir / f"{name}.db"
            shutil.copyfile(source.removeprefix("sqlite:///"), path)
            return f"sqlite:///{path}"
        name = f"{PG_PREFIX}_{name}"
        template = source.rsplit("/", 1)[1]
        _pg_admin(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}" TEMPLATE "{template}"',
        )
        return _pg_url(name)

    def _settle(self, url: str) -> None:
        """SQLite: fold the WAL into the file, so that a copy of the file is the database.
        PostgreSQL: what autovacuum does to tables that grew (statistics, visibility map)."""
        if self.engine == "SQLite":
            _checkpoint(url)
        else:
            _pg_admin_in(url, "VACUUM ANALYZE")

    def drop(self, url: str) -> None:
        if self.engine == "SQLite":
            for suffix in ("", "-wal", "-shm"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        else:
            pg_drop(url.rsplit("/", 1)[1])

    def cleanup(self) -> None:
        if self.engine == "PostgreSQL":
            for url in [self.base, *self.templates.values(), *self.copies]:
                if url:
                    pg_drop(url.rsplit("/", 1)[1])
        shutil.rmtree(self.dir, ignore_errors=True)


def _checkpoint(url: str) -> None:
    engine = create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def _pg_url(name: str) -> str:
    return PG_SERVER.rsplit("/", 1)[0] + "/" + name


def _pg_admin(*statements: str) -> None:
    _pg_admin_in(PG_SERVER, *statements)


def _pg_admin_in(url: str, *statements: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


# ---------------------------------------------------------------------------- the child


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Sampler:
    """The process's peak RSS while the block runs, sampled every 5 ms by a thread."""

    def __init__(self) -> None:
        self.peak = self.base = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def child(job: dict[str, Any]) -> dict[str, Any]:
    """Run one sweep on ``job["url"]`` (``job["path"]``: "job" or "sweep"); its time, chunks
    (the run of each transaction, in ms) and memory."""
    import gc

    from remit.db import Database
    from remit.jobs import handlers
    from remit.lifecycle import sweep

    if job["path"] == "floor":
        from bench import p5_floor

        done = p5_floor.run(job["url"], T0, job["chunk"])
        return {**done, "chunks_ms": [], "rss_growth": 0}
    handlers.load_all()
    db = Database(job["url"])
    with db.read() as conn:  # connect, and load what the first statement needs
        conn.execute(select(func.count()).select_from(text("assignments"))).scalar()
    runs = _job_runs(db) if job["path"] == "job" else None
    gc.collect()
    chunks: list[float] = []
    ended = 0
    with Sampler() as memory:
        started = last = time.perf_counter()

        def tick() -> None:
            nonlocal last
            now = time.perf_counter()
            chunks.append((now - last) * 1000)
            last = now

        if runs is not None:
            ended = runs(tick)
        else:
            ended = sweep.sweep(db, lambda: T0, chunk=job["chunk"], on_chunk=lambda _: tick())
        seconds = time.perf_counter() - started
    db.dispose()
    return {
        "ended": ended,
        "seconds": seconds,
        "chunks_ms": chunks,
        "rss_growth": memory.peak - memory.base,
    }


def _job_runs(db: Any) -> Any:
    """The wired path: a worker (clock at ``T0``) claims one job at a time until the
    ``lifecycle.expiry_sweep`` job is done (armed again for its next slot). It is claimed
    before the email jobs it queues: they are due at the same instant, and it is older (with a
    moving clock a worker sends the emails queued before each run first; P5 counts the sweep
    alone). The other periodic jobs run once each on the way (nothing is due for them)."""
    from remit.jobs.runner import Worker, periodic_key
    from remit.models.jobs import Job
    from remit.models.lifecycle import Assignment
    from remit.settings import Settings

    # The worker runs no email job here: its data directory (the outbox) stays unused.
    settings = Settings(data_dir=Path(tempfile.gettempdir()), database_url=db.url)
    worker = Worker(db, settings, clock=lambda: T0, worker_id="bench-p5")
    armed = select(Job.run_after).where(Job.dedupe_key == periodic_key("lifecycle.expiry_sweep"))
    active = select(func.count()).where(Assignment.active_key.is_not(None))
    with db.read() as conn:
        before = int(conn.execute(active).scalar_one())

    def runs(tick: Any) -> int:
        while True:
            worker.run_once(limit=1)
            tick()
            with db.read() as conn:
                next_run = conn.execute(armed).scalar_one_or_none()
            if next_run is not None and next_run.replace(tzinfo=UTC) > T0:
                break
        with db.read() as conn:
            return before - int(conn.execute(active).scalar_one())

    return runs


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """``child(job)`` in a process of its own (quick mode: in this one, to save the start-up)."""
    if QUICK:
        return child(job)
    env = {**os.environ, "PYTHONPATH": python_path()}
    done = subprocess.run(
        [sys.executable, "-m", "bench.p5_expiry", "child"],
        input=json.dumps(job).encode(),
        capture_output=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the P5 child failed: {done.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------- checks


def check(url: str, n: int) -> list[str]:
    """What must hold after expiring the world of ``n``; the problems found."""
    from remit.audit import chain
    from remit.db import Database
    from remit.models.audit import AuditEvent
    from remit.models.directory import AppRoleAssignment, GroupMember, SiteRoleMember
    from remit.models.jobs import Job
    from remit.models.lifecycle import Assignment, AssignmentRequest, ResourceGrant

    live = len(range(0, n, LIVE_EVERY))
    db = Database(url)
    problems: list[str] = []
    try:
        with db.read() as conn:

            def count(query: Any) -> int:
                return int(conn.execute(query).scalar_one())

            def expect(what: str, found: int, wanted: int) -> None:
                if found != wanted:
                    problems.append(f"{what}: {found:,}, expected {wanted:,}")

            a = Assignment
            ended = select(func.count()).where(
                a.end_reason == "expired", a.state == "expired", a.expired_at == a.expires_at
            )
            expect("assignments ended", count(ended), n)
            expect(
                "still active", count(select(func.count()).where(a.active_key.is_not(None))), live
            )
            expect(
                "group memberships left", count(select(func.count()).select_from(GroupMember)), live
            )
            expect("app roles left", count(select(func.count()).select_from(AppRoleAssignment)), 0)
            expect("site roles left", count(select(func.count()).select_from(SiteRoleMember)), 0)
            g = ResourceGrant
            expect(
                "grants revoked",
                count(
                    select(func.count()).where(
                        g.applied_state == "revoked",
                        g.applied_generation == g.generation,
                        g.desired.is_(False),
                    )
                ),
                3 * n - live,
            )
            events = (
                select(AuditEvent.target_id, func.count().label("n"))
                .where(AuditEvent.activity == "Remove access package assignment")
                .group_by(AuditEvent.target_id)
                .subquery()
            )
            expect(
                "assignments with one removal event",
                count(
                    select(func.count())
                    .select_from(events)
                    .join(a, a.id == events.c.target_id)
                    .where(events.c.n == 1)
                ),
                n,
            )
            r = AssignmentRequest
            expect(
                "systemRemove requests fulfilled",
                count(
                    select(func.count()).where(
                        r.request_type == "systemRemove",
                        r.status == "Fulfilled",
                        r.completed_at.is_not(None),
                    )
                ),
                n,
            )
            expect(
                "access-ended emails queued",
                count(select(func.count()).where(Job.kind == "notify.email")),
                n,
            )
            verified = chain.verify(conn)
            if not verified.ok:
                problems.append(f"audit chain: {verified.problems[0]}")
    finally:
        db.dispose()
    return problems


# ---------------------------------------------------------------------------- the table


def measure(table: Table, engine: str) -> None:
    from bench.raw import raw_postgres, raw_sqlite
    from remit.lifecycle import sweep

    chunk = sweep.chunk_size("sqlite" if engine == "SQLite" else "postgresql")
    worlds = Worlds(engine)
    found: dict[str, dict[int, dict[str, Any]]] = {"job": {}, "sweep": {}, "floor": {}}
    try:
        for n, reps in zip(SIZES, REPEATS, strict=True):
            for path, by_size in found.items():
                runs = 1 if path == "floor" else reps
                by_size[n] = _runs(worlds, n, runs, {"path": path, "chunk": chunk})
        raw = (
            raw_sqlite(worlds.dir / "raw.db")
            if engine == "SQLite"
            else raw_postgres(worlds.template(SIZES[0]))
        )
    finally:
        worlds.cleanup()
    table.row(f"{engine}, raw engine in the same run: INSERT + commit", f"{raw:,.0f}/s")

    def rate(path: str, n: int) -> float:
        return median([r["ended"] / r["seconds"] for r in found[path][n]["runs"]])

    def peak(path: str, n: int) -> float:
        return median([r["rss_growth"] for r in found[path][n]["runs"]]) / 2**20

    target = f"≥ {TARGET_RATE:,}/s"
    for n in SIZES:
        job, bare, floor = rate("job", n), rate("sweep", n), rate("floor", n)
        table.row(
            f"{engine}, the expiry_sweep job (worker, a chunk per run), N={n:,}",
            f"{job:,.0f}/s",
            target,
            job >= TARGET_RATE,
        )
        table.row(
            f"{engine}, the same chunks without the job runner (sweep.sweep), N={n:,}",
            f"{bare:,.0f}/s",
        )
        table.row(
            f"{engine}, the floor: the same rows, hand-made SQL on the raw driver, N={n:,}",
            f"{floor:,.0f}/s (the job: {job / floor:.0%} of it)",
            "reference: what the database does",
        )
    small, big = SIZES
    for path, what in (("job", "the job"), ("sweep", "without the runner")):
        growth = peak(path, big) / max(peak(path, small), 0.1)
        table.row(
            f"{engine}, {what}: peak RSS growth, N={small:,} → {big:,}",
            f"{peak(path, small):.1f} → {peak(path, big):.1f} MiB ({growth:.2f}x)",
            f"flat (≤ {FLAT:g}x)",
            growth <= FLAT,
        )
    # Every chunk but each sweep's last (partial) one; or that one, if it is all there is.
    chunk_ms = sorted(
        ms for r in found["sweep"][big]["runs"] for ms in (r["chunks_ms"][:-1] or r["chunks_ms"])
    )
    table.row(
        f"{engine}, one chunk of {chunk:,} (its write transaction), N={big:,}",
        f"p50 {median(chunk_ms):.0f} ms, max {chunk_ms[-1]:.0f} ms",
        "< ~50 ms (SQLite's write lock)" if engine == "SQLite" else "",
        (median(chunk_ms) < 50) if engine == "SQLite" else None,
    )
    problems = [p for by_size in found.values() for n in SIZES for p in by_size[n]["problems"]]
    table.row(
        f"{engine}, end state after the first run of each",
        "all checks hold" if not problems else "; ".join(problems[:3]),
        "every check",
        not problems,
    )


def _runs(worlds: Worlds, n: int, reps: int, job: dict[str, Any]) -> dict[str, Any]:
    runs, problems = [], []
    what = {"job": "the expiry_sweep job", "sweep": "sweep.sweep", "floor": "the floor"}[
        job["path"]
    ]
    for rep in range(reps):
        url = worlds.copy(n)
        progress(f"P5 on {worlds.engine}: {what}, N={n:,}, run {rep + 1} of {reps}")
        result = run_child({**job, "url": url})
        if result["ended"] != n:
            problems.append(f"{what} N={n:,}: ended {result['ended']:,}")
        runs.append(result)
        if rep == 0:
            problems += [f"{what} N={n:,}: {p}" for p in check(url, n)]
        worlds.drop(url)
    return {"runs": runs, "problems": problems}


def run() -> Table:
    from remit.lifecycle import sweep

    table = Table(
        "P5 expiry sweep: expire N assignments, revoke their roles, audit each",
        f"{PACKAGES} packages x 3 roles (builtin connector); N users with one expiring"
        f" assignment each, every {LIVE_EVERY}th also holding a no-end package that shares the"
        " group role; each run on a fresh copy, in a child process (RSS sampled every 5 ms)."
        "\nthe lifecycle.expiry_sweep job run by a worker, one transaction per chunk (of"
        f" {sweep.CHUNK['sqlite']:,} on SQLite, {sweep.CHUNK['postgresql']:,} on PostgreSQL);"
        f" medians of {REPEATS[0]} runs (N={SIZES[0]:,}) and {REPEATS[1]} (N={SIZES[1]:,}).",
    )
    for engine in engines(table):
        measure(table, engine)
    return table


if __name__ == "__main__":
    if sys.argv[1:] == ["child"]:
        print(json.dumps(child(json.load(sys.stdin))))
    else:
        run().print()
