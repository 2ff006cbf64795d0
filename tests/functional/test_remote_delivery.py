"""Delivery to remote targets (docs/decisions/0025): a resource routed to a target of a remote
kind is delivered by the worker in three steps — claim the grant rows and commit, call the
target with no transaction open, record the outcome if the generation is still the one claimed
— while the resources without a route are delivered by the builtin target in the transaction
that changes the assignments.

The remote target is ``lifecycle_support.Flaky``: a peer that keeps its state in remit's
directory tables, written in short transactions of its own (so on SQLite a call made while the
worker held the write lock could not write at all). Its ``during`` hook probes the database
while a call is in flight, and may change the assignments then, as another client would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, event, select, text, update
from sqlalchemy.exc import OperationalError

from remit.authz.actor import system_actor
from remit.connectors import registry, targets
from remit.connectors.base import ConnectorError, RoleRef
from remit.context import Ctx
from remit.db import Database
from remit.errors import Conflict
from remit.jobs.handlers import load_all
from remit.jobs.registry import REGISTRY, Steps, stepwise
from remit.jobs.runner import Worker
from remit.lifecycle import delivery, sweep
from remit.models.delivery import BUILTIN_TARGET_ID, DeliveryTarget
from remit.models.jobs import Job
from remit.models.lifecycle import AssignmentRequest, ResourceGrant
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant
from tests.lifecycle_support import (
    Campaign,
    Flaky,
    admin_add,
    build_campaign,
    contractors_policy,
    holdings,
    routed,
    worker,
)


@dataclass
class World:
    c: Campaign
    flaky: Flaky
    target: str  # the remote target's id
    package: str  # campaigns' Member (routed to the remote target) and legal's (not)
    policy: str
    seen: list[dict[str, Any]] = field(default_factory=list)  # what the probe found, per call

    @property
    def t(self) -> Tenant:
        return self.c.t

    def member(self, group: str) -> str:
        return f"Member_{self.t.ids[group]}"


@pytest.fixture
def world(db: Database, app_client: TestClient, clock: SteppingClock) -> Iterator[World]:
    c = build_campaign(Tenant.build(db, app_client, clock))
    t = c.t
    r = t.add_resource("admin", c.catalog, "AadGroup", t.ids["legal"])
    assert r.status_code == 201, r.text
    listed = t.get("mamta", f"{EM}/catalogs/{c.catalog}/resourceRoles", **{"$expand": "resource"})
    roles = {(x["resource"]["originId"], x["displayName"]): x for x in listed.json()["value"]}
    # The package's roles, by the names ``new_package`` takes.
    c.roles = {
        "campaigns": roles[(t.ids["campaigns"], "Member")],
        "legal": roles[(t.ids["legal"], "Member")],
    }
    package = c.new_package("mamta", "Two groups", {"campaigns", "legal"})
    policy = c.policy("mamta", {**contractors_policy(package), "displayName": "Two groups"})
    flaky = Flaky(db)
    # Only the campaigns group goes to the remote target; legal stays with the builtin one.
    with routed(db, "AadGroup", flaky, [t.ids["campaigns"]]) as target:
        yield World(c, flaky, target, package, policy)


def assign(w: World, alias: str) -> str:
    """Alex assigns ``alias`` the package directly; the assignment's id."""
    r = admin_add(w.t, "alex", alias, w.package, w.policy)
    assert r.status_code == 201, r.text
    return assignment_of(w, alias)


def assignment_of(w: World, alias: str) -> str:
    r = w.t.get(alias, f"{EM}/assignments/filterByCurrentUser(on='target')")
    found = [a for a in r.json()["value"] if a["state"] != "expired"]
    assert len(found) == 1, found
    return str(found[0]["id"])


def state_of(w: World, assignment: str) -> str:
    return str(w.t.get("alex", f"{EM}/assignments/{assignment}").json()["state"])


def remove(w: World, assignment: str) -> None:
    r = w.t.post(
        "alex",
        f"{EM}/assignmentRequests",
        {"requestType": "adminRemove", "assignment": {"id": assignment}},
    )
    assert r.status_code == 201, r.text


def grant_row(w: World, alias: str, group: str) -> ResourceGrant:
    with w.t.db.session() as s:
        row = s.execute(
            select(ResourceGrant).where(
                ResourceGrant.subject_id == w.t.ids[alias],
                ResourceGrant.role_origin_id == w.member(group),
            )
        ).scalar_one()
        s.expunge(row)
        return row


def probe(w: World, subject: str) -> dict[str, Any]:
    """What another client sees while a call is in flight: connections the worker holds, the
    claimed grant row, and whether a write transaction (SQLite) or the subject's lock and row
    locks (PostgreSQL) can be taken at once."""
    db = w.t.db
    found: dict[str, Any] = {"checked_out": db.engine.pool.checkedout()}
    with db.read() as conn:
        row = conn.execute(
            select(
                ResourceGrant.claim_token,
                ResourceGrant.claimed_generation,
                ResourceGrant.claimed_until,
                ResourceGrant.generation,
                ResourceGrant.applied_generation,
            ).where(
                ResourceGrant.subject_id == subject,
                ResourceGrant.role_origin_id == w.member("campaigns"),
            )
        ).one()
    found["claim"] = row._asdict()
    if db.is_sqlite:
        path = db.engine.url.database
        assert path
        raw = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")  # "database is locked" if a writer held it
            raw.execute("ROLLBACK")
            found["write_lock_free"] = True
        except sqlite3.OperationalError as e:
            found["write_lock_free"] = str(e)
        finally:
            raw.close()
    else:
        with db.engine.connect() as conn:
            found["subject_lock_free"] = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))"),
                {"k": f"remit-subject:{subject.lower()}"},
            ).scalar_one()
            try:
                locked = conn.execute(
                    text("SELECT id FROM resource_grants WHERE subject_id = :s FOR UPDATE NOWAIT"),
                    {"s": subject},
                ).all()
                found["rows_lock_free"] = len(locked) > 0
            except OperationalError as e:
                found["rows_lock_free"] = str(e).splitlines()[0]
            conn.rollback()
    return found


def on_first(w: World, what: str, act: Callable[[str, str, RoleRef], None]) -> None:
    """Run ``act`` during the first call of kind ``what`` (then probe nothing more)."""
    done: list[bool] = []

    def during(kind: str, subject: str, role: RoleRef) -> None:
        if kind == what and not done:
            done.append(True)
            act(kind, subject, role)

    w.flaky.during = during


# ---------------------------------------------------------------------------------------------


def test_a_routed_resource_is_delivered_by_the_worker_with_nothing_open_during_the_call(
    world: World, settings: Settings, clock: SteppingClock
) -> None:
    w, t = world, world.t
    carl = t.ids["carl"]
    w.flaky.during = lambda kind, subject, role: w.seen.append(probe(w, subject))
    aid = assign(w, "carl")
    # The builtin target delivered legal in the assigning transaction; campaigns waits.
    assert holdings(t, "carl") == {"group:legal"}
    assert state_of(w, aid) == "delivering"
    assert w.flaky.log == []
    worker(t, settings).drain()
    assert w.flaky.log == [("grant", carl, w.member("campaigns"))]
    [seen] = w.seen
    # During the call: no connection of the worker's checked out, the row claimed for the
    # generation being applied, with the worker's lease, and nothing locked.
    assert seen["checked_out"] == 0, seen
    claim = seen["claim"]
    assert claim["claim_token"] is not None
    assert claim["claimed_generation"] == claim["generation"] > claim["applied_generation"]
    assert claim["claimed_until"] == clock.now + timedelta(seconds=settings.worker_lease_seconds)
    if t.db.is_sqlite:
        assert seen["write_lock_free"] is True, seen
    else:
        assert seen["subject_lock_free"] is True
        assert seen["rows_lock_free"] is True
    # Recorded afterwards: applied, the claim released, the assignment delivered.
    row = grant_row(w, "carl", "campaigns")
    assert (row.applied_state, row.applied_generation) == ("granted", row.generation)
    assert (row.claim_token, row.claimed_generation, row.claimed_until) == (None, None, None)
    assert row.target_id == w.target
    assert holdings(t, "carl") == {"group:legal", "group:campaigns"}
    assert state_of(w, aid) == "delivered"


def test_routing_is_per_resource(world: World, settings: Settings) -> None:
    w, t = world, world.t
    assign(w, "carl")
    assert grant_row(w, "carl", "campaigns").target_id == w.target
    assert grant_row(w, "carl", "legal").target_id == BUILTIN_TARGET_ID
    assert grant_row(w, "carl", "legal").applied_state == "granted", "in the same transaction"
    assert grant_row(w, "carl", "campaigns").applied_state == "none", "waits for the worker"
    worker(t, settings).drain()
    # Only the routed group went through the remote target, both ways.
    remove(w, assignment_of(w, "carl"))
    assert holdings(t, "carl") == {"group:campaigns"}, "legal revoked at once, campaigns waits"
    worker(t, settings).drain()
    assert holdings(t, "carl") == set()
    carl, member = t.ids["carl"], w.member("campaigns")
    assert w.flaky.log == [("grant", carl, member), ("revoke", carl, member)]


def test_a_revoke_arriving_while_the_grant_call_is_in_flight_wins(
    world: World, settings: Settings
) -> None:
    w, t = world, world.t
    carl, member = t.ids["carl"], w.member("campaigns")
    aid = assign(w, "carl")
    # While the target grants, an administrator removes the assignment (a write transaction
    # of its own, which nothing the worker holds stands in the way of).
    on_first(w, "grant", lambda kind, subject, role: remove(w, aid))
    worker(t, settings).drain()
    # The grant landed at the target, but its outcome was for an older generation: the worker
    # applied the newest desire next, and the target ends up revoked.
    assert w.flaky.log == [("grant", carl, member), ("revoke", carl, member)]
    assert holdings(t, "carl") == set()
    row = grant_row(w, "carl", "campaigns")
    assert (row.desired, row.applied_state, row.applied_generation) == (
        False,
        "revoked",
        row.generation,
    )
    assert row.claim_token is None
    with t.db.read() as conn:
        removal = conn.execute(
            select(AssignmentRequest.state).where(
                AssignmentRequest.request_type == "adminRemove",
                AssignmentRequest.target_id == carl,
            )
        ).scalar_one()
        left = conn.execute(select(Job.kind, Job.status)).all()
    assert removal == "delivered"
    assert [k for k, _ in left if k == delivery.SYNC_JOB] == []


def test_a_grant_arriving_while_the_revoke_call_is_in_flight_wins(
    world: World, settings: Settings
) -> None:
    w, t = world, world.t
    carl, member = t.ids["carl"], w.member("campaigns")
    aid = assign(w, "carl")
    worker(t, settings).drain()
    assert holdings(t, "carl") == {"group:legal", "group:campaigns"}
    w.flaky.log.clear()
    remove(w, aid)
    # While the target revokes, an administrator assigns the package again.
    on_first(w, "revoke", lambda kind, subject, role: assign(w, "carl"))
    worker(t, settings).drain()
    assert w.flaky.log == [("revoke", carl, member), ("grant", carl, member)]
    assert holdings(t, "carl") == {"group:legal", "group:campaigns"}
    row = grant_row(w, "carl", "campaigns")
    assert (row.desired, row.applied_state, row.applied_generation) == (
        True,
        "granted",
        row.generation,
    )
    assert state_of(w, assignment_of(w, "carl")) == "delivered"


def test_a_live_claim_keeps_other_workers_off_and_a_dead_workers_call_is_repeated(
    world: World, settings: Settings, clock: SteppingClock
) -> None:
    w, t = world, world.t
    carl, member = t.ids["carl"], w.member("campaigns")
    aid = assign(w, "carl")
    lease = timedelta(seconds=settings.worker_lease_seconds)
    # A worker claims and calls, then dies before recording the outcome.
    with t.db.write() as s:
        dead = delivery.claim(Ctx(s, system_actor("worker"), clock()), carl, lease=lease)
    assert delivery.call(dead, clock()) == {grant_row(w, "carl", "campaigns").id: None}
    assert w.flaky.log == [("grant", carl, member)]
    # Another worker runs the subject's sync job: the row is claimed, so it makes no call and
    # comes back when the claim's lease runs out.
    worker(t, settings).drain()
    assert w.flaky.log == [("grant", carl, member)]
    with t.db.read() as conn:
        (run_after,) = conn.execute(
            select(Job.run_after).where(Job.kind == delivery.SYNC_JOB, Job.status == "queued")
        ).one()
    assert run_after == clock.now + lease
    assert state_of(w, aid) == "delivering"
    # The lease runs out: the claim is taken over and the call made again (it is idempotent).
    clock.advance(seconds=lease.total_seconds() + 1)
    worker(t, settings).drain()
    assert w.flaky.log == [("grant", carl, member)] * 2
    assert state_of(w, aid) == "delivered"
    # The dead worker's outcome, recorded late, no longer counts: the claim is not its own.
    with t.db.write() as s:
        late = {grant_row(w, "carl", "campaigns").id: ConnectorError("late", permanent=True)}
        delivery.record(Ctx(s, system_actor("worker"), clock()), carl, dead, late)
    row = grant_row(w, "carl", "campaigns")
    assert (row.applied_state, row.last_error) == ("granted", None)


def test_a_calls_outcome_is_recorded_even_when_the_jobs_lease_was_taken_during_it(
    world: World, settings: Settings
) -> None:
    """The claim token, not the job's lease, guards the record: a worker whose job was taken
    over while it called the target still records what the target did (the row carries its
    token), instead of throwing the outcome away and leaving the call to be repeated."""
    w, t = world, world.t

    def steal(kind: str, subject: str, role: RoleRef) -> None:
        with t.db.write() as s:
            s.execute(
                text("UPDATE jobs SET lease_owner = 'thief' WHERE kind = :k"),
                {"k": delivery.SYNC_JOB},
            )

    on_first(w, "grant", steal)
    aid = assign(w, "carl")
    worker(t, settings).drain()
    assert w.flaky.log == [("grant", t.ids["carl"], w.member("campaigns"))]
    row = grant_row(w, "carl", "campaigns")
    assert (row.applied_state, row.applied_generation) == ("granted", row.generation)
    assert row.claim_token is None
    assert state_of(w, aid) == "delivered"


def test_giving_up_leaves_a_call_in_flight_to_its_own_record(
    world: World, settings: Settings, clock: SteppingClock
) -> None:
    """A sync job that gives up marks its pending rows failed, but not a row another run has
    claimed and is calling the target for: that run's record decides it (and no second call
    may start on the row meanwhile)."""
    w, t = world, world.t
    carl = t.ids["carl"]
    assign(w, "carl")
    lease = timedelta(seconds=settings.worker_lease_seconds)
    with t.db.write() as s:
        live = delivery.claim(Ctx(s, system_actor("worker"), clock()), carl, lease=lease)
    load_all()
    give_up = REGISTRY[delivery.SYNC_JOB].on_give_up
    assert give_up is not None
    with t.db.write() as s:
        give_up(Ctx(s, system_actor("worker"), clock()), {"subject_id": carl}, "boom")
    row = grant_row(w, "carl", "campaigns")
    assert row.claim_token is not None
    assert row.applied_state == "none"
    assert delivery.call(live, clock()) == {row.id: None}
    with t.db.write() as s:
        delivery.record(Ctx(s, system_actor("worker"), clock()), carl, live, {row.id: None})
    row = grant_row(w, "carl", "campaigns")
    assert (row.applied_state, row.applied_generation) == ("granted", row.generation)


def test_a_transient_failure_is_recorded_and_retried_with_backoff(
    world: World, settings: Settings, clock: SteppingClock
) -> None:
    w, t = world, world.t
    w.flaky.down = "transient"
    aid = assign(w, "carl")
    worker(t, settings).drain()
    row = grant_row(w, "carl", "campaigns")
    assert (row.attempts, row.last_error, row.claim_token) == (
        1,
        "the target is unavailable",
        None,
    )
    with t.db.read() as conn:
        (run_after,) = conn.execute(
            select(Job.run_after).where(Job.kind == delivery.SYNC_JOB)
        ).one()
    assert run_after == clock.now + delivery.retry_delay([row])
    w.flaky.down = None
    clock.advance(minutes=1)
    worker(t, settings).drain()
    assert state_of(w, aid) == "delivered"


# --------------------------------------------------------------------- the runner's stepwise mode


STEPS = "test.steps"
MARK = "test.mark"


def test_a_stepwise_job_keeps_its_committed_steps_and_stops_when_its_lease_is_lost(
    db: Database, settings: Settings, clock: SteppingClock
) -> None:
    from remit.jobs.queue import enqueue

    def mark(ctx: Ctx, n: int) -> None:
        enqueue(ctx.session, MARK, {"n": n}, now=ctx.now, run_after=ctx.now + timedelta(days=1))

    @stepwise(STEPS, max_attempts=2)
    def steps_job(steps: Steps, payload: dict[str, Any]) -> None:
        assert steps.lease == timedelta(seconds=settings.worker_lease_seconds)
        with steps.write() as ctx:
            mark(ctx, 1)
        # Between the steps nothing is open, and another worker takes the job over.
        assert db.engine.pool.checkedout() == 0
        with db.write() as s:
            s.execute(text("UPDATE jobs SET lease_owner = 'thief' WHERE kind = :k"), {"k": STEPS})
        with steps.write() as ctx:
            mark(ctx, 2)

    try:
        with db.write() as s:
            enqueue(s, STEPS, {}, now=clock())
        w = Worker(db, settings, clock=clock, worker_id="steps")
        assert w.run(w.claim()) == 0, "the lease was lost: the run does not count"
        with db.read() as conn:
            marks = conn.execute(select(Job.payload).where(Job.kind == MARK)).scalars().all()
            owner = conn.execute(select(Job.lease_owner).where(Job.kind == STEPS)).scalar_one()
        assert marks == [{"n": 1}], "the first step committed, the second rolled back"
        assert owner == "thief", "the job is the other worker's to finish"
    finally:
        REGISTRY.pop(STEPS, None)


# ------------------------------------------------------------------------- targets as data


def test_a_role_stays_with_the_target_that_granted_it_until_it_is_granted_again_from_nothing(
    world: World, settings: Settings
) -> None:
    w, t = world, world.t
    carl, member = t.ids["carl"], w.member("campaigns")
    aid = assign(w, "carl")
    worker(t, settings).drain()
    # The campaigns group goes back to the builtin target while Carl holds it remotely: his
    # row stays with the remote target, which takes the revocation.
    with t.db.write() as s:
        targets.unroute(s, "AadGroup", [t.ids["campaigns"]])
    remove(w, aid)
    worker(t, settings).drain()
    assert w.flaky.log == [("grant", carl, member), ("revoke", carl, member)]
    assert grant_row(w, "carl", "campaigns").target_id == w.target
    # Granted again from nothing held: the row follows the route (none: builtin), and the
    # grant is there when the assignment returns.
    assign(w, "carl")
    assert holdings(t, "carl") == {"group:legal", "group:campaigns"}
    assert grant_row(w, "carl", "campaigns").target_id == BUILTIN_TARGET_ID
    assert len(w.flaky.log) == 2


def test_a_target_no_connector_serves_fails_for_good(world: World, settings: Settings) -> None:
    w, t = world, world.t
    with t.db.write() as s:
        nowhere = targets.add_target(
            s, kind="nowhere", display_name="Nowhere", settings={}, now=t.clock()
        )
        targets.route(s, "AadGroup", [t.ids["legal"]], nowhere, t.clock())
    aid = assign(w, "carl")
    worker(t, settings).drain()
    row = grant_row(w, "carl", "legal")
    assert (row.applied_state, row.last_error) == (
        "failed",
        "no connector delivers to Nowhere (kind nowhere)",
    )
    assert state_of(w, aid) == "partiallyDelivered"
    assert holdings(t, "carl") == {"group:campaigns"}


def test_a_target_named_by_a_route_or_a_grant_cannot_be_deleted(world: World) -> None:
    w, t = world, world.t
    assign(w, "carl")
    with t.db.write() as s:  # the route goes; Carl's grant row still names the target
        targets.unroute(s, "AadGroup", [t.ids["campaigns"]])
    with pytest.raises(Conflict), t.db.write() as s:
        s.execute(delete(DeliveryTarget).where(DeliveryTarget.id == w.target))
    with pytest.raises(Conflict), t.db.write() as s:
        s.execute(delete(DeliveryTarget).where(DeliveryTarget.id == BUILTIN_TARGET_ID))


def test_a_targets_connector_is_built_once_and_again_when_its_row_changes(db: Database) -> None:
    built: list[dict[str, Any]] = []

    def factory(target: registry.Target) -> Flaky:
        built.append(target.settings)
        return Flaky(db)

    registry.register_kind("test-built", factory)
    try:
        with db.write() as s:
            tid = targets.add_target(
                s,
                kind="test-built",
                display_name="Built",
                settings={"url": "https://a.example"},
                now=datetime.now(UTC),
            )
        with db.write() as s:
            first = registry.connectors(s, [tid, BUILTIN_TARGET_ID])
            assert registry.connectors(s, [tid])[tid] is first[tid]
            assert first[BUILTIN_TARGET_ID] is registry.builtin()
            s.execute(
                update(DeliveryTarget)
                .where(DeliveryTarget.id == tid)
                .values(settings={"url": "https://b.example"})
            )
            again = registry.connectors(s, [tid])[tid]
            missing = registry.connectors(s, ["no-such-target"])["no-such-target"]
        assert again is not first[tid]
        assert built == [{"url": "https://a.example"}, {"url": "https://b.example"}]
        assert isinstance(missing, ConnectorError)
        assert missing.permanent
    finally:
        registry.unregister_kind("test-built")


def test_the_builtin_target_costs_local_delivery_no_statement(
    world: World, settings: Settings, clock: SteppingClock
) -> None:
    """P4 and P5: delivering and sweeping through the builtin target never reads a target row
    (the route comes with the package's roles, and the builtin target is known by its id)."""
    w, t = world, world.t
    package = w.c.new_package("mamta", "Legal only", {"legal"})
    policy = w.c.policy("mamta", {**contractors_policy(package), "displayName": "Legal only"})
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(t.db.engine, "before_cursor_execute", seen)
    try:
        assert admin_add(t, "alex", "carl", package, policy).status_code == 201
        assert holdings(t, "carl") == {"group:legal"}
        clock.advance(days=31)
        assert sweep.sweep(t.db, t.clock) == 1
        assert holdings(t, "carl") == set()
    finally:
        event.remove(t.db.engine, "before_cursor_execute", seen)
    assert any("delivery_routes" in s for s in statements), "the routes are read"
    assert not [s for s in statements if "delivery_targets" in s]
