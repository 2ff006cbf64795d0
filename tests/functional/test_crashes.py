"""R7 crash consistency: a crash at any named point loses and duplicates nothing.

For each point of ``remit.faults.POINTS`` and each of ``REMIT_CRASH_RUNS`` runs (20 unless told),
a fresh user goes through the lifecycle of the issue #3 scenario: either a ``userAdd`` request
approved by the manager and then the catalog owner, or an administrator's direct assignment;
the builtin connector delivers the three resource roles in the transaction that creates the
assignment, and the worker sends the emails; the assignment ends by an administrator's removal or
by the expiry sweep. One step of that run, one that passes the point, runs in a process of
its own with ``REMIT_CRASH_AT=<point>`` and must die there (exit code 77: a point that is never
reached fails the test). Then the "restart": the clock moves past the worker lease, the client
retries what it never got an answer for, a worker drains the queue, and the run goes on.

Checked after every crash: the crashed process left nothing in the audit log (its transaction
did not commit). Checked once the assignment is delivered and again once it has ended:

- nothing lost: exactly one assignment and one add request for the user, delivered (then ended,
  with exactly one removal request, fulfilled); the roles are in the directory while it is
  active and gone after;
- nothing duplicated: at most one active assignment and one open request per (subject,
  package), anywhere; no audit event twice for one transition; no job left running or failed;
- no orphan memberships: for every user of the test, the directory rows of the package's roles
  (group members, app role assignments, site role members) are exactly the grants whose
  ``desired`` is true, and every grant is applied;
- the audit chain verifies.

Each point has its own world (``build_campaign``); its runs reuse it with a fresh user each.
The crashing processes are forks of one process that imported remit once (``crash_support``).

Two more: each client step committed by a process that dies before answering, retried by the
client (refused, never done twice); and three worker crashes in a row in one batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from remit import faults
from remit.audit.chain import verify
from remit.authz.actor import system_actor
from remit.connectors import registry
from remit.connectors.base import RoleRef
from remit.context import Ctx
from remit.db import Database
from remit.directory import operations as d
from remit.errors import Conflict
from remit.jobs.runner import Worker
from remit.lifecycle import delivery
from remit.models.audit import AuditEvent, AuditHead
from remit.models.jobs import Job
from remit.models.lifecycle import Assignment, AssignmentRequest, ResourceGrant
from remit.notify import config
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.crash_support import CLIENT_STEPS, request, run_step
from tests.factories import DOMAIN, Tenant
from tests.lifecycle_support import build_campaign

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("REMIT_CRASH_RUNS", "20"))
CHILD_TIMEOUT = 600.0  # a hung child (a lock never released) fails the test instead of hanging

# The steps of a run that pass each point; run n crashes in the (n mod len)-th of them.
WHERE: dict[str, tuple[str, ...]] = {
    "request.after_insert": ("submit", "admin_add"),
    "request.before_commit": ("submit", "admin_add"),
    "stage.after_decision": ("approve1", "approve2"),
    "assignment.after_create": ("approve2", "admin_add"),
    # The builtin connector delivers in the transaction that creates the assignment; what the
    # worker then has of a request is its emails (an administrator's direct assignment sends
    # none once delivered, spec §6.9), and those jobs enqueue nothing and are I/O jobs (no
    # finishing transaction of their own).
    "job.after_enqueue": ("submit", "approve2", "remove"),
    "job.after_claim": ("deliver@request", "expire"),
    "job.before_finish": ("expire",),
    "connector.before_call": ("approve2", "admin_add", "remove"),
    "connector.after_call": ("approve2", "admin_add", "remove"),
    "expiry.after_transition": ("expire",),
    "audit.after_append": (
        "submit",
        "approve1",
        "approve2",
        "admin_add",
        "remove",
        "expire",
    ),
    "removal.after_revoke": ("remove", "expire"),
}
FLOWS = {
    "request": ("submit", "approve1", "approve2", "deliver"),
    "admin": ("admin_add", "deliver"),
}
ADD_TYPES = ("userAdd", "adminAdd")
LOST_ANSWER = "answer.lost"  # not a crash point: the step commits, then its process is gone
REMOVAL_TYPE = {"remove": "adminRemove", "expire": "systemRemove"}


@dataclass(frozen=True)
class Plan:
    point: str
    run: int
    steps: tuple[str, ...]
    crash: str

    @property
    def end(self) -> str:
        return self.steps[-1]


def plan(point: str, run: int, where: tuple[str, ...]) -> Plan:
    """Run ``run`` of ``point``: which step crashes (``step`` or ``step@flow``), in which flow,
    ended how. The runs take turns over the steps, the flows and the two ends."""
    crash, _, only = where[run % len(where)].partition("@")
    variant = run // len(where)
    if only:
        flow = only
    elif crash in FLOWS["request"][:3]:
        flow = "request"
    elif crash == "admin_add":
        flow = "admin"
    else:
        flow = ("request", "admin")[(variant // 2) % 2]
    end = crash if crash in REMOVAL_TYPE else ("remove", "expire")[variant % 2]
    return Plan(point, run, (*FLOWS[flow], end), crash)


class Zygote:
    """``python -m tests.crash_support serve``: one fork per crash, remit imported once."""

    def __init__(self, log: Path) -> None:
        self.log_path = log
        self._log: IO[str] = log.open("w")
        env = {k: v for k, v in os.environ.items() if k != "REMIT_CRASH_AT"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_support", "serve"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )

    def run(self, job: dict[str, Any], point: str | None) -> tuple[int, str]:
        """Run one step in a process of its own, armed to die at ``point`` (None: not armed):
        its exit code and what it wrote to stderr."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        offset = self.log_path.stat().st_size
        self.proc.stdin.write(json.dumps({**job, "point": point}) + "\n")
        self.proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(CHILD_TIMEOUT):
                pytest.fail(f"the process crashing at {point} did not end")
        line = self.proc.stdout.readline()
        assert line, f"the zygote died: {self.stderr_since(offset)}"
        return int(json.loads(line)["rc"]), self.stderr_since(offset)

    def stderr_since(self, offset: int) -> str:
        self._log.flush()
        with self.log_path.open() as f:
            f.seek(offset)
            return f.read()[-4000:]

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self._log.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    z = Zygote(tmp_path_factory.mktemp("crashes") / "children.log")
    yield z
    z.close()


@dataclass
class World:
    t: Tenant
    db: Database
    settings: Settings
    clock: SteppingClock
    ids: dict[str, str]
    roles: list[RoleRef]
    users: list[str] = field(default_factory=list)

    def drain(self) -> None:
        Worker(self.db, self.settings, clock=self.clock, worker_id="crash-test").drain()

    def new_user(self, point: str, run: int) -> str:
        alias = f"crash-{point.replace('.', '-').replace('_', '-')}-{run}"
        with self.db.write() as s:
            root = Ctx(s, system_actor("test"), self.clock())
            uid = d.create_user(
                root,
                user_principal_name=f"{alias}@{DOMAIN}",
                display_name=alias,
                department="Marketing",
                manager_id=self.ids["omar"],
            ).id
            d.add_group_member(root, self.ids["marketing"], uid)
        self.users.append(uid)
        return uid

    def audit_head(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(AuditHead.seq), 0))).scalar_one())


@pytest.fixture
def world(
    tenant: Tenant, settings: Settings, clock: SteppingClock, db: Database
) -> Iterator[World]:
    config.configure(settings)  # emails go to the session's outbox, in this process too
    c = build_campaign(tenant)
    ids = {
        "package": c.package,
        "contractors": c.contractors,
        **{k: tenant.ids[k] for k in ("omar", "mamta", "alex", "marketing")},
    }
    with db.write() as s:
        roles = delivery.package_roles(s, [c.package])[c.package]
    assert len(roles) == 3, roles
    w = World(tenant, db, settings, clock, ids, roles)
    w.drain()  # the queue idle, the periodic kinds armed: the world as a running service has it
    yield w
    config.configure(None)


def test_every_named_point_is_exercised() -> None:
    assert len(faults.POINTS) >= 12
    assert set(WHERE) == set(faults.POINTS)
    assert RUNS >= 1


@pytest.mark.parametrize("point", faults.POINTS)
def test_a_crash_loses_and_duplicates_nothing(point: str, world: World, zygote: Zygote) -> None:
    for run in range(RUNS):
        one_run(world, zygote, plan(point, run, WHERE[point]), armed=True)


def test_an_answer_lost_after_the_commit_is_retried_without_duplicates(
    world: World, zygote: Zygote
) -> None:
    """The other side of every client step: the process commits, then dies before answering
    (no named point is needed for that). The client's retry must be refused, not repeated."""
    for run in range(RUNS):
        one_run(world, zygote, plan(LOST_ANSWER, run, CLIENT_STEPS), armed=False)


def test_a_batch_survives_three_worker_crashes_in_a_row(world: World, zygote: Zygote) -> None:
    """Every job a worker claims is charged an attempt at the claim, so each crash of the worker
    counts against every job of its batch, whichever job it died in. Three in a row (a job
    that kills the process, a crash loop, three restarts) must not lose what the batch holds
    (here the emails of an approved request): its jobs have attempts to spare, and end done,
    not failed."""
    uid = world.new_user("repeat", 0)
    ids = {**world.ids, "user": uid}
    for step in FLOWS["request"][:3]:
        run_step(world.db, world.settings, world.clock(), step, ids)
    for n in range(3):
        job = request(
            "deliver",
            url=world.db.url,
            now=world.clock(),
            data_dir=world.settings.data_dir,
            ids=ids,
        )
        rc, stderr = zygote.run(job, "job.after_claim")
        assert rc == faults.EXIT_CODE, f"crash {n + 1}: exit code {rc}\n{stderr}"
        world.clock.advance(seconds=world.settings.worker_lease_seconds + 1)
    world.drain()
    check(world, uid, "three crashes at job.after_claim", ended_by=None)


def one_run(w: World, zygote: Zygote, p: Plan, *, armed: bool) -> None:
    uid = w.new_user(p.point, p.run)
    ids = {**w.ids, "user": uid}
    where = f"{p.point}, run {p.run}, crash in {p.crash} of {'/'.join(p.steps)}"
    for i, step in enumerate(p.steps):
        if step == "expire":
            w.clock.advance(days=91)
        if step == p.crash:
            head = w.audit_head()
            job = request(step, url=w.db.url, now=w.clock(), data_dir=w.settings.data_dir, ids=ids)
            rc, stderr = zygote.run(job, p.point if armed else None)
            if armed:
                assert rc == faults.EXIT_CODE, (
                    f"{where}: exit code {rc}, not {faults.EXIT_CODE}"
                    + (": the point was never reached" if rc == 0 else "")
                    + f"\n{stderr}"
                )
                assert w.audit_head() == head, f"{where}: the crashed transaction left events"
            else:
                assert rc == 0, f"{where}: exit code {rc}\n{stderr}"
                assert w.audit_head() > head, f"{where}: the step committed nothing"
            restart(w, step, ids, committed=not armed)
        elif step in CLIENT_STEPS:
            run_step(w.db, w.settings, w.clock(), step, ids)
            # After the last approval or a direct assignment the queue holds the delivery: it
            # is the next step's (so a crash in it meets the sync job and nothing else).
            if p.steps[i + 1 : i + 2] != ("deliver",):
                w.drain()
        else:
            w.drain()
        if step == "deliver":
            check(w, uid, where, ended_by=None)
    check(w, uid, where, ended_by=p.end)


def restart(w: World, step: str, ids: dict[str, str], *, committed: bool) -> None:
    """What follows a crash: leases run out, the client tries again, a worker drains."""
    w.clock.advance(seconds=w.settings.worker_lease_seconds + 1)
    if step in CLIENT_STEPS:
        # The answer never arrived: the client sends the same call again. Done already, it is
        # refused (Conflict) rather than done twice.
        with pytest.raises(Conflict) if committed else contextlib.nullcontext():
            run_step(w.db, w.settings, w.clock(), step, ids)
    w.drain()


def check(w: World, uid: str, where: str, *, ended_by: str | None) -> None:
    """The invariants, for the run's user and across every user of the test so far."""
    package = w.ids["package"]
    with Session(w.db.engine) as s:
        now = w.clock()
        # Nothing lost, nothing doubled, for this run's user.
        assignments = list(
            s.execute(
                select(Assignment).where(
                    Assignment.target_id == uid, Assignment.access_package_id == package
                )
            ).scalars()
        )
        assert len(assignments) == 1, f"{where}: {len(assignments)} assignments"
        a = assignments[0]
        if ended_by is None:
            assert (a.state, a.active_key is not None) == ("delivered", True), (where, a.state)
        else:
            assert (a.state, a.active_key) == ("expired", None), (where, a.state)
        reqs = list(
            s.execute(select(AssignmentRequest).where(AssignmentRequest.target_id == uid)).scalars()
        )
        adds = [r for r in reqs if r.request_type in ADD_TYPES]
        assert [(r.state, r.open_key) for r in adds] == [("delivered", None)], (where, adds)
        assert adds[0].assignment_id == a.id, where
        removals = [r for r in reqs if r.request_type not in ADD_TYPES]
        expected = [] if ended_by is None else [(REMOVAL_TYPE[ended_by], "delivered")]
        assert [(r.request_type, r.state) for r in removals] == expected, where

        # At most one active assignment and one open request per (subject, package), anywhere.
        doubled = s.execute(
            select(Assignment.target_id, Assignment.access_package_id)
            .where(Assignment.active_key.is_not(None))
            .group_by(Assignment.target_id, Assignment.access_package_id)
            .having(func.count() > 1)
        ).all()
        assert doubled == [], f"{where}: several active assignments: {doubled}"
        open_twice = s.execute(
            select(AssignmentRequest.target_id, AssignmentRequest.access_package_id)
            .where(AssignmentRequest.open_key.is_not(None))
            .group_by(AssignmentRequest.target_id, AssignmentRequest.access_package_id)
            .having(func.count() > 1)
        ).all()
        assert open_twice == [], f"{where}: several open requests: {open_twice}"

        # The queue drained: nothing running (a crashed claim was taken over), nothing failed,
        # nothing due.
        stuck = s.execute(
            select(Job.id, Job.kind, Job.status, Job.last_error).where(
                (Job.status != "queued") | (Job.run_after <= now)
            )
        ).all()
        assert stuck == [], f"{where}: jobs not done: {stuck}"

        # Every grant applied; the directory holds exactly the desired ones (no orphans).
        grants = list(
            s.execute(select(ResourceGrant).where(ResourceGrant.subject_id.in_(w.users))).scalars()
        )
        pending = [
            (g.subject_id, g.role_origin_id, g.applied_state)
            for g in grants
            if g.applied_generation != g.generation or g.applied_state == "failed"
        ]
        assert pending == [], f"{where}: grants not applied: {pending}"
        users = set(w.users)
        for role in w.roles:
            desired = {
                g.subject_id
                for g in grants
                if g.desired
                and (g.origin_system, g.role_origin_id) == (role.origin_system, role.role_origin_id)
            }
            held = registry.builtin().holders(s, role) & users
            assert held == desired, (
                f"{where}: {role.display_name}: orphans {sorted(held - desired)}, "
                f"missing {sorted(desired - held)}"
            )
            assert (uid in held) == (ended_by is None), f"{where}: {role.display_name}"

        # One audit event per transition, and the chain verifies.
        events = s.execute(
            select(AuditEvent.activity, AuditEvent.target_id, AuditEvent.details).where(
                AuditEvent.subject_id == uid
            )
        ).all()
    seen = Counter((act, target, (details or {}).get("stage")) for act, target, details in events)
    twice = [key for key, n in seen.items() if n > 1]
    assert twice == [], f"{where}: audit events recorded twice: {twice}"
    activities = Counter(act for act, _, _ in events)
    assert activities["Ready to fulfill access package assignment request"] == 1, where
    assert activities["Fulfill access package assignment"] == 1, where
    assert activities["Remove access package assignment"] == int(ended_by is not None), where
    with w.db.read() as conn:
        result = verify(conn)
    assert result.ok, f"{where}: {result.problems}"
