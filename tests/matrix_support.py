"""The delegation world shared by the R1 matrix and the R2 amplification tests.

On top of the factories' tenant (directory, "Department managers" as catalog creators) it builds,
through the operations as the system actor, one catalog per scope with resources, packages,
incompatibilities and role assignments, and one target reserved for each write, so that the
writes of one persona never disturb each other. Keys are ``<scope>:<thing>``; ``own`` is the
catalog on which the personas hold their roles, ``other`` one on which they hold none.

Given the settings (the matrix does; R2 does not need them), ``build_world`` adds the lifecycle:
in each of those catalogs policies (request, direct, automatic, and one reserved per policy
write), requests waiting for approval by the plain member (``nobody``), a cancelled one,
delivered assignments and one whose delivery failed (its group was deleted from the directory),
and custom extensions; a self-service catalog where no persona holds a role and every persona
has requested access for themself (``self:<thing>:<alias>``: a request pending on the approval
of a group of all personas, so each is named an approver of their own request; one to cancel; a
delivered assignment); connected organizations with sponsors. The job queue is drained, as a
running service would have done, before the self-service requests (whose ~180 approval emails
stay queued: sending them would double the cost of the tests that need them).

``fingerprint`` digests every row of every table, so a refused write can be shown to have
changed nothing at all.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from remit.authz.actor import load_actor, system_actor
from remit.authz.roles import (
    ASSIGNMENT_MANAGER,
    CATALOG_CREATOR,
    CATALOG_OWNER,
    CATALOG_READER,
    PACKAGE_MANAGER,
)
from remit.catalogs import operations as cats
from remit.catalogs import resources as res
from remit.context import Ctx
from remit.db import Database
from remit.directory import operations as d
from remit.external import orgs, sponsors
from remit.jobs.runner import Worker
from remit.lifecycle import package_roles, requests
from remit.models import Base
from remit.models.audit import AuditEvent
from remit.models.authz import RoleAssignment
from remit.models.catalogs import ResourceRole, ResourceScope
from remit.models.directory import DirectoryRoleAssignment, Group
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest
from remit.notify import extensions
from remit.packages import operations as pkgs
from remit.policies import operations as policies
from remit.roles.operations import create_role_assignment
from remit.settings import Settings
from tests.factories import DOMAIN, Tenant, upn

# The four catalog-scoped roles by the short names the tables use.
CATALOG_ROLES = {
    "owner": CATALOG_OWNER.id,
    "apm": PACKAGE_MANAGER.id,
    "apam": ASSIGNMENT_MANAGER.id,
    "reader": CATALOG_READER.id,
}


@dataclass(frozen=True)
class Persona:
    key: str  # the column name in the matrix
    alias: str  # the user in the tenant ("" for the anonymous caller)
    holds: str


PERSONAS: tuple[Persona, ...] = (
    Persona("ga", "admin", "Global Administrator"),
    Persona("iga", "hana", "Identity Governance Administrator"),
    Persona("creator", "joe", "catalog creator (through Department managers), no catalog yet"),
    Persona("owner", "omar", "Catalog owner of the own catalog"),
    Persona("apm", "lena", "Access package manager on the own catalog"),
    Persona("apam", "sofia", "Access package assignment manager on the own catalog"),
    Persona("reader", "ines", "Catalog reader on the own catalog"),
    Persona("useradmin", "ursula", "User Administrator, no catalog role"),
    Persona("member", "nobody", "plain member user"),
    Persona("nested", "nina", "Catalog owner only through the nested groups Outer > Inner"),
)
ANONYMOUS = Persona("anonymous", "", "no token")

# The catalog roles the role personas hold on the own catalogs, directly.
DIRECT_ROLES = (
    ("omar", CATALOG_OWNER),
    ("lena", PACKAGE_MANAGER),
    ("sofia", ASSIGNMENT_MANAGER),
    ("ines", CATALOG_READER),
)


@dataclass
class World:
    """Ids by name: the world's own keys, then the factories' aliases (users, groups, apps)."""

    t: Tenant
    ids: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        return self.ids[key] if key in self.ids else self.t.ids[key]


@functools.cache
def _scans() -> list[tuple[str, str]]:
    """One ordered scan per table (once every model is loaded: on the first digest)."""
    return [
        (
            table.name,
            f"SELECT * FROM {table.name} ORDER BY "  # noqa: S608 - our own table names
            + ", ".join(c.name for c in table.primary_key.columns),
        )
        for table in Base.metadata.sorted_tables
    ]


def fingerprint(db: Database) -> str:
    """A digest of every row of every table: equal before and after means nothing changed.

    The rows are read as the driver returns them (no ORM type processing): the matrix takes one
    digest per write, and this is most of its cost.
    """
    digest = hashlib.sha256()
    with db.read() as conn:
        for name, scan in _scans():
            digest.update(f"{name}:{conn.exec_driver_sql(scan).fetchall()!r}".encode())
    return digest.hexdigest()


ALL_SCOPES = ("own", "other", "self", "tenant")


def build_world(
    t: Tenant, settings: Settings | None = None, scopes: Collection[str] = ALL_SCOPES
) -> World:
    """The delegation world; with ``settings``, also the lifecycle of ``scopes`` (module doc):
    a test that runs the lines of one scope needs only that scope's objects."""
    w = World(t)
    with t.db.write() as s:
        root = Ctx(s, system_actor("matrix"), t.clock())
        _directory(root, w)
        _catalogs(root, w)
        for scope, group, other_group in (
            ("own", "marketing", "legal"),
            ("other", "finance", "campaigns"),
        ):
            _catalog_contents(root, w, scope, group, other_group)
        wanted = set(scopes) if settings is not None else set()
        catalogs = [scope for scope in ("own", "other") if scope in wanted]
        for scope in catalogs:
            _lifecycle(root, w, scope)
        if "tenant" in wanted:
            _external(root, w)
    _events(w)
    if settings is not None and catalogs:
        Worker(t.db, settings, clock=t.clock, worker_id="matrix").drain()
        _after_delivery(w, catalogs)
    if "self" in wanted:
        with t.db.write() as s:
            _self_service(Ctx(s, system_actor("matrix"), t.clock()), w)
    return w


def _events(w: World) -> None:
    """The first audit event of each catalog and of the tenant, read after the commit (events
    may join the chain only when their transaction commits)."""
    with w.t.db.read() as conn:
        for key, catalog in (("tenant", None), ("own", w.ids["own"]), ("other", w.ids["other"])):
            where = AuditEvent.catalog_id == catalog if catalog else AuditEvent.catalog_id.is_(None)
            w.ids[f"{key}:event"] = conn.execute(
                select(AuditEvent.id).where(where).order_by(AuditEvent.seq).limit(1)
            ).scalar_one()


def _directory(root: Ctx, w: World) -> None:
    t, ids = w.t, w.ids
    t.ids["nina"] = d.create_user(
        root, user_principal_name=upn("nina"), display_name="Nina Nested", department="Marketing"
    ).id
    personas = [t.ids[p.alias] for p in PERSONAS]
    # A role only through nesting: Outer > Inner > nina; Outer holds Catalog owner.
    ids["inner"] = d.create_group(root, display_name="Inner", member_ids=[t.ids["nina"]]).id
    ids["outer"] = d.create_group(root, display_name="Outer", member_ids=[ids["inner"]]).id
    # Directory objects that every persona owns, so that the resource half of §2.2 holds for
    # all of them and the matrix checks the catalog half alone (R2 checks the other half).
    ids["own:group"] = d.create_group(
        root,
        display_name="Matrix group",
        owner_ids=[*personas, t.ids["kenji"]],
        member_ids=[t.ids["kenji"]],
    ).id
    ids["removable"] = d.create_group(root, display_name="Matrix removable", owner_ids=personas).id
    ids["own:app"] = d.create_application(
        root, display_name="Matrix app", app_roles=[("User", "user")], owner_ids=personas
    ).id
    ids["own:site"] = d.create_site(
        root,
        display_name="Matrix site",
        web_url=f"https://sites.{DOMAIN}/matrix",
        admin_ids=personas,
    ).id
    ids.update({"other:group": t.ids["finance"], "other:app": t.ids["ledger"]})
    ids.update({"other:site": t.ids["finsite"], "other:user": t.ids["mark"]})
    # Who joins or leaves each group in the membership and ownership writes.
    ids.update({"own:newcomer": t.ids["mark"], "other:newcomer": t.ids["kenji"]})
    ids.update({"own:leaver": t.ids["kenji"], "other:leaver": t.ids["mark"]})
    d.update_user(root, t.ids["sofia"], {"manager": t.ids["mamta"]})
    ids["groups_admin"] = root.session.execute(
        select(DirectoryRoleAssignment.id).where(
            DirectoryRoleAssignment.principal_id == t.ids["kenji"]
        )
    ).scalar_one()


def grant(root: Ctx, principal: str, role_id: str, catalog_id: str | None) -> str:
    scope = f"/AccessPackageCatalog/{catalog_id}" if catalog_id else "/"
    return create_role_assignment(
        root, principal_id=principal, role_definition_id=role_id, app_scope_id=scope
    ).id


def _catalogs(root: Ctx, w: World) -> None:
    t, ids = w.t, w.ids
    for key, name in (
        ("own", "Marketing"),
        ("other", "Finance"),
        ("own_empty", "Marketing archive"),
        ("other_empty", "Finance archive"),
    ):
        ids[key] = cats.create_catalog(root, display_name=name, description=name).id
    for cat in ("own", "own_empty"):
        for alias, role in DIRECT_ROLES:
            # The persona's own explicit assignment: the "self" scope of role reads.
            ids[f"{cat}:self:{alias}"] = grant(root, t.ids[alias], role.id, ids[cat])
        grant(root, ids["outer"], CATALOG_OWNER.id, ids[cat])
    # Someone else's assignments, one per role: what the role reads show and deletes remove.
    ids["own:ra"] = ids["own:ra:owner"] = grant(root, t.ids["mamta"], CATALOG_OWNER.id, ids["own"])
    for role, key in (
        (PACKAGE_MANAGER, "apm"),
        (ASSIGNMENT_MANAGER, "apam"),
        (CATALOG_READER, "reader"),
    ):
        ids[f"own:ra:{key}"] = grant(root, t.ids["kenji"], role.id, ids["own"])
    ids["other:ra"] = ids["other:ra:owner"] = grant(
        root, t.ids["mark"], CATALOG_OWNER.id, ids["other"]
    )
    grant(root, t.ids["mark"], CATALOG_OWNER.id, ids["other_empty"])
    ids["tenant:ra"] = ids["tenant:ra:creator"] = _creator_assignment(
        root.session, t.ids["managers"]
    )
    # Who receives a new role in the role-assignment writes.
    ids.update({"own:assignee": t.ids["mark"], "other:assignee": t.ids["mamta"]})
    ids["tenant:assignee"] = t.ids["kenji"]
    ids["creator_role"] = CATALOG_CREATOR.id


def _creator_assignment(session: Session, principal: str) -> str:
    return session.execute(
        select(RoleAssignment.id).where(
            RoleAssignment.principal_id == principal,
            RoleAssignment.role_definition_id == CATALOG_CREATOR.id,
        )
    ).scalar_one()


def _catalog_contents(root: Ctx, w: World, scope: str, group: str, other_group: str) -> None:
    """A group resource, a removable one, four packages, a resource role, SoD links."""
    t, ids, s = w.t, w.ids, root.session
    catalog = ids[scope]
    req = res.add_resource(
        root, catalog_id=catalog, origin_system_name="AadGroup", origin_id=t.ids[group]
    )
    ids[f"{scope}:resreq"] = req.id
    ids[f"{scope}:resource"] = resource = str(req.resource_id)
    roles = dict(
        s.execute(
            select(ResourceRole.display_name, ResourceRole.id).where(
                ResourceRole.resource_id == resource
            )
        ).all()
    )
    ids[f"{scope}:role:member"], ids[f"{scope}:role:owner"] = roles["Member"], roles["Owner"]
    ids[f"{scope}:scope"] = s.execute(
        select(ResourceScope.id).where(ResourceScope.resource_id == resource)
    ).scalar_one()
    ids[f"{scope}:removable"] = str(
        res.add_resource(
            root, catalog_id=catalog, origin_system_name="AadGroup", origin_id=ids["removable"]
        ).resource_id
    )
    for key in ("pkg", "pkg2", "pkg3", "pkg_del"):
        ids[f"{scope}:{key}"] = pkgs.create_package(
            root, display_name=f"{scope} {key}", catalog_id=catalog
        ).id
    pkg = ids[f"{scope}:pkg"]
    ids[f"{scope}:rrs"] = pkgs.rrs_id(
        package_roles.add_resource_role_scope(root, pkg, role_id=ids[f"{scope}:role:member"])
    )
    pkgs.add_incompatible_package(root, pkg, ids[f"{scope}:pkg2"])
    ids[f"{scope}:sod_group"] = t.ids[other_group]
    pkgs.add_incompatible_group(root, pkg, t.ids[other_group])
    ids[f"{scope}:new_sod_group"] = t.ids["tier0"]


# ---------------------------------------------------------------- the lifecycle

G = "#microsoft.graph."
# Nobody matches this rule, so the automatic policies assign no one.
NOBODY_RULE = '(user.department -eq "Nowhere")'


def direct_policy(package_id: str, name: str = "Direct assignment") -> dict[str, Any]:
    """Managers assign directly (no requests, no approval), for 30 days."""
    return {
        "displayName": name,
        "description": "assigned by the catalog's managers",
        "accessPackage": {"id": package_id},
        "allowedTargetScope": "notSpecified",
        "specificAllowedTargets": [],
        "expiration": {"type": "afterDuration", "duration": "P30D"},
        "requestorSettings": {"enableTargetsToSelfAddAccess": False},
        "requestApprovalSettings": {"isApprovalRequiredForAdd": False, "stages": []},
    }


def auto_policy(package_id: str, name: str = "Automatic") -> dict[str, Any]:
    """An automatic assignment policy whose rule matches nobody."""
    return {
        "displayName": name,
        "accessPackage": {"id": package_id},
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [
            {"@odata.type": G + "attributeRuleMembers", "membershipRule": NOBODY_RULE}
        ],
        "automaticRequestSettings": {"requestAccessForAllowedTargets": True},
        "expiration": {"type": "noExpiration"},
    }


def requests_policy(package_id: str, requesters: str, approver: str) -> dict[str, Any]:
    """The members of ``requesters`` may request, with a question; ``approver`` approves."""
    return {
        "displayName": "Requests",
        "accessPackage": {"id": package_id},
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [{"@odata.type": G + "groupMembers", "groupId": requesters}],
        "expiration": {"type": "afterDuration", "duration": "P30D"},
        "requestorSettings": {"enableTargetsToSelfAddAccess": True},
        "requestApprovalSettings": {
            "isApprovalRequiredForAdd": True,
            "stages": [
                {"primaryApprovers": [{"@odata.type": G + "singleUser", "userId": approver}]}
            ],
        },
        "questions": [
            {"@odata.type": G + "accessPackageTextInputQuestion", "text": "Project?"},
        ],
    }


def self_service_policy(package_id: str, approvers: str | None) -> dict[str, Any]:
    """Every member may request for themself; approved by ``approvers`` (a group) if given."""
    stages = [{"primaryApprovers": [{"@odata.type": G + "groupMembers", "groupId": approvers}]}]
    return {
        "displayName": "Self-service",
        "accessPackage": {"id": package_id},
        "allowedTargetScope": "allMemberUsers",
        "expiration": {"type": "afterDuration", "duration": "P30D"},
        "requestorSettings": {"enableTargetsToSelfAddAccess": True},
        "requestApprovalSettings": {
            "isApprovalRequiredForAdd": approvers is not None,
            "stages": stages if approvers else [],
        },
    }


def _as(root: Ctx, user_id: str) -> Ctx:
    """The same transaction, acting as the user."""
    return Ctx(root.session, load_actor(root.session, user_id, now=root.now), root.now)


def _package(root: Ctx, catalog_id: str, name: str) -> str:
    return pkgs.create_package(root, display_name=name, catalog_id=catalog_id).id


def _policy(root: Ctx, body: dict[str, Any]) -> str:
    return policies.create_policy(root, body).id


def _request_for_self(ctx: Ctx, package_id: str) -> AssignmentRequest:
    return requests.submit(ctx, kind="userAdd", package_id=package_id, target_id=ctx.actor.user_id)


def _assign(root: Ctx, target_id: str, package_id: str, policy_id: str) -> AssignmentRequest:
    return requests.submit(
        root, kind="adminAdd", package_id=package_id, policy_id=policy_id, target_id=target_id
    )


def _open_stage(root: Ctx, request_id: str) -> str:
    return root.session.execute(
        select(ApprovalStage.id).where(
            ApprovalStage.request_id == request_id, ApprovalStage.status == "InProgress"
        )
    ).scalar_one()


# One user per request or assignment of the lifecycle package (a user has at most one open request
# and one active assignment per package); ``held`` also holds the extra package (additionalAccess
# lists it), ``assignee`` is the target of the direct assignment line.
LIFECYCLE_USERS = (
    *("pending", "cancel", "decide", "done"),
    *("held", "remove", "update", "reprocess", "failed", "assignee"),
)


def _lifecycle(root: Ctx, w: World, scope: str) -> None:
    """One catalog's policies, requests, assignments and custom extensions."""
    ids, catalog = w.ids, w.ids[scope]
    users = {
        role: d.create_user(
            root,
            user_principal_name=upn(f"{scope}.{role}"),
            display_name=f"{scope.title()} {role}",
            department="Operations",
        ).id
        for role in LIFECYCLE_USERS
    }
    ids[f"{scope}:lc_assignee"] = users["assignee"]
    requesters = d.create_group(
        root,
        display_name=f"Matrix {scope} requesters",
        member_ids=[users[r] for r in ("pending", "cancel", "decide", "done")],
    ).id
    # The lifecycle's package grants the catalog's group resource; another one has no role; a
    # third grants a group that is then deleted from the directory, so its delivery fails.
    ids[f"{scope}:lc"] = lc = _package(root, catalog, f"{scope} lifecycle")
    package_roles.add_resource_role_scope(root, lc, role_id=ids[f"{scope}:role:member"])
    ids[f"{scope}:lc_extra"] = extra = _package(root, catalog, f"{scope} extra")
    failing = _package(root, catalog, f"{scope} failing")
    doomed = d.create_group(root, display_name=f"Matrix {scope} doomed").id
    resource = res.add_resource(
        root, catalog_id=catalog, origin_system_name="AadGroup", origin_id=doomed
    ).resource_id
    package_roles.add_resource_role_scope(
        root,
        failing,
        role_id=root.session.execute(
            select(ResourceRole.id).where(
                ResourceRole.resource_id == resource, ResourceRole.display_name == "Member"
            )
        ).scalar_one(),
    )
    root.session.execute(delete(Group).where(Group.id == doomed))
    # Policies: requests approved by the plain member; direct assignment; one reserved per write.
    request_policy = policies.create_policy(
        root, requests_policy(lc, requesters, approver=w.t.ids["nobody"])
    )
    ids[f"{scope}:policy"] = request_policy.id
    ids[f"{scope}:question"] = request_policy.questions[0]["id"]
    ids[f"{scope}:requestable"] = lc
    ids[f"{scope}:direct"] = direct = _policy(root, direct_policy(lc))
    ids[f"{scope}:policy_put"] = _policy(root, direct_policy(lc, "To replace"))
    ids[f"{scope}:policy_same"] = _policy(root, direct_policy(lc, "Unchanged"))
    ids[f"{scope}:policy_del"] = _policy(root, direct_policy(lc, "To delete"))
    for key in ("auto_put", "auto_del", "auto_new", "to_auto"):
        ids[f"{scope}:{key}_pkg"] = _package(root, catalog, f"{scope} {key}")
    ids[f"{scope}:auto_put"] = _policy(root, auto_policy(ids[f"{scope}:auto_put_pkg"]))
    ids[f"{scope}:auto_del"] = _policy(root, auto_policy(ids[f"{scope}:auto_del_pkg"]))
    ids[f"{scope}:to_auto"] = _policy(root, direct_policy(ids[f"{scope}:to_auto_pkg"]))
    # Requests waiting for the member's approval; one cancelled by its requestor.
    for key, who in (("pending", "pending"), ("pending_cancel", "cancel"), ("to_decide", "decide")):
        ids[f"{scope}:{key}"] = request = _request_for_self(_as(root, users[who]), lc).id
        ids[f"{scope}:{key}:stage"] = _open_stage(root, request)
    done = _request_for_self(_as(root, users["done"]), lc)
    ids[f"{scope}:done"] = requests.cancel(_as(root, users["done"]), done.id).id
    # Direct assignments, delivered by the worker (the failing one fails).
    for key, who in (
        ("held", "held"),
        ("held_remove", "remove"),
        ("held_update", "update"),
        ("held_reprocess", "reprocess"),
    ):
        ids[f"{scope}:{key}"] = str(_assign(root, users[who], lc, direct).assignment_id)
    _assign(root, users["held"], extra, _policy(root, direct_policy(extra)))
    ids[f"{scope}:failed"] = _assign(
        root, users["failed"], failing, _policy(root, direct_policy(failing))
    ).id
    for key in ("ext", "ext_del"):
        ids[f"{scope}:{key}"] = extensions.create_extension(
            root,
            catalog_id=catalog,
            display_name=f"Matrix {key}",
            endpoint_configuration={"url": f"https://hooks.{DOMAIN}/{scope}/{key}"},
        )[0].id


def _self_service(root: Ctx, w: World) -> None:
    """A catalog where no persona holds a role and every persona has requested access for
    themself: pending on the approval of a group they all belong to (so each is named as an
    approver of their own request), pending to be cancelled, and delivered."""
    t, ids = w.t, w.ids
    catalog = cats.create_catalog(root, display_name="Self-service", description="requests").id
    everyone = d.create_group(
        root, display_name="Matrix personas", member_ids=[t.ids[p.alias] for p in PERSONAS]
    ).id
    packages = {
        key: _package(root, catalog, f"self {key}") for key in ("pending", "cancel", "held", "new")
    }
    for key, package in packages.items():
        _policy(
            root, self_service_policy(package, everyone if key in ("pending", "cancel") else None)
        )
    ids["self:requestable"] = packages["new"]
    for p in PERSONAS:
        me = _as(root, t.ids[p.alias])
        pending = _request_for_self(me, packages["pending"]).id
        stage = _open_stage(root, pending)
        # Deciding is refused to everyone here, so the request to decide is the pending one.
        for key in ("pending", "to_decide"):
            ids[f"self:{key}:{p.alias}"], ids[f"self:{key}:stage:{p.alias}"] = pending, stage
        ids[f"self:pending_cancel:{p.alias}"] = _request_for_self(me, packages["cancel"]).id
        held = str(_request_for_self(me, packages["held"]).assignment_id)
        # Reprocessing is the only write on it in the self scope.
        ids[f"self:held:{p.alias}"] = ids[f"self:held_reprocess:{p.alias}"] = held


def _external(root: Ctx, w: World) -> None:
    """Two connected organizations; the first with an internal and an external sponsor."""
    t, ids = w.t, w.ids
    guests = [
        d.create_user(
            root,
            user_principal_name=f"{name}_fabrikam.example@{DOMAIN}",
            display_name=f"{name.title()} (Fabrikam)",
            user_type="Guest",
        ).id
        for name in ("pat", "quinn")
    ]
    for key, name in (("org", "fabrikam"), ("org_del", "northwind")):
        ids[f"tenant:{key}"] = orgs.create_organization(
            root,
            display_name=name.title(),
            identity_sources=[
                {
                    "@odata.type": G + "domainIdentitySource",
                    "domainName": f"{name}.example",
                    "displayName": name.title(),
                }
            ],
        ).id
    ids["tenant:internal_sponsor"], ids["tenant:new_internal"] = t.ids["mamta"], t.ids["mark"]
    ids["tenant:external_sponsor"], ids["tenant:new_external"] = guests
    sponsors.add_sponsor(root, ids["tenant:org"], "internal", t.ids["mamta"])
    sponsors.add_sponsor(root, ids["tenant:org"], "external", guests[0])


def _after_delivery(w: World, catalogs: list[str]) -> None:
    """The failed delivery's error; and a check that the worker left what the lines assume."""
    expected = {
        "failed": (AssignmentRequest, "deliveryFailed"),
        "pending": (AssignmentRequest, "pendingApproval"),
        "done": (AssignmentRequest, "canceled"),
        "held": (Assignment, "delivered"),
        "held_reprocess": (Assignment, "delivered"),
    }
    with w.t.db.read() as conn:
        for scope in catalogs:
            found = {
                key: conn.execute(
                    select(model.state).where(model.id == w.ids[f"{scope}:{key}"])
                ).scalar_one()
                for key, (model, _) in expected.items()
            }
            assert found == {k: state for k, (_, state) in expected.items()}, (scope, found)
            w.ids[f"{scope}:failed_error"] = conn.execute(
                select(AssignmentRequest.delivery_error).where(
                    AssignmentRequest.id == w.ids[f"{scope}:failed"]
                )
            ).scalar_one()
