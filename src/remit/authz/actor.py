"""Who is acting: a user with their transitive groups and roles, resolved once per call.

Resolution is one round trip: a single statement returns the user (if enabled), the transitive
group closure (a recursive CTE) and the role assignments held by any of those principals.
Nothing is cached between calls, so a revocation is seen by the very next decision. The
statements are built once at import (building a CTE costs more than running it); on a bare
connection they run as ``HotSelect``s, on a session through ``Session.execute`` as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from sqlalchemy import (
    CTE,
    ColumnElement,
    CompoundSelect,
    Connection,
    String,
    bindparam,
    cast,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import QueryableAttribute, Session

from remit.authz.roles import DIRECTORY_ROLE_TASKS, EM_ROLE_TASKS, EM_ROLES, MEMBER_USER
from remit.authz.tasks import CATALOG_TASKS, Task
from remit.clock import utcnow
from remit.db import HotSelect, UTCDateTime
from remit.errors import Unauthenticated
from remit.models.authz import RoleAssignment
from remit.models.directory import DirectoryRoleAssignment, GroupMember, User

TENANT = "/"
CATALOG_SCOPE_PREFIX = "/AccessPackageCatalog/"


class Grant(NamedTuple):
    """One reason the actor holds a role: which assignment, on which scope, through whom.

    A named tuple rather than a frozen dataclass: an actor may hold thousands of grants, and
    it is built on every request.
    """

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


def _closure_of(seed: ColumnElement[bool]) -> CTE:
    """The recursive CTE of group ids reachable from the membership rows matching ``seed``.

    A membership delivered by an access package counts only until its ``valid_until`` (the
    ``now`` parameter): expired access is never honoured, even before the sweep removes it.

    The closure carries that instant in a column (``at``) and the recursive step compares each
    edge with it, not with the parameter. SQLite (3.38 and later, once ANALYZE has run) builds a
    Bloom filter, by a pass over the whole of ``group_members``, in every recursive step when
    that table has a condition of its own besides the join; one that also reads the closure does
    not count as such. Each step is then an index lookup per group reached, on both engines
    (decision 0028; tests/unit/test_group_closure.py checks the plan).
    """
    closure = (
        select(GroupMember.group_id.label("gid"), _NOW.label("at"))
        .where(seed, _live(_NOW))
        .cte("closure", recursive=True)
    )
    # UNION (not UNION ALL) stops at groups already reached, so nesting cycles terminate.
    return closure.union(
        select(GroupMember.group_id, closure.c.at)
        .join(closure, GroupMember.member_id == closure.c.gid)
        .where(_live(closure.c.at))
    )


def _live(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    return or_(GroupMember.valid_until.is_(None), GroupMember.valid_until > now)


_NOW = bindparam("now", type_=UTCDateTime())
_GROUPS_OF = select(_closure_of(GroupMember.member_id == bindparam("who", type_=String)).c.gid)


def transitive_group_ids(
    conn: Connection | Session, principal_id: str, *, now: datetime | None = None
) -> frozenset[str]:
    """Every group the principal is in, directly or through nested groups (at ``now``)."""
    params = {"who": principal_id, "now": now or utcnow()}
    return frozenset(conn.execute(_GROUPS_OF, params).scalars())


def _actor_statement(
    key: QueryableAttribute[str], *, one_catalog: bool
) -> CompoundSelect[*tuple[Any, ...]]:
    """One statement for the whole actor; rows are tagged u(ser) / g(roup) / d(irectory) / e(m).

    A disabled account has no "u" row, exactly like an unknown one. With ``one_catalog``, the
    catalog-scoped grants are only those on the ``catalog`` parameter.
    """
    me = (
        select(User.id, User.user_principal_name, User.user_type)
        .where(key == bindparam("who", type_=String), User.account_enabled == true())
        .cte("me")
    )
    closure = _closure_of(GroupMember.member_id.in_(select(me.c.id)))
    # UNION ALL: a duplicate could not change what ``IN`` matches, so no need to sort it away.
    principals = union_all(select(me.c.id.label("pid")), select(closure.c.gid)).cte("principals")
    nothing = cast(null(), String)
    dra, ra = DirectoryRoleAssignment, RoleAssignment
    em_scope = (
        or_(ra.catalog_id.is_(None), ra.catalog_id == bindparam("catalog", type_=String))
        if one_catalog
        else true()
    )

    def kind(tag: str) -> ColumnElement[str]:
        return literal_column(f"'{tag}'", String).label("kind")

    return union_all(
        select(
            kind("u"),
            me.c.id.label("id"),
            me.c.user_principal_name.label("principal_id"),
            me.c.user_type.label("role_id"),
            nothing.label("catalog_id"),
        ),
        select(kind("g"), closure.c.gid, nothing, nothing, nothing),
        select(kind("d"), dra.id, dra.principal_id, dra.role_definition_id, nothing).where(
            dra.principal_id.in_(select(principals.c.pid))
        ),
        select(kind("e"), ra.id, ra.principal_id, ra.role_definition_id, ra.catalog_id).where(
            ra.principal_id.in_(select(principals.c.pid)), em_scope
        ),
    )


# Built once: constructing a CTE costs more than executing it from the compiled cache.
_STATEMENTS = {
    (by_upn, one_catalog): HotSelect(
        _actor_statement(User.upn_key if by_upn else User.id, one_catalog=one_catalog)
    )
    for by_upn in (False, True)
    for one_catalog in (False, True)
}


def load_actor(
    conn: Connection | Session,
    user_id: str,
    *,
    catalog_id: str | None = None,
    now: datetime | None = None,
) -> Actor:
    """The actor for a user id, from the database as it is now (Unauthenticated if disabled).

    With ``catalog_id``, catalog-scoped grants on other catalogs are left out: the actor then
    decides exactly as the full one about that catalog and the tenant, and denies anything about
    another catalog. For hot reads that decide about one catalog, of a user who may hold roles on
    thousands; never hand such an actor to an operation.
    """
    return _load(conn, False, user_id, catalog_id, now)


def load_actor_by_upn(
    conn: Connection | Session,
    upn: str,
    *,
    catalog_id: str | None = None,
    now: datetime | None = None,
) -> Actor:
    """The actor for a userPrincipalName (case-insensitive), as ``load_actor``."""
    return _load(conn, True, upn.lower(), catalog_id, now)


def _load(
    conn: Connection | Session,
    by_upn: bool,
    who: str,
    catalog_id: str | None,
    now: datetime | None,
) -> Actor:
    statement = _STATEMENTS[by_upn, catalog_id is not None]
    params: dict[str, Any] = {"who": who, "now": now or utcnow()}
    if catalog_id is not None:
        params["catalog"] = catalog_id
    # In a session, its pending changes are flushed first.
    rows: Iterable[Sequence[Any]] = (
        statement.rows(conn, params)
        if isinstance(conn, Connection)
        else statement.in_session(conn, params)
    )
    user = None
    groups: list[str] = []
    grants: list[Grant] = []
    for kind, id_, principal, role, catalog in rows:
        if kind == "u":
            user = (id_, principal, role)
        elif kind == "g":
            groups.append(id_)
        elif kind == "d":
            grants.append(Grant(role, TENANT, "directoryRole", id_, principal))
        else:
            grants.append(Grant(role, catalog or TENANT, "entitlementManagement", id_, principal))
    if user is None:
        raise Unauthenticated("the user is unknown or disabled")
    user_id, name, user_type = user
    if user_type == "Member":
        grants.insert(0, Grant(MEMBER_USER, TENANT, "builtin", None, user_id))
    return build_actor(user_id, name, user_type, frozenset(groups), grants)


def build_actor(
    user_id: str, name: str, user_type: str, groups: frozenset[str], grants: list[Grant]
) -> Actor:
    tenant: set[Task] = set()
    # Most catalogs are reached through one role: share that role's task set, copy on a second.
    per_catalog: dict[str, frozenset[Task]] = {}
    for g in grants:
        if g.source == "entitlementManagement":
            tasks = EM_ROLE_TASKS.get(g.role_id, frozenset())
            role = EM_ROLES.get(g.role_id)
            if role is not None and role.catalog_scoped:
                held = per_catalog.get(g.scope)
                per_catalog[g.scope] = tasks if held is None else held | tasks
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
        catalog_tasks=MappingProxyType(per_catalog),
        grants=tuple(grants),
    )
