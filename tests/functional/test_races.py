"""Races (QUALITY R6, STYLE 7): concurrent actions on one object resolve to one outcome.

Each race starts its threads together at a barrier; each thread calls the operation directly in
a write transaction of its own (``db.write()``), with its own actor, as the API would. On SQLite
the transactions queue on the write lock (``BEGIN IMMEDIATE``, busy timeout 10 s); on PostgreSQL
they run at once (READ COMMITTED), so the conditional updates and row locks do the work. Every
outcome is classified: the winner's result, ``Conflict``, or anything else (a bug).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from remit.audit.chain import verify
from remit.authz.actor import Actor, system_actor
from remit.context import Ctx
from remit.db import Database
from remit.directory import operations as d
from remit.errors import Conflict
from remit.jobs.runner import Worker
from remit.lifecycle import delivery, requests, sweep
from remit.lifecycle import operations as ops
from remit.models.audit import AuditEvent
from remit.models.jobs import Job
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest, ResourceGrant
from remit.models.packages import ResourceRoleScope
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant
from tests.lifecycle_support import (
    Campaign,
    actor_at,
    add_users,
    build_campaign,
    in_transaction,
    role_holders,
    worker,
)

APPROVE = "Approve access package assignment request"
REMOVE = "Remove access package assignment"
BARRIER_TIMEOUT = 120.0  # a thread that never arrives fails the race instead of hanging it


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


# ---------------------------------------------------------------------------- the harness


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None

    @property
    def kind(self) -> str:
        """ "ok", "Conflict" (a refusal the API answers 409), or the unexpected error's class."""
        if self.error is None:
            return "ok"
        if isinstance(self.error, Conflict):
            return "Conflict"
        return type(self.error).__name__

    def describe(self) -> str:
        return self.kind if self.error is None else f"{self.kind}: {self.error}".splitlines()[0]


def race(*calls: Callable[[], Any]) -> list[Outcome]:
    """Run the calls in threads released together by a barrier; their outcomes, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome() for _ in calls]

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(BARRIER_TIMEOUT)
            outcomes[i].value = call()
        except BaseException as exc:  # every outcome is classified by the test
            outcomes[i].error = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def operation(t: Tenant, actor: Actor, call: Callable[[Ctx], Any]) -> Callable[[], Any]:
    """``call`` as one API operation would run it: a write transaction of its own."""
    return lambda: in_transaction(t, actor, call)


def kinds(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(o.kind for o in outcomes)


def unexpected(outcomes: list[Outcome]) -> list[str]:
    return [o.describe() for o in outcomes if o.kind not in ("ok", "Conflict")]


def policy(
    package: str, *, stages: list[dict[str, Any]] | None = None, name: str = "Race policy"
) -> dict[str, Any]:
    """Any member may ask for themselves; one stage of the given approvers, or none."""
    return {
        "displayName": name,
        "description": name,
        "accessPackage": {"id": package},
        "allowedTargetScope": "allMemberUsers",
        "specificAllowedTargets": [],
        "expiration": {"type": "afterDuration", "duration": "P30D"},
        "requestorSettings": {
            "enableTargetsToSelfAddAccess": True,
            "enableTargetsToSelfRemoveAccess": True,
        },
        "requestApprovalSettings": {
            "isApprovalRequiredForAdd": bool(stages),
            "isRequestorJustificationRequired": False,
            "stages": [
                {
                    "durationBeforeAutomaticDenial": "P14D",
                    "isApproverJustificationRequired": False,
                    "isEscalationEnabled": False,
                    "primaryApprovers": approvers,
                }
                for approvers in ([stages] if stages else [])
            ],
        },
    }


def user_add(c: Campaign, user_id: str, policy_id: str) -> Callable[[Ctx], AssignmentRequest]:
    return lambda ctx: requests.submit(
        ctx, kind="userAdd", package_id=c.package, policy_id=policy_id, target_id=user_id
    )


def open_stage_id(t: Tenant, request_id: str) -> str:
    with t.db.read() as conn:
        return str(
            conn.execute(
                select(ApprovalStage.id).where(
                    ApprovalStage.request_id == request_id, ApprovalStage.status == "InProgress"
                )
            ).scalar_one()
        )


def approve(request_id: str, stage_id: str) -> Callable[[Ctx], str]:
    return lambda ctx: ops.decide_stage(
        ctx, request_id, stage_id, result="Approve", justification=None
    )


def events(t: Tenant, activity: str, target_id: str) -> int:
    with t.db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.activity == activity, AuditEvent.target_id == target_id)
            ).scalar_one()
        )


def assert_chain_verifies(t: Tenant) -> None:
    with t.db.read() as conn:
        result = verify(conn)
    assert result.ok, result.problems


def holding(t: Tenant, package: str) -> set[str]:
    """The users who hold any resource role of the package in the directory."""
    return {u for holders in role_holders(t, package).values() for u in holders}


def holding_all(t: Tenant, package: str) -> set[str]:
    held = list(role_holders(t, package).values())
    return set.intersection(*held) if held else set()


def active_assignments(t: Tenant, package: str) -> dict[str, int]:
    """Active assignments to the package, counted per subject."""
    with t.db.read() as conn:
        rows = conn.execute(
            select(Assignment.target_id, func.count())
            .where(Assignment.access_package_id == package, Assignment.active_key.is_not(None))
            .group_by(Assignment.target_id)
        ).all()
    return {subject: int(n) for subject, n in rows}


# ---------------------------------------------------------------------------- the races


def test_fifty_concurrent_approvals_of_one_stage_advance_it_once(
    c: Campaign, settings: Settings
) -> None:
    """Fifty members of the approver group approve the same stage at once: one decision counts,
    forty-nine get Conflict (409), one approval event, one assignment."""
    t = c.t
    approvers = add_users(t, "approver", 50)
    [requester] = add_users(t, "requester", 1)
    with t.db.write() as s:
        group = d.create_group(
            Ctx(s, system_actor("test"), t.clock()),
            display_name="Campaign approvers",
            owner_ids=[t.ids["mamta"]],
            member_ids=approvers,
        ).id
    pid = c.policy(
        "lena",
        policy(
            c.package,
            stages=[{"@odata.type": "#microsoft.graph.groupMembers", "groupId": group}],
        ),
    )
    request = in_transaction(t, actor_at(t, requester), user_add(c, requester, pid))
    assert request.state == "pendingApproval"
    stage = open_stage_id(t, request.id)
    actors = [actor_at(t, a) for a in approvers]

    outcomes = race(*(operation(t, a, approve(request.id, stage)) for a in actors))

    assert unexpected(outcomes) == []
    assert kinds(outcomes) == {"ok": 1, "Conflict": 49}
    assert [o.value for o in outcomes if o.kind == "ok"] == ["approved"]
    assert {o.error.code for o in outcomes if isinstance(o.error, Conflict)} <= {
        "StageAlreadyDecided",
        "RequestNotPending",
    }
    assert events(t, APPROVE, request.id) == 1
    with t.db.read() as conn:
        stage_row = conn.execute(select(ApprovalStage).where(ApprovalStage.id == stage)).one()
        assert stage_row.review_result == "Approve"
        assert stage_row.reviewed_by in approvers
    worker(t, settings).drain()
    assert active_assignments(t, c.package) == {requester: 1}
    assert requester in holding_all(t, c.package)
    assert_chain_verifies(t)


def test_fifty_identical_requests_make_one_assignment(c: Campaign, settings: Settings) -> None:
    """The same user asks for the same package fifty times at once (no approval needed): one
    request is accepted, forty-nine get Conflict, and one assignment is delivered."""
    t = c.t
    [user] = add_users(t, "requester", 1)
    pid = c.policy("lena", policy(c.package, name="Self service"))
    actor = actor_at(t, user)

    outcomes = race(*(operation(t, actor, user_add(c, user, pid)) for _ in range(50)))

    assert unexpected(outcomes) == []
    assert kinds(outcomes) == {"ok": 1, "Conflict": 49}
    assert {o.error.code for o in outcomes if isinstance(o.error, Conflict)} <= {
        "ExistingOpenRequest",
        "ExistingAssignment",
    }
    [accepted] = [o.value.id for o in outcomes if o.kind == "ok"]
    with t.db.read() as conn:
        made = conn.execute(
            select(AssignmentRequest.id).where(AssignmentRequest.target_id == user)
        ).scalars()
        assert list(made) == [accepted]
    worker(t, settings).drain()
    assert active_assignments(t, c.package) == {user: 1}
    assert user in holding_all(t, c.package)
    assert events(t, "User requests access package assignment", accepted) == 1
    assert_chain_verifies(t)


ROUNDS = 200


def test_approve_and_cancel_never_both_take_effect(c: Campaign, settings: Settings) -> None:
    """Approve ∥ cancel, 200 rounds, each on a fresh one-stage request. In even rounds the
    requestor cancels (allowed only while pending), in odd rounds Omar, a catalog owner (allowed
    until delivered, spec §6.6: after activation his cancel ends the new assignment). Whatever
    the order, a canceled request never leaves access behind, and a request that keeps its
    access was not canceled."""
    t = c.t
    users = add_users(t, "requester", ROUNDS)
    pid = c.policy(
        "lena",
        policy(
            c.package,
            stages=[{"@odata.type": "#microsoft.graph.singleUser", "userId": t.ids["mamta"]}],
        ),
    )
    mamta, omar = actor_at(t, t.ids["mamta"]), actor_at(t, t.ids["omar"])
    rounds: list[tuple[str, str, Outcome, Outcome]] = []
    started = time.perf_counter()
    for i, user in enumerate(users):
        requestor = actor_at(t, user)
        request = in_transaction(t, requestor, user_add(c, user, pid))
        stage = open_stage_id(t, request.id)
        canceller = requestor if i % 2 == 0 else omar
        calls = [
            operation(t, mamta, approve(request.id, stage)),
            operation(t, canceller, lambda ctx, rid=request.id: requests.cancel(ctx, rid)),
        ]
        # Every other pair of rounds starts the threads the other way round.
        approved, canceled = race(*calls) if i % 4 < 2 else race(*reversed(calls))[::-1]
        rounds.append((user, request.id, approved, canceled))
    elapsed = time.perf_counter() - started
    worker(t, settings).drain()
    print(f"\napprove ∥ cancel: {ROUNDS} rounds in {elapsed:.1f} s ({t.db.dialect})")

    holders = holding(t, c.package)
    active = active_assignments(t, c.package)
    with t.db.read() as conn:
        states = dict(
            conn.execute(
                select(AssignmentRequest.id, AssignmentRequest.state).where(
                    AssignmentRequest.id.in_([r for _, r, _, _ in rounds])
                )
            ).all()
        )
    tally: Counter[str] = Counter()
    for i, (user, rid, approved, canceled) in enumerate(rounds):
        state = states[rid]
        where = f"round {i}: approve {approved.describe()}, cancel {canceled.describe()}, {state}"
        if state == "canceled":
            # Canceled: nothing delivered, nothing active, whoever came first.
            assert user not in holders, where
            assert user not in active, where
            assert events(t, "Cancel access package assignment request", rid) == 1, where
        else:
            # Kept: the approval won and the cancel was refused.
            assert state == "delivered", where
            assert approved.kind == "ok", where
            assert canceled.kind != "ok", where
            assert active.get(user) == 1, where
            assert user in holding_all(t, c.package), where
        if approved.kind == "ok" and canceled.kind == "ok":
            # Only a catalog owner's cancel may follow an approval: it ends the assignment.
            assert i % 2 == 1, where
            assert state == "canceled", where
            assert events(t, REMOVE, _assignment_of(t, rid)) == 1, where
        if i % 2 == 0:
            # The requestor may cancel only while pending: never both.
            assert not (approved.kind == "ok" and canceled.kind == "ok"), where
        tally[f"{'requestor' if i % 2 == 0 else 'owner'} cancel: {state}"] += 1
        tally[f"approve {approved.kind} / cancel {canceled.kind}"] += 1
    print(dict(sorted(tally.items())))
    # Last, so the invariant above is checked even when some round failed unexpectedly.
    failures = [
        f"round {i}: {o.describe()}"
        for i, (_, _, a, k) in enumerate(rounds)
        for o in (a, k)
        if o.kind not in ("ok", "Conflict")
    ]
    assert failures == []
    assert_chain_verifies(t)


def _assignment_of(t: Tenant, request_id: str) -> str:
    with t.db.read() as conn:
        return str(
            conn.execute(
                select(AssignmentRequest.assignment_id).where(AssignmentRequest.id == request_id)
            ).scalar_one()
        )


def test_expiry_sweep_and_admin_removal_end_an_assignment_once(
    c: Campaign, settings: Settings, clock: SteppingClock
) -> None:
    """The expiry sweep and Alex's removal reach the same lapsed assignment at once, 20 times:
    exactly one of them ends it, with one "Remove access package assignment" event."""
    t = c.t
    subjects = add_users(t, "contractor", 20)
    alex, sweeper = actor_at(t, t.ids["alex"]), system_actor("worker")
    made: list[str] = []
    start = clock.now
    for i, subject in enumerate(subjects):
        # A minute apart, so that in round i only assignment i is due (the earlier ones ended).
        clock.now = start + timedelta(minutes=i)
        request = in_transaction(
            t,
            alex,
            lambda ctx, s=subject: requests.submit(
                ctx, kind="adminAdd", package_id=c.package, policy_id=c.contractors, target_id=s
            ),
        )
        made.append(str(request.assignment_id))
    worker(t, settings).drain()
    assert holding_all(t, c.package) >= set(subjects)

    results: list[tuple[str, Outcome, Outcome]] = []
    for i, aid in enumerate(made):
        clock.now = start + timedelta(days=30, minutes=i, seconds=1)
        swept, removed = race(
            operation(t, sweeper, lambda ctx: sweep.expire_chunk(ctx).ended),
            operation(
                t,
                alex,
                lambda ctx, a=aid: requests.submit(ctx, kind="adminRemove", assignment_id=a),
            ),
        )
        results.append((aid, swept, removed))

    tally: Counter[str] = Counter()
    for aid, swept, removed in results:
        where = f"{aid}: sweep {swept.describe()} ({swept.value}), remove {removed.describe()}"
        assert events(t, REMOVE, aid) == 1, where
        assert (swept.value == 1) != (removed.kind == "ok"), where
        tally["the sweep ended it" if swept.value == 1 else "the removal ended it"] += 1
    print(dict(tally))
    with t.db.read() as conn:
        ended = conn.execute(
            select(Assignment.end_reason, Assignment.active_key).where(Assignment.id.in_(made))
        ).all()
    assert [key for _, key in ended] == [None] * len(made)
    assert {reason for reason, _ in ended} <= {"expired", "removedByAdmin"}
    worker(t, settings).drain()
    assert holding(t, c.package) & set(subjects) == set()
    assert unexpected([o for _, s, r in results for o in (s, r)]) == []
    assert_chain_verifies(t)


def test_two_workers_syncing_the_same_subjects_converge(
    c: Campaign, settings: Settings, clock: SteppingClock
) -> None:
    """Two workers run sync jobs of the same twenty subjects at once, while Alex removes half of
    their assignments: each grant row is applied at its latest generation under its row lock, so
    a late grant never brings a revoked role back and the directory ends as desired."""
    t = c.t
    subjects = add_users(t, "contractor", 20)
    alex = actor_at(t, t.ids["alex"])
    made: dict[str, str] = {}
    with t.db.write() as s:
        ctx = Ctx(s, alex, t.clock())
        for subject in subjects:
            request = requests.submit(
                ctx,
                kind="adminAdd",
                package_id=c.package,
                policy_id=c.contractors,
                target_id=subject,
            )
            made[subject] = str(request.assignment_id)
    # The builtin connector delivered them in the assigning transaction; a reprocess applies
    # every role again through the worker. Worker A claims every subject's first sync job; a
    # second reprocess then queues another one per subject (a claimed job no longer absorbs new
    # work), for worker B.
    with t.db.write() as s:
        ctx = Ctx(s, alex, t.clock())
        for subject in subjects:
            ops.reprocess_assignment(ctx, made[subject])
    a = Worker(t.db, settings, clock=t.clock, worker_id="worker-a")
    b = Worker(t.db, settings, clock=t.clock, worker_id="worker-b")
    first = a.claim(limit=1000)
    assert sum(j.kind == delivery.SYNC_JOB for j in first) == len(subjects)
    with t.db.write() as s:
        ctx = Ctx(s, alex, t.clock())
        for subject in subjects:
            ops.reprocess_assignment(ctx, made[subject])
    with t.db.read() as conn:
        queued = conn.execute(
            select(func.count())
            .select_from(Job)
            .where(Job.kind == delivery.SYNC_JOB, Job.status == "queued")
        ).scalar_one()
    assert queued == len(subjects)

    removals: list[Outcome] = []

    def remove_half() -> None:
        for subject in subjects[::2]:
            outcome = Outcome()
            try:
                in_transaction(
                    t,
                    alex,
                    lambda ctx, a_id=made[subject]: requests.submit(
                        ctx, kind="adminRemove", assignment_id=a_id
                    ),
                )
            except Exception as exc:  # classified below, after the convergence checks
                outcome.error = exc
            removals.append(outcome)

    # Worker A runs its (now late) jobs, worker B drains the new ones, Alex removes.
    ran = race(lambda: a.run(first), b.drain, remove_half)
    worker(t, settings).drain()

    kept = set(active_assignments(t, c.package))
    ended = set(subjects) - kept
    print(f"\n{len(ended)} of {len(subjects)} removed while two workers synced")
    assert holding(t, c.package) & ended == set(), "a late grant brought back a revoked role"
    assert holding_all(t, c.package) >= kept
    with t.db.read() as conn:
        grants = conn.execute(
            select(ResourceGrant).where(ResourceGrant.subject_id.in_(subjects))
        ).all()
    assert len(grants) == 3 * len(subjects)
    for g in grants:
        assert g.applied_generation == g.generation, g
        assert g.desired == (g.subject_id in kept), g
        assert g.applied_state == ("granted" if g.desired else "revoked"), g
    assert unexpected(ran) == []
    assert unexpected(removals) == []
    assert ended == set(subjects[::2])
    assert_chain_verifies(t)


# ---------------------------------------------------------------- a delete against a create (API)

DELETE_ROUNDS = 8


def racing_calls(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """The calls (HTTP requests through the app) raced at a barrier; every one must answer."""
    outcomes = race(*calls)
    assert [o.describe() for o in outcomes if o.error is not None] == []
    return [o.value for o in outcomes]


def refused(response: httpx.Response, allowed: set[int]) -> bool:
    """True when ``response`` is a Graph-shaped refusal with one of the ``allowed`` statuses;
    False when it succeeded. Anything else (a 500, a bare body) fails the test."""
    if response.status_code < 300:
        return False
    assert response.status_code in allowed, response.text
    error = response.json()["error"]
    assert error["code"], response.text
    assert error["message"], response.text
    # Readable, never the SQL (its parameters may hold data).
    assert not {"INSERT", "DELETE", "UPDATE", "SELECT"} & set(error["message"].split()), error
    return True


def rrs_body(role: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": {"id": role["id"], "resource": {"id": role["resource"]["id"]}},
        "scope": {"originId": role["resource"]["originId"], "isRootScope": True},
    }


def catalog_roles(t: Tenant, catalog: str, origin_id: str) -> list[dict[str, Any]]:
    listed = t.get("lena", f"{EM}/catalogs/{catalog}/resourceRoles", **{"$expand": "resource"})
    assert listed.status_code == 200, listed.text
    return [r for r in listed.json()["value"] if r["resource"]["originId"] == origin_id]


def test_removing_a_resource_while_its_role_is_added_to_a_package(c: Campaign) -> None:
    """Mamta removes a group from the catalog while Lena adds its Member role to a package: one
    of them wins; the other gets a Graph-shaped 4xx (never a 500), and no package holds a role
    of a resource that is gone."""
    t = c.t
    package = c.new_package("lena", "Race target", set())
    tally: Counter[str] = Counter()
    for i in range(DELETE_ROUNDS):
        with t.db.write() as s:
            group = d.create_group(
                Ctx(s, system_actor("test"), t.clock()),
                display_name=f"Race group {i}",
                owner_ids=[t.ids["mamta"]],
            ).id
        added = t.add_resource("mamta", c.catalog, "AadGroup", group)
        assert added.status_code == 201, added.text
        [role] = [r for r in catalog_roles(t, c.catalog, group) if r["displayName"] == "Member"]
        remove = {
            "requestType": "adminRemove",
            "catalog": {"id": c.catalog},
            "resource": {"id": role["resource"]["id"]},
        }
        removal, addition = racing_calls(
            lambda body=remove: t.post("mamta", f"{EM}/resourceRequests", body),
            lambda r=role: t.post(
                "lena", f"{EM}/accessPackages/{package}/resourceRoleScopes", rrs_body(r)
            ),
        )
        removal_lost = refused(removal, {404, 409})
        # A role that is no longer in the catalog is 400 when asked in turn.
        addition_lost = refused(addition, {400, 404, 409})
        where = f"round {i}: remove {removal.status_code}, add {addition.status_code}"
        assert removal_lost != addition_lost, where
        held = roles_held(t, package)
        remaining = catalog_roles(t, c.catalog, group)
        if addition_lost:
            assert remaining == [], where
            assert role["id"] not in held, where
        else:
            assert role["id"] in [r["id"] for r in remaining], where
            assert role["id"] in held, where
        tally[f"remove {removal.status_code} / add {addition.status_code}"] += 1
    print(dict(tally))
    assert_chain_verifies(t)


def roles_held(t: Tenant, package: str) -> set[str]:
    with t.db.read() as conn:
        return set(
            conn.execute(
                select(ResourceRoleScope.role_id).where(
                    ResourceRoleScope.access_package_id == package
                )
            ).scalars()
        )


def test_deleting_a_catalog_while_a_package_is_created_in_it(c: Campaign) -> None:
    """Mamta deletes an empty catalog while creating a package in it: either the package is made
    and the delete is refused (409), or the catalog is gone and the create refused (404/409)."""
    t = c.t
    tally: Counter[str] = Counter()
    for i in range(DELETE_ROUNDS):
        catalog = t.create_catalog("mamta", f"Short-lived {i}")
        deletion, creation = racing_calls(
            lambda cat=catalog: t.call("mamta", "DELETE", f"{EM}/catalogs/{cat}"),
            lambda cat=catalog, n=i: t.create_package("mamta", cat, f"Born late {n}"),
        )
        where = f"round {i}: delete {deletion.status_code}, create {creation.status_code}"
        deletion_lost = refused(deletion, {409})
        creation_lost = refused(creation, {404, 409})
        assert deletion_lost != creation_lost, where
        found = t.get("mamta", f"{EM}/catalogs/{catalog}")
        if deletion_lost:
            assert found.status_code == 200, where
            made = t.get("mamta", f"{EM}/accessPackages/{creation.json()['id']}")
            assert made.status_code == 200, where
        else:
            assert found.status_code == 404, where
        tally[f"delete {deletion.status_code} / create {creation.status_code}"] += 1
    print(dict(tally))
    assert_chain_verifies(t)


def test_deleting_a_package_while_a_resource_role_is_added_to_it(c: Campaign) -> None:
    """Lena deletes a package while adding a role to it: the add either lands first (and the
    delete takes it away with the package) or is refused with a Graph-shaped 404/409."""
    t = c.t
    role = c.roles["Member"]
    tally: Counter[str] = Counter()
    for i in range(DELETE_ROUNDS):
        made = t.create_package("lena", c.catalog, f"Doomed {i}")
        assert made.status_code == 201, made.text
        package = str(made.json()["id"])
        deletion, addition = racing_calls(
            lambda p=package: t.call("lena", "DELETE", f"{EM}/accessPackages/{p}"),
            lambda p=package: t.post(
                "lena", f"{EM}/accessPackages/{p}/resourceRoleScopes", rrs_body(role)
            ),
        )
        where = f"round {i}: delete {deletion.status_code}, add {addition.status_code}"
        deletion_lost = refused(deletion, {404, 409})
        addition_lost = refused(addition, {404, 409})
        assert not (deletion_lost and addition_lost), where
        found = t.get("lena", f"{EM}/accessPackages/{package}")
        assert found.status_code == (200 if deletion_lost else 404), where
        with t.db.read() as conn:
            held = conn.execute(
                select(func.count())
                .select_from(ResourceRoleScope)
                .where(ResourceRoleScope.access_package_id == package)
            ).scalar_one()
        # A deleted package takes its roles with it; a kept one holds the role that was added.
        assert held == (1 if deletion_lost else 0), where
        tally[f"delete {deletion.status_code} / add {addition.status_code}"] += 1
    print(dict(tally))
    assert_chain_verifies(t)
