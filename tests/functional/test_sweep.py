"""The set-based expiry sweep (``lifecycle.sweep``, which the ``lifecycle.expiry_sweep`` job
runs) against ending each due assignment through ``assignments.end`` (``one_by_one`` below, the
path a removal takes): on the same world, both leave the same database.

The world, built through the API and delivered by the worker: Lena's "Campaign 2027" (the
campaigns group's Member role, the planner's Planner role, the hub's Members site role), "Campaign
tools" (the same Member role and the planner's Viewer role, under policies of 30 days, 90 days, no
end, and 30 days with notifications off), "Partner access" in another catalog holding the same
group's Member role, and "Legal docs" whose group is deleted before the sweep; one holder's
assignment is still being delivered when it ends (its add request is closed). Site roles are
delivered by a remote connector registered for the test (an in-memory target system), so their
revocations wait for the worker. Each path runs in a transaction that is rolled back once its
database has been read; the other then runs on the very same rows.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from remit.audit import chain, pending
from remit.authz.actor import system_actor
from remit.connectors.base import Outcomes, Revocation, RoleRef
from remit.context import Ctx
from remit.directory import operations as d
from remit.lifecycle import assignments, requests, sweep
from remit.lifecycle.locks import lock_subjects
from remit.models.audit import AuditEvent
from remit.models.directory import (
    AppRoleAssignment,
    Group,
    GroupMember,
    GroupOwner,
    SiteRoleMember,
    User,
)
from remit.models.jobs import Job
from remit.models.lifecycle import Assignment, AssignmentRequest, ResourceGrant
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import DOMAIN, EM, Tenant
from tests.lifecycle_support import (
    admin_add,
    build_campaign,
    contractors_policy,
    routed,
    worker,
)

SITES = "SharePointOnline"


class RemoteSites:
    """A target system outside remit (not local): it remembers who holds which site role."""

    name = "remote-sites"
    local: Literal[False] = False

    def __init__(self) -> None:
        self.held: set[tuple[str, str]] = set()

    def grant(
        self, subject_id: str, role: RoleRef, *, valid_until: datetime | None, now: datetime
    ) -> None:
        self.held.add((role.role_origin_id, subject_id))

    def revoke_many(self, items: Sequence[Revocation]) -> Outcomes:
        for item in items:
            self.held.discard((item.role.role_origin_id, item.subject_id))
        return [None] * len(items)

    def holders(self, role: RoleRef) -> set[str]:
        return {s for r, s in self.held if r == role.role_origin_id}


@pytest.fixture
def remote(tenant: Tenant) -> Iterator[RemoteSites]:
    """Every site of the directory delivered by a ``RemoteSites`` target."""
    target = RemoteSites()
    with routed(tenant.db, SITES, target):
        yield target


@dataclass
class World:
    t: Tenant
    users: dict[str, str] = field(default_factory=dict)  # alias -> user id
    packages: dict[str, str] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)


def _direct(package: str, name: str, expiration: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        **contractors_policy(package),
        "displayName": name,
        "expiration": expiration,
        **extra,
    }


def _roles(t: Tenant, catalog: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The catalog's resource roles by (resource origin id, role name)."""
    listed = t.get("mamta", f"{EM}/catalogs/{catalog}/resourceRoles", **{"$expand": "resource"})
    assert listed.status_code == 200, listed.text
    return {(r["resource"]["originId"], r["displayName"]): r for r in listed.json()["value"]}


def _add_role(t: Tenant, package: str, role: dict[str, Any]) -> None:
    r = t.post(
        "mamta",
        f"{EM}/accessPackages/{package}/resourceRoleScopes",
        {
            "role": {
                "id": role["id"],
                "originId": role["originId"],
                "originSystem": role["originSystem"],
                "resource": {"id": role["resource"]["id"]},
            },
            "scope": {
                "originId": role["resource"]["originId"],
                "originSystem": role["originSystem"],
                "isRootScope": True,
            },
        },
    )
    assert r.status_code == 201, r.text


def _package(t: Tenant, catalog: str, name: str, roles: list[dict[str, Any]]) -> str:
    r = t.create_package("mamta", catalog, name)
    assert r.status_code == 201, r.text
    package = str(r.json()["id"])
    for role in roles:
        _add_role(t, package, role)
    return package


def _policy(t: Tenant, body: dict[str, Any]) -> str:
    r = t.post("mamta", f"{EM}/assignmentPolicies", body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def build_world(t: Tenant, settings: Settings, holdings: dict[str, list[str]]) -> World:
    """The packages and policies above; ``holdings`` says who holds what (alias → policy names).

    An alias starting with ``guest`` is a governed guest.
    """
    c = build_campaign(t)
    w = World(t)
    ids = t.ids
    partners = t.create_catalog("mamta", "Partners")
    for alias, catalog, system, origin in (
        ("mamta", partners, "AadGroup", ids["campaigns"]),
        ("admin", c.catalog, "AadGroup", ids["legal"]),
    ):
        r = t.add_resource(alias, catalog, system, origin)
        assert r.status_code == 201, r.text
    mine, theirs = _roles(t, c.catalog), _roles(t, partners)
    member, viewer = mine[(ids["campaigns"], "Member")], mine[(ids["planner"], "Viewer")]
    w.packages = {
        "campaign": c.package,
        "tools": _package(t, c.catalog, "Campaign tools", [member, viewer]),
        "partner": _package(t, partners, "Partner access", [theirs[(ids["campaigns"], "Member")]]),
        "legal": _package(t, c.catalog, "Legal docs", [mine[(ids["legal"], "Member")]]),
    }
    days30 = {"type": "afterDuration", "duration": "P30D"}
    w.policies = {
        "campaign": c.contractors,
        "tools30": _policy(t, _direct(w.packages["tools"], "Tools 30 days", days30)),
        "tools90": _policy(
            t,
            _direct(w.packages["tools"], "Tools 90", {"type": "afterDuration", "duration": "P90D"}),
        ),
        "toolsForever": _policy(
            t, _direct(w.packages["tools"], "Tools for good", {"type": "noExpiration"})
        ),
        "toolsMuted": _policy(
            t,
            _direct(
                w.packages["tools"],
                "Tools quietly",
                days30,
                notificationSettings={"isAssignmentNotificationDisabled": True},
            ),
        ),
        "partner": _policy(t, _direct(w.packages["partner"], "Partners 30 days", days30)),
        "legal": _policy(t, _direct(w.packages["legal"], "Legal 30 days", days30)),
    }
    package_of = {
        "campaign": "campaign",
        "tools30": "tools",
        "tools90": "tools",
        "toolsForever": "tools",
        "toolsMuted": "tools",
        "partner": "partner",
        "legal": "legal",
    }
    with t.db.write() as s:
        root = Ctx(s, system_actor("test"), t.clock())
        for alias in holdings:
            guest = alias.startswith("guest")
            user = d.create_user(
                root,
                user_principal_name=f"{alias}@{'fabrikam.example' if guest else DOMAIN}",
                display_name=alias.title(),
                mail=f"{alias}@{DOMAIN}",
                user_type="Guest" if guest else "Member",
            )
            if guest:
                user.subject_lifecycle = "governed"
            w.users[alias] = ids[alias] = user.id
    for alias, held in holdings.items():
        for policy in held:
            r = admin_add(t, "mamta", alias, w.packages[package_of[policy]], w.policies[policy])
            assert r.status_code == 201, r.text
    worker(t, settings).drain()
    return w


# Who holds what. Every 30-day assignment is due once the clock has moved on 31 days.
HOLDINGS = {
    "uma": ["campaign"],  # everything goes; the site role waits for the remote target
    "vic": ["campaign", "toolsForever"],  # the group's Member role stays (no end)
    "wes": ["campaign", "tools90"],  # the Member role stays until day 90
    "xia": ["toolsMuted"],  # no email
    "yan": ["partner", "toolsForever"],  # a role shared across catalogs stays
    "zed": ["legal"],  # the group is gone: the revocation fails for good
    "ada": ["toolsForever"],  # untouched
    "guest1": ["campaign"],  # a governed guest who loses its last assignment
    "guest2": ["campaign", "tools90"],  # a guest who keeps one
}


def _rows(session: Session, model: Any, drop: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    table = model.__table__
    cols = [c for c in table.columns if c.name not in drop]
    found = [tuple(row) for row in session.execute(select(*cols))]
    return sorted(found, key=repr)


def snapshot(session: Session) -> dict[str, Any]:
    """Everything either path may change, with the random parts (new ids, message ids) left out."""
    session.flush()
    requests = {
        r.id: (r.request_type, r.assignment_id)
        for r in session.execute(select(AssignmentRequest)).scalars()
    }
    events = []
    for e in session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars():
        details = dict(e.details)
        if details.get("requestId") in requests:
            details["requestId"] = requests[details["requestId"]]
        events.append(
            (
                e.activity,
                e.operation_type,
                e.target_type,
                e.target_id,
                e.target_name,
                e.catalog_id,
                e.subject_id,
                e.actor_id,
                e.actor_name,
                e.occurred_at,
                repr(sorted(details.items())),
            )
        )
    jobs = []
    for j in session.execute(select(Job)).scalars():
        payload = {k: v for k, v in j.payload.items() if k != "message_id"}
        fields = (j.status, j.run_after, j.attempts, j.max_attempts, j.dedupe_key)
        jobs.append((j.kind, repr(sorted(payload.items())), *fields))
    verified = chain.verify(session.connection())
    return {
        "assignments": _rows(session, Assignment, drop=("expired_at",)),
        "requests": _rows(session, AssignmentRequest, drop=("id",)),
        "grants": _rows(session, ResourceGrant),
        "group_members": _rows(session, GroupMember),
        "group_owners": _rows(session, GroupOwner),
        "app_roles": _rows(session, AppRoleAssignment),
        "site_roles": _rows(session, SiteRoleMember),
        "users": _rows(session, User),
        "audit": sorted(events, key=repr),
        "activities": Counter(e[0] for e in events),
        "jobs": sorted(jobs, key=repr),
        "chain": (verified.ok, verified.problems),
    }


class _Rollback(Exception):
    pass


def run_and_read(
    t: Tenant, run: Callable[[Ctx], object]
) -> tuple[dict[str, Any], dict[str, datetime | None]]:
    """Run ``run`` as the worker in one transaction, read the database (audit events included,
    appended as the commit would), roll it all back. Also returns each ended assignment's
    ``expires_at`` and ``expired_at``."""
    out: dict[str, Any] = {}
    try:
        with t.db.write() as s:
            run(Ctx(s, system_actor("worker"), t.clock()))
            pending._append(s)  # the audit events, as the commit would append them
            out["snapshot"] = snapshot(s)
            out["expired"] = {
                a.id: (a.expires_at, a.expired_at)
                for a in s.execute(
                    select(Assignment).where(Assignment.end_reason == "expired")
                ).scalars()
            }
            raise _Rollback
    except _Rollback:
        pass
    return out["snapshot"], out["expired"]


def one_by_one(ctx: Ctx) -> None:
    """The reference: each due assignment ended through ``assignments.end`` with its
    ``systemRemove`` record, subjects locked in sorted order (the sweep before it was
    set-based)."""
    due = ctx.session.execute(
        select(Assignment.id, Assignment.target_id)
        .where(Assignment.active_key.is_not(None), Assignment.expires_at <= ctx.now)
        .order_by(Assignment.target_id, Assignment.id)
    ).all()
    lock_subjects(ctx, [target for _, target in due])
    for assignment_id, _ in due:
        a = ctx.session.get(Assignment, assignment_id, populate_existing=True)
        assert a is not None
        request = requests.system_remove_record(ctx, a)
        assignments.end(ctx, a, reason="expired", request=request)


def set_based(limit: int) -> Callable[[Ctx], None]:
    def run(ctx: Ctx) -> None:
        while sweep.expire_chunk(ctx, limit=limit).due >= limit:
            pass

    return run


def _due(w: World) -> int:
    with w.t.db.read() as conn:
        return len(
            conn.execute(
                select(Assignment.id).where(
                    Assignment.active_key.is_not(None),
                    Assignment.expires_at <= w.t.clock(),
                )
            ).all()
        )


@pytest.fixture
def world(tenant: Tenant, settings: Settings, clock: SteppingClock, remote: RemoteSites) -> World:
    w = build_world(tenant, settings, HOLDINGS)
    with tenant.db.write() as s:  # the legal group goes away behind the package's back
        s.execute(delete(Group).where(Group.id == tenant.ids["legal"]))
    clock.advance(days=31)
    return w


def test_the_world_is_as_described(world: World, remote: RemoteSites) -> None:
    with world.t.db.read() as conn:
        states = Counter(conn.execute(select(Assignment.state)).scalars())
        grants = Counter(conn.execute(select(ResourceGrant.applied_state)).scalars())
    assert states == {"delivered": 13}
    assert grants == {"granted": 25}, "every role delivered, the remote site roles too"
    assert len(remote.held) == 5
    assert _due(world) == 8


@pytest.mark.parametrize("limit", [10_000, 3, 1])
def test_the_sweep_leaves_the_same_database_as_ending_one_by_one(world: World, limit: int) -> None:
    expected, _ = run_and_read(world.t, one_by_one)
    found, expired = run_and_read(world.t, set_based(limit))
    assert found["chain"] == (True, ())
    assert found["activities"]["Remove access package assignment"] == 8
    assert found["activities"]["Block external user and schedule deletion"] == 1
    for key in expected:
        assert found[key] == expected[key], key
    # The record says when access ended, which is also what the API showed before the sweep.
    assert len(expired) == 8
    assert all(end == at for end, at in expired.values())


def test_after_the_sweep_the_worker_finishes_the_remote_revocations(
    world: World, remote: RemoteSites, settings: Settings
) -> None:
    t, users = world.t, world.users
    ended = sweep.sweep(t.db, t.clock, chunk=4)
    assert ended == 8
    with t.db.read() as conn:
        waiting = Counter(
            conn.execute(
                select(AssignmentRequest.status).where(
                    AssignmentRequest.request_type == "systemRemove"
                )
            ).scalars()
        )
        syncs = conn.execute(select(Job.dedupe_key).where(Job.kind == "lifecycle.sync_subject"))
        assert sorted(syncs.scalars()) == sorted(
            f"sync:{users[a]}" for a in ("uma", "vic", "wes", "guest1", "guest2")
        )
    assert waiting == {"Accepted": 5, "Fulfilled": 3}
    worker(t, settings).drain()
    assert remote.held == set(), "the site roles are gone from the remote target"
    with t.db.read() as conn:
        statuses = Counter(
            conn.execute(
                select(AssignmentRequest.status).where(
                    AssignmentRequest.request_type == "systemRemove"
                )
            ).scalars()
        )
        members = set(
            conn.execute(
                select(GroupMember.member_id).where(GroupMember.group_id == t.ids["campaigns"])
            ).scalars()
        )
        failed = conn.execute(
            select(ResourceGrant.subject_id, ResourceGrant.last_error).where(
                ResourceGrant.applied_state == "failed"
            )
        ).all()
        assert chain.verify(conn).ok
    assert statuses == {"Fulfilled": 8}
    keep = ("vic", "wes", "yan", "ada", "guest2")
    assert members == {t.ids["lena"], *(users[a] for a in keep)}
    assert members.isdisjoint({users["uma"], users["xia"], users["guest1"]})
    assert [(s, e) for s, e in failed] == [
        (users["zed"], f"group {t.ids['legal']} no longer exists")
    ]
    assert sweep.sweep(t.db, t.clock) == 0, "nothing left to do"


def test_two_due_assignments_sharing_a_role(
    tenant: Tenant, settings: Settings, clock: SteppingClock, remote: RemoteSites
) -> None:
    """Both end together; their add requests stay fulfilled (ending them one by one puts the
    second one's add request back to "delivering" when the first end revokes the shared role)."""
    w = build_world(tenant, settings, {"bea": ["campaign", "partner"], "cy": ["campaign"]})
    clock.advance(days=31)
    expected, _ = run_and_read(w.t, one_by_one)
    found, _ = run_and_read(w.t, set_based(10_000))
    adds = [r for r in found["requests"] if r[0] == "adminAdd"]
    assert {r[1] for r in adds} == {"delivered"}, "every add request stays fulfilled"
    for key in expected:
        if key != "requests":
            assert found[key] == expected[key], key
    removes = sorted(r for r in found["requests"] if r[0] == "systemRemove")
    assert removes == sorted(r for r in expected["requests"] if r[0] == "systemRemove")


def test_two_sweepers_at_once_end_each_assignment_once(world: World) -> None:
    """On PostgreSQL they share the work (SKIP LOCKED chunks); on SQLite they take turns."""
    t = world.t
    barrier = threading.Barrier(2)
    ended: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            ended.append(sweep.sweep(t.db, t.clock, chunk=2))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(ended) == 8
    assert _due(world) == 0
    with t.db.read() as conn:
        events = Counter(
            conn.execute(
                select(AuditEvent.target_id).where(
                    AuditEvent.activity == "Remove access package assignment"
                )
            ).scalars()
        )
        records = Counter(
            conn.execute(
                select(AssignmentRequest.assignment_id).where(
                    AssignmentRequest.request_type == "systemRemove"
                )
            ).scalars()
        )
        assert chain.verify(conn).ok
    assert len(events) == 8
    assert set(events.values()) == {1}
    assert records == events


def test_the_sweep_takes_the_lifecycles_subject_locks(world: World) -> None:
    """PostgreSQL: a chunk holds the subject lock (``lock_subjects``) of every assignment it
    ends until its transaction ends, so a sweep and an operation on the same user queue behind
    each other; many subjects are locked in one statement, the same locks as one at a time."""
    t = world.t
    if t.db.is_sqlite:
        pytest.skip("SQLite serialises writers: there are no subject locks")
    actor = system_actor("test")

    def lock_elsewhere(key: str) -> None:
        with t.db.write() as other:
            other.execute(text("SET LOCAL lock_timeout = '200ms'"))
            lock_subjects(Ctx(other, actor, t.clock()), [key])

    with t.db.write() as s:
        assert sweep.expire_chunk(Ctx(s, actor, t.clock())).ended == 8
        with pytest.raises(OperationalError):
            lock_elsewhere(world.users["uma"])
        lock_elsewhere(world.users["ada"])  # holds nothing due: not locked
    lock_elsewhere(world.users["uma"])  # free again once the sweep's transaction ended
    with t.db.write() as s:
        lock_subjects(Ctx(s, actor, t.clock()), ["Some-User", "another"])
        with pytest.raises(OperationalError):
            lock_elsewhere("some-user")


def test_an_assignment_still_being_delivered_when_it_ends(
    tenant: Tenant, settings: Settings, clock: SteppingClock, remote: RemoteSites
) -> None:
    """Its add request is closed (canceled and audited), as ending it one by one closes it."""
    w = build_world(tenant, settings, {"bea": ["campaign"], "una": []})
    # No worker runs after this one: Una's roles are never delivered.
    r = admin_add(tenant, "mamta", "una", w.packages["campaign"], w.policies["campaign"])
    assert r.status_code == 201, r.text
    clock.advance(days=31)
    expected, _ = run_and_read(tenant, one_by_one)
    found, _ = run_and_read(tenant, set_based(10_000))
    assert found["activities"]["Cancel access package assignment request"] == 1
    assert found["activities"]["Remove access package assignment"] == 2
    for key in expected:
        assert found[key] == expected[key], key
