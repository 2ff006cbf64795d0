"""The world of the lifecycle scenario (issue #3), built through the API, and helpers to drive
requests, approvals and the worker. Shared by the scenario, matrix, race and crash tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import httpx
from sqlalchemy import select

from remit.authz.actor import Actor, load_actor, system_actor
from remit.authz.roles import ASSIGNMENT_MANAGER, CATALOG_OWNER, PACKAGE_MANAGER
from remit.connectors import registry, targets
from remit.connectors.base import (
    Connector,
    ConnectorError,
    Outcomes,
    RemoteConnector,
    Revocation,
    RoleRef,
)
from remit.connectors.builtin import BuiltinConnector
from remit.context import Ctx
from remit.db import Database
from remit.directory import operations as d
from remit.jobs.runner import Worker
from remit.lifecycle import delivery
from remit.models.directory import (
    Application,
    AppRoleAssignment,
    Group,
    GroupMember,
    Site,
    SiteRoleMember,
)
from remit.settings import Settings
from tests.factories import DOMAIN, EM, Tenant

T = TypeVar("T")

EMPLOYEES = "Marketing employees"
CONTRACTORS = "Contractors (direct)"


def employees_policy(package_id: str, t: Tenant, **overrides: Any) -> dict[str, Any]:
    """Marketing members request with a justification; their manager, then the catalog owner,
    approve; 90 days; extendable once, with approval."""
    body: dict[str, Any] = {
        "displayName": EMPLOYEES,
        "description": "Employees of Marketing",
        "accessPackage": {"id": package_id},
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [
            {"@odata.type": "#microsoft.graph.groupMembers", "groupId": t.ids["marketing"]}
        ],
        "expiration": {"type": "afterDuration", "duration": "P90D"},
        "requestorSettings": {
            "enableTargetsToSelfAddAccess": True,
            "enableTargetsToSelfUpdateAccess": True,
            "enableTargetsToSelfRemoveAccess": True,
            "allowCustomAssignmentSchedule": False,
            "enableOnBehalfRequestorsToAddAccess": False,
            "enableOnBehalfRequestorsToUpdateAccess": False,
            "enableOnBehalfRequestorsToRemoveAccess": False,
            "onBehalfRequestors": [],
        },
        "requestApprovalSettings": {
            "isApprovalRequiredForAdd": True,
            "isApprovalRequiredForUpdate": True,
            "isRequestorJustificationRequired": True,
            "stages": [
                {
                    "durationBeforeAutomaticDenial": "P14D",
                    "isApproverJustificationRequired": False,
                    "isEscalationEnabled": True,
                    "durationBeforeEscalation": "P7D",
                    "primaryApprovers": [
                        {"@odata.type": "#microsoft.graph.requestorManager", "managerLevel": 1}
                    ],
                    "fallbackPrimaryApprovers": [
                        {"@odata.type": "#microsoft.graph.singleUser", "userId": t.ids["mamta"]}
                    ],
                    "escalationApprovers": [
                        {"@odata.type": "#microsoft.graph.singleUser", "userId": t.ids["hana"]}
                    ],
                    "fallbackEscalationApprovers": [],
                },
                {
                    "durationBeforeAutomaticDenial": "P14D",
                    "isApproverJustificationRequired": True,
                    "isEscalationEnabled": False,
                    "primaryApprovers": [
                        {"@odata.type": "#microsoft.graph.singleUser", "userId": t.ids["mamta"]}
                    ],
                },
            ],
        },
    }
    body.update(overrides)
    return body


def contractors_policy(package_id: str) -> dict[str, Any]:
    """Administrator direct assignment only, 30 days, no approval."""
    return {
        "displayName": CONTRACTORS,
        "description": "Assignment managers assign contractors directly",
        "accessPackage": {"id": package_id},
        "allowedTargetScope": "notSpecified",
        "specificAllowedTargets": [],
        "expiration": {"type": "afterDuration", "duration": "P30D"},
        "requestorSettings": {"enableTargetsToSelfAddAccess": False},
        "requestApprovalSettings": {"isApprovalRequiredForAdd": False, "stages": []},
    }


@dataclass
class Campaign:
    t: Tenant
    catalog: str
    package: str
    employees: str
    contractors: str
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_roles(self, alias: str, package: str, names: set[str]) -> None:
        for name in sorted(names):
            role = self.roles[name]
            r = self.t.post(
                alias,
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

    def new_package(self, alias: str, name: str, roles: set[str]) -> str:
        r = self.t.create_package(alias, self.catalog, name)
        assert r.status_code == 201, r.text
        package = str(r.json()["id"])
        self.add_roles(alias, package, roles)
        return package

    def policy(self, alias: str, body: dict[str, Any]) -> str:
        r = self.t.post(alias, f"{EM}/assignmentPolicies", body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def add_people(t: Tenant) -> None:
    """Carl, a contractor; Alex, an assignment manager; Sofia reports to Omar."""
    with t.db.write() as s:
        root = Ctx(s, system_actor("test"), t.clock())
        for alias, name in (("carl", "Carl Contractor"), ("alex", "Alex Assign")):
            t.ids[alias] = d.create_user(
                root,
                user_principal_name=f"{alias}@{DOMAIN}",
                display_name=name,
                department="Marketing",
                mail=f"{alias}@{DOMAIN}",
            ).id
        d.update_user(root, t.ids["sofia"], {"manager": t.ids["omar"]})
        for alias in ("sofia", "omar", "mamta", "hana", "lena"):
            d.update_user(root, t.ids[alias], {"mail": f"{alias}@{DOMAIN}"})


# The database of the campaign built last: ``remote`` routes there when it is given none.
_LAST: dict[str, Database] = {}


def build_campaign(t: Tenant) -> Campaign:
    """Mamta's Marketing catalog with a group, an app and a site; Omar co-owns it, Lena manages
    packages, Alex manages assignments; Lena's "Campaign 2027" grants the campaigns group's
    Member role, the planner's Planner role and the hub's Members role, under two policies."""
    _LAST["db"] = t.db
    add_people(t)
    catalog = t.create_catalog("mamta", "Marketing")
    for system, key in (
        ("AadGroup", "campaigns"),
        ("AadApplication", "planner"),
        ("SharePointOnline", "mksite"),
    ):
        r = t.add_resource("mamta", catalog, system, t.ids[key])
        assert r.status_code == 201, r.text
    for who, role in (
        ("omar", CATALOG_OWNER),
        ("lena", PACKAGE_MANAGER),
        ("alex", ASSIGNMENT_MANAGER),
    ):
        r = t.assign_role("mamta", who, role.id, catalog)
        assert r.status_code == 201, r.text
    listed = t.get("lena", f"{EM}/catalogs/{catalog}/resourceRoles", **{"$expand": "resource"})
    assert listed.status_code == 200, listed.text
    roles = {r["displayName"]: r for r in listed.json()["value"]}
    c = Campaign(t, catalog, "", "", "", roles)
    c.package = c.new_package("lena", "Campaign 2027", {"Member", "Planner", "Members"})
    c.employees = c.policy("lena", employees_policy(c.package, t))
    c.contractors = c.policy("lena", contractors_policy(c.package))
    return c


# ---------------------------------------------------------------------------- driving it


def user_add(t: Tenant, alias: str, package: str, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "requestType": "userAdd",
        "assignment": {"accessPackageId": package, "targetId": t.ids[alias]},
        "justification": "Working on the 2027 campaign",
    }
    if "policy" in extra:
        body["assignment"]["assignmentPolicyId"] = extra.pop("policy")
    body.update(extra)
    return t.post(alias, f"{EM}/assignmentRequests", body)


def admin_add(t: Tenant, alias: str, target: str, package: str, policy: str) -> httpx.Response:
    return t.post(
        alias,
        f"{EM}/assignmentRequests",
        {
            "requestType": "adminAdd",
            "assignment": {
                "targetId": t.ids.get(target, target),
                "assignmentPolicyId": policy,
                "accessPackageId": package,
            },
        },
    )


def open_stage(t: Tenant, alias: str, request_id: str) -> dict[str, Any]:
    r = t.get(alias, f"{EM}/accessPackageAssignmentApprovals/{request_id}")
    assert r.status_code == 200, r.text
    return next(s for s in r.json()["stages"] if s["status"] == "InProgress")


def decide(
    t: Tenant, alias: str, request_id: str, result: str = "Approve", why: str = "ok"
) -> httpx.Response:
    stage = open_stage(t, alias, request_id)
    return t.call(
        alias,
        "PATCH",
        f"{EM}/accessPackageAssignmentApprovals/{request_id}/stages/{stage['id']}",
        {"reviewResult": result, "justification": why},
    )


def request_state(t: Tenant, alias: str, request_id: str) -> str:
    r = t.get(alias, f"{EM}/assignmentRequests/{request_id}")
    assert r.status_code == 200, r.text
    return str(r.json()["state"])


def worker(t: Tenant, settings: Settings) -> Worker:
    return Worker(t.db, settings, clock=t.clock, worker_id="test-worker")


@contextmanager
def session_of(t: Tenant) -> Iterator[Any]:
    with t.db.write() as s:
        yield s


def holdings(t: Tenant, alias: str) -> set[str]:
    """What the user holds in remit's own directory: group memberships (by group alias), app
    roles and site roles, by display name."""
    uid = t.ids[alias]
    names = {v: k for k, v in t.ids.items()}
    with t.db.write() as s:
        groups = {
            names.get(g, g)
            for g in s.execute(
                select(GroupMember.group_id).where(GroupMember.member_id == uid)
            ).scalars()
        }
        apps = set(
            s.execute(
                select(AppRoleAssignment.app_role_id).where(AppRoleAssignment.principal_id == uid)
            ).scalars()
        )
        sites = set(
            s.execute(
                select(SiteRoleMember.site_role_id).where(SiteRoleMember.user_id == uid)
            ).scalars()
        )
    return (
        {f"group:{g}" for g in groups} | {f"app:{a}" for a in apps} | {f"site:{x}" for x in sites}
    )


# ---------------------------------------------------------------------------- operations level


def add_users(t: Tenant, prefix: str, count: int) -> list[str]:
    """``count`` plain member users, in one transaction, known to ``t`` as ``{prefix}{i}``."""
    with t.db.write() as s:
        root = Ctx(s, system_actor("test"), t.clock())
        for i in range(count):
            alias = f"{prefix}{i}"
            t.ids[alias] = d.create_user(
                root,
                user_principal_name=f"{alias}@{DOMAIN}",
                display_name=f"{prefix.title()} {i}",
                department="Sales",
            ).id
    return [t.ids[f"{prefix}{i}"] for i in range(count)]


def actor_at(t: Tenant, user_id: str) -> Actor:
    """The user as an operation would see them at the tenant clock's now."""
    with t.db.read() as conn:
        return load_actor(conn, user_id, now=t.clock())


def in_transaction(t: Tenant, actor: Actor, call: Callable[[Ctx], T]) -> T:
    """``call`` in one write transaction of its own, as the API runs an operation."""
    with t.db.write() as s:
        return call(Ctx(s, actor, t.clock()))


def role_holders(t: Tenant, package_id: str) -> dict[RoleRef, set[str]]:
    """Who holds each resource role of the package in its target (remit's own directory, or
    the remote target its resource is routed to)."""
    with t.db.write() as s:
        roles = delivery.package_roles(s, [package_id])[package_id]
        found = registry.connectors(s, {r.target_id for r in roles})
        held: dict[RoleRef, set[str]] = {}
        far: list[tuple[RoleRef, RemoteConnector]] = []
        for r in roles:
            connector = found[r.target_id]
            assert not isinstance(connector, ConnectorError), connector
            if connector.local:
                held[r] = connector.holders(s, r)
            else:
                far.append((r, connector))
    # A remote target is asked with no transaction open, as delivery calls it.
    return held | {r: connector.holders(r) for r, connector in far}


class Flaky:
    """A *remote* target behind a switch: its grants and revocations wait for the worker's sync
    job, which calls it with no database transaction open. It keeps its state in remit's own
    directory (through the builtin connector), written in short transactions of its own, as a
    peer system sharing the database would; while ``down`` every call fails. ``during`` runs
    at the start of each call, before anything else (a test's probe); ``log`` records each
    call: ("grant" | "revoke", subject, role origin id)."""

    name = "flaky"
    local: Literal[False] = False

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inner = BuiltinConnector()
        self.down: str | None = None  # None, "transient" or "permanent"
        self.calls = 0
        self.log: list[tuple[str, str, str]] = []
        self.during: Callable[[str, str, RoleRef], None] | None = None

    def _check(self, what: str, subject_id: str, role: RoleRef) -> None:
        self.calls += 1
        if self.during is not None:
            self.during(what, subject_id, role)
        if self.down:
            raise ConnectorError("the target is unavailable", permanent=self.down == "permanent")
        self.log.append((what, subject_id, role.role_origin_id))

    def grant(
        self, subject_id: str, role: RoleRef, *, valid_until: datetime | None, now: datetime
    ) -> None:
        self._check("grant", subject_id, role)
        with self.db.write() as s:
            self.inner.grant(s, subject_id, role, valid_until=valid_until, now=now)

    def revoke_many(self, items: Sequence[Revocation]) -> Outcomes:
        for item in items:
            self._check("revoke", item.subject_id, item.role)
        with self.db.write() as s:
            return self.inner.revoke_many(s, items)

    def holders(self, role: RoleRef) -> set[str]:
        with self.db.session() as s:
            return self.inner.holders(s, role)


_DIRECTORY = {"AadGroup": Group.id, "AadApplication": Application.id, "SharePointOnline": Site.id}
_KINDS = itertools.count(1)


@contextmanager
def routed(
    db: Database, origin_system: str, connector: Connector, resources: Sequence[str] | None = None
) -> Iterator[str]:
    """Deliver the roles of ``resources`` (default: every resource of ``origin_system`` in
    remit's directory) through ``connector`` while the block runs: a target row of a test kind
    whose factory gives ``connector``, and a route per resource. Yields the target's id. After
    the block the resources go back to the builtin target, and the kind is gone (rows still
    naming its target fail for good, unless granted again from nothing: ``delivery``)."""
    kind = f"test-{next(_KINDS)}"
    registry.register_kind(kind, lambda target: connector)
    try:
        with db.write() as s:
            if resources is None:
                resources = sorted(s.execute(select(_DIRECTORY[origin_system])).scalars())
            target_id = targets.add_target(
                s,
                kind=kind,
                display_name=connector.name,
                settings={},
                now=datetime.now(UTC),
            )
            targets.route(s, origin_system, list(resources), target_id, datetime.now(UTC))
        try:
            yield target_id
        finally:
            with db.write() as s:
                targets.unroute(s, origin_system, list(resources))
    finally:
        registry.unregister_kind(kind)


@contextmanager
def remote(origin_system: str, db: Database | None = None) -> Iterator[Flaky]:
    """Route ``origin_system``'s resources to a ``Flaky`` target while the block runs (in
    ``db``, or the database of the campaign built last)."""
    database = db or _LAST["db"]
    connector = Flaky(database)
    with routed(database, origin_system, connector):
        yield connector
