"""The world of the lifecycle scenario (issue #3), built through the API, and helpers to drive
requests, approvals and the worker. Shared by the scenario, matrix, race and crash tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.authz.actor import Actor, load_actor, system_actor
from remit.authz.roles import ASSIGNMENT_MANAGER, CATALOG_OWNER, PACKAGE_MANAGER
from remit.connectors import registry
from remit.connectors.base import ConnectorError, RoleRef
from remit.connectors.builtin import BuiltinConnector
from remit.connectors.registry import connector_for
from remit.context import Ctx
from remit.directory import operations as d
from remit.jobs.runner import Worker
from remit.lifecycle import delivery
from remit.models.directory import AppRoleAssignment, GroupMember, SiteRoleMember
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


def build_campaign(t: Tenant) -> Campaign:
    """Mamta's Marketing catalog with a group, an app and a site; Omar co-owns it, Lena manages
    packages, Alex manages assignments; Lena's "Campaign 2027" grants the campaigns group's
    Member role, the planner's Planner role and the hub's Members role, under two policies."""
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
    """Who holds each resource role of the package in the target (remit's own directory)."""
    with t.db.write() as s:
        roles = delivery.package_roles(s, [package_id])[package_id]
        return {r: connector_for(r.origin_system).holders(s, r) for r in roles}


class Flaky:
    """The builtin connector behind a switch, as a *remote* target: its grants and revocations
    wait for the worker's sync job (nothing is applied in the transaction that changes the
    assignments), and while ``down`` every call fails."""

    name = "flaky"
    local = False

    def __init__(self) -> None:
        self.inner = BuiltinConnector()
        self.down: str | None = None  # None, "transient" or "permanent"
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise ConnectorError("the target is unavailable", permanent=self.down == "permanent")

    def grant(
        self,
        session: Session,
        subject_id: str,
        role: RoleRef,
        *,
        valid_until: datetime | None,
        now: datetime,
    ) -> None:
        self._check()
        self.inner.grant(session, subject_id, role, valid_until=valid_until, now=now)

    def revoke(self, session: Session, subject_id: str, role: RoleRef) -> None:
        self._check()
        self.inner.revoke(session, subject_id, role)

    def holders(self, session: Session, role: RoleRef) -> set[str]:
        return self.inner.holders(session, role)


@contextmanager
def remote(origin_system: str) -> Iterator[Flaky]:
    """Route ``origin_system``'s roles to a ``Flaky`` connector while the block runs."""
    connector = Flaky()
    previous = registry.register(origin_system, connector)
    try:
        yield connector
    finally:
        if previous is not None:
            registry.register(origin_system, previous)
