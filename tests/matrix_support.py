"""The delegation world shared by the R1 matrix and the R2 amplification tests.

On top of the factories' tenant (directory, "Department managers" as catalog creators) it builds,
through the operations as the system actor, one catalog per scope with resources, packages,
incompatibilities and role assignments, and one target reserved for each write, so that the
writes of one persona never disturb each other. Keys are ``<scope>:<thing>``; ``own`` is the
catalog on which the personas hold their roles, ``other`` one on which they hold none.

``fingerprint`` digests every row of every table, so a refused write can be shown to have
changed nothing at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.audit.models import AuditEvent
from remit.authz.actor import system_actor
from remit.authz.models import RoleAssignment
from remit.authz.operations import create_role_assignment
from remit.authz.roles import (
    ASSIGNMENT_MANAGER,
    CATALOG_CREATOR,
    CATALOG_OWNER,
    CATALOG_READER,
    PACKAGE_MANAGER,
)
from remit.catalogs import operations as cats
from remit.catalogs import resources as res
from remit.catalogs.models import ResourceRole, ResourceScope
from remit.context import Ctx
from remit.db import Database
from remit.directory import operations as d
from remit.directory.models import DirectoryRoleAssignment
from remit.models import Base
from remit.packages import operations as pkgs
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


def fingerprint(db: Database) -> str:
    """A digest of every row of every table: equal before and after means nothing changed."""
    digest = hashlib.sha256()
    with db.read() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            digest.update(f"{table.name}:{[tuple(r) for r in rows]!r}".encode())
    return digest.hexdigest()


def build_world(t: Tenant) -> World:
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
        w.ids["tenant:event"] = s.execute(
            select(AuditEvent.id).where(AuditEvent.catalog_id.is_(None)).limit(1)
        ).scalar_one()
    return w


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
        pkgs.add_resource_role_scope(root, pkg, role_id=ids[f"{scope}:role:member"])
    )
    pkgs.add_incompatible_package(root, pkg, ids[f"{scope}:pkg2"])
    ids[f"{scope}:sod_group"] = t.ids[other_group]
    pkgs.add_incompatible_group(root, pkg, t.ids[other_group])
    ids[f"{scope}:new_sod_group"] = t.ids["tier0"]
    ids[f"{scope}:event"] = s.execute(
        select(AuditEvent.id).where(AuditEvent.catalog_id == catalog).limit(1)
    ).scalar_one()
