"""Who is acting: a user with their transitive groups and roles, resolved once per call.

Resolution is three set-based queries (the user, the transitive group closure by a recursive
CTE, and the role assignments held by any of those principals); nothing is cached between
calls, so a revocation is seen by the very next decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, Row, literal, select, union
from sqlalchemy.orm import Session

from remit.authz.models import RoleAssignment
from remit.authz.roles import DIRECTORY_ROLE_TASKS, EM_ROLE_TASKS, EM_ROLES, MEMBER_USER
from remit.authz.tasks import CATALOG_TASKS, Task
from remit.directory.models import DirectoryRoleAssignment, GroupMember, User
from remit.errors import Unauthenticated

TENANT = "/"
CATALOG_SCOPE_PREFIX = "/AccessPackageCatalog/"


@dataclass(frozen=True)
class Grant:
    """One reason the actor holds a role: which assignment, on which scope, through whom."""

    role_id: str
    scope: str  # "/" or a catalog id
    source: str  # "directoryRole" | "entitlementManagement" | "builtin"
    assignment_id: str | None
    via_principal_id: str  # the user, or the group that holds the assignment


@dataclass(frozen=True)
class Actor:
    user_id: str
    name: str
    user_type: str = "Member"
    group_ids: frozenset[str] = frozenset()
    tenant_tasks: frozenset[Task] = frozenset()
    catalog_tasks: Mapping[str, frozenset[Task]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    grants: tuple[Grant, ...] = ()
    is_system: bool = False

    @property
    def principal_ids(self) -> frozenset[str]:
        return self.group_ids | {self.user_id}

    @property
    def directory_roles(self) -> frozenset[str]:
        return frozenset(g.role_id for g in self.grants if g.source == "directoryRole")

    def tasks_on(self, catalog_id: str) -> frozenset[Task]:
        return (self.tenant_tasks & CATALOG_TASKS) | self.catalog_tasks.get(catalog_id, frozenset())


def system_actor(name: str = "system") -> Actor:
    """The operator on the host (CLI without --as, the demo loader, jobs)."""
    return Actor(
        user_id="00000000-0000-0000-0000-000000000000",
        name=name,
        tenant_tasks=frozenset(Task),
        grants=(Grant("system", TENANT, "builtin", None, "system"),),
        is_system=True,
    )


def transitive_group_ids(conn: Connection | Session, principal_id: str) -> frozenset[str]:
    """Every group the principal is in, directly or through nested groups."""
    closure = (
        select(GroupMember.group_id.label("gid"))
        .where(GroupMember.member_id == principal_id)
        .cte("closure", recursive=True)
    )
    closure = closure.union(
        select(GroupMember.group_id).join(closure, GroupMember.member_id == closure.c.gid)
    )
    return frozenset(conn.execute(select(closure.c.gid)).scalars())


def load_actor(conn: Connection | Session, user_id: str) -> Actor:
    user = conn.execute(
        select(User.id, User.user_principal_name, User.user_type, User.account_enabled).where(
            User.id == user_id
        )
    ).first()
    if user is None or not user.account_enabled:
        raise Unauthenticated("the user is unknown or disabled")
    groups = transitive_group_ids(conn, user_id)
    principals = [user_id, *groups]
    rows: Sequence[Row[Any]] = conn.execute(  # type: ignore[assignment]
        union(
            select(
                literal("directoryRole").label("source"),
                DirectoryRoleAssignment.id,
                DirectoryRoleAssignment.principal_id,
                DirectoryRoleAssignment.role_definition_id,
                literal(None).label("catalog_id"),
            ).where(DirectoryRoleAssignment.principal_id.in_(principals)),
            select(
                literal("entitlementManagement").label("source"),
                RoleAssignment.id,
                RoleAssignment.principal_id,
                RoleAssignment.role_definition_id,
                RoleAssignment.catalog_id,
            ).where(RoleAssignment.principal_id.in_(principals)),
        )
    ).all()
    grants: list[Grant] = []
    if user.user_type == "Member":
        grants.append(Grant(MEMBER_USER, TENANT, "builtin", None, user_id))
    grants.extend(
        Grant(r.role_definition_id, r.catalog_id or TENANT, r.source, r.id, r.principal_id)
        for r in rows
    )
    return build_actor(user_id, user.user_principal_name, user.user_type, groups, grants)


def build_actor(
    user_id: str, name: str, user_type: str, groups: frozenset[str], grants: list[Grant]
) -> Actor:
    tenant: set[Task] = set()
    per_catalog: dict[str, set[Task]] = {}
    for g in grants:
        if g.source == "entitlementManagement":
            tasks = EM_ROLE_TASKS.get(g.role_id, frozenset())
            role = EM_ROLES.get(g.role_id)
            if role is not None and role.catalog_scoped:
                per_catalog.setdefault(g.scope, set()).update(tasks)
                continue
            tenant.update(tasks)
        else:
            tenant.update(DIRECTORY_ROLE_TASKS.get(g.role_id, frozenset()))
    return Actor(
        user_id=user_id,
        name=name,
        user_type=user_type,
        group_ids=groups,
        tenant_tasks=frozenset(tenant),
        catalog_tasks=MappingProxyType({k: frozenset(v) for k, v in per_catalog.items()}),
        grants=tuple(grants),
    )
