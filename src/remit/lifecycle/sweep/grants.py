"""The chunk's resource grants: recounted all at once, local revocations applied in SQL.

``delivery.recompute`` and ``apply(local_only=True)``, as ``assignments.revoke_for`` runs them
for one ended assignment, for every (subject, role) of the chunk: the subjects' grant rows are
read in one statement (locked on PostgreSQL, in the order ``delivery`` locks them), their live
holders counted in one grouped query (``delivery.live_holders``), and the rows written back by
outcome in a few set-based UPDATEs. Revocations through the builtin connector are one DELETE per
directory table; those of other local connectors, and rows that were out of line with the
assignments before the sweep (one that becomes desired again, or whose expiry moves), go through
``delivery.apply`` with the ORM. Remote revocations stay pending, for the subject's sync job.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    bindparam,
    case,
    delete,
    distinct,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from remit.catalogs.models import ResourceRole
from remit.connectors.base import ConnectorError, RoleRef
from remit.connectors.builtin import BuiltinConnector
from remit.connectors.registry import connector_for
from remit.context import Ctx
from remit.db import HotSelect, UTCDateTime, insert_or_ignore, new_id
from remit.directory.models import (
    AppRoleAssignment,
    Group,
    GroupMember,
    GroupOwner,
    SiteRole,
    SiteRoleMember,
)
from remit.lifecycle import delivery
from remit.lifecycle.models import Assignment, ResourceGrant
from remit.lifecycle.sweep.sql import among, among_param, dialect, listed
from remit.packages.models import ResourceRoleScope

G = cast(Table, ResourceGrant.__table__)
Key = tuple[str, str, str]  # (subject, origin system, role origin id)


@dataclass(slots=True)
class Grant:
    """A grant row as read (the columns the recount needs), and as it will be written back:
    ``outcome`` says how."""

    id: str
    subject_id: str
    origin_system: str
    resource_origin_id: str
    role_origin_id: str
    holders: int
    desired: bool
    valid_until: datetime | None
    generation: int
    applied_generation: int
    applied_state: str
    attempts: int = 0  # written only with a new desire, which starts its attempts again
    last_error: str | None = None
    # "" unchanged | counted (holders only) | revoked (applied) | pending (remote) | failed | orm
    outcome: str = ""

    @property
    def pending(self) -> bool:
        return self.applied_generation < self.generation


@dataclass
class Recount:
    """The chunk's grant rows after the recount, the subjects left with one pending (each
    needs a sync job), and how many roles were revoked (of those, how many wait for a remote
    connector)."""

    grants: dict[Key, Grant]
    sync: set[str] = field(default_factory=set)
    revoked: int = 0
    pending_remote: int = 0

    def waiting(self, subject: str, roles: Sequence[RoleRef]) -> bool:
        """Whether one of these roles of the subject still waits to be applied."""
        for r in roles:
            g = self.grants.get((subject, r.origin_system, r.role_origin_id))
            if g is not None and g.pending:
                return True
        return False


def recount(ctx: Ctx, subjects: list[str], wanted: dict[Key, RoleRef]) -> Recount:
    """Bring the ``wanted`` (subject, role) rows in line with the subjects' active assignments
    and apply what is local."""
    grants = _locked(ctx, subjects, wanted)
    live = _live_holders(ctx, subjects)
    revoked: list[Grant] = []
    for key in sorted(wanted):
        g = grants[key]
        count, latest, never = live.get(key, (0, None, False))
        desired = count > 0
        valid_until = None if (not desired or never) else latest
        if g.holders != count:
            g.holders, g.outcome = count, "counted"
        if desired != g.desired or (desired and valid_until != g.valid_until):
            g.desired, g.valid_until = desired, valid_until
            g.generation += 1
            g.attempts, g.last_error = 0, None
            g.outcome = "pending"
            if desired:
                g.outcome = "orm"  # out of line before the sweep: granted (again) as usual
            else:
                revoked.append(g)
    builtin: list[Grant] = []
    for g in revoked:
        try:
            connector = connector_for(g.origin_system)
        except ConnectorError as e:
            _failed(g, str(e))
            continue
        if isinstance(connector, BuiltinConnector):
            builtin.append(g)
        elif connector.local:
            g.outcome = "orm"
    _revoke_builtin(ctx.session, builtin)
    _write(ctx, list(grants.values()))
    result = Recount(grants)
    result.sync = _apply_with_orm(ctx, [g for g in grants.values() if g.outcome == "orm"])
    result.sync |= {g.subject_id for g in revoked if g.outcome == "pending"}
    result.revoked = len(revoked)
    result.pending_remote = sum(1 for g in revoked if g.pending)
    return result


def _locked(ctx: Ctx, subjects: list[str], wanted: dict[Key, RoleRef]) -> dict[Key, Grant]:
    """Every grant row of the subjects, locked (PostgreSQL) in the order ``delivery`` locks them;
    the ``wanted`` rows that are missing are created first, as ``delivery._locked_grants`` does."""
    found = _read(ctx.session, subjects)
    missing = [k for k in wanted if k not in found]
    if missing:
        insert_or_ignore(
            ctx.session,
            ResourceGrant,
            [
                {
                    "id": new_id(),
                    "subject_id": k[0],
                    "origin_system": k[1],
                    "resource_origin_id": wanted[k].resource_origin_id,
                    "role_origin_id": k[2],
                    "display_name": wanted[k].display_name,
                    "holders": 0,
                    "desired": False,
                    "generation": 0,
                    "applied_generation": 0,
                    "applied_state": "none",
                    "attempts": 0,
                    "updated_at": ctx.now,
                }
                for k in missing
            ],
            ["subject_id", "origin_system", "role_origin_id"],
        )
        found = _read(ctx.session, subjects)
    return found


def _read(session: Session, subjects: list[str]) -> dict[Key, Grant]:
    name = dialect(session)
    found: dict[Key, Grant] = {}
    for row in _READ[name].rows(session.connection(), {"subjects": listed(subjects)}):
        g = Grant(*row)
        found[(g.subject_id, g.origin_system, g.role_origin_id)] = g
    return found


def _read_query(dialect_name: str) -> HotSelect:
    """The subjects' grant rows, in the order ``delivery`` locks them (and locked, on
    PostgreSQL). A ``HotSelect``: several rows per assignment, where SQLAlchemy's handling of
    each row would cost more than reading it."""
    query = (
        select(*[G.c[name] for name in list(Grant.__dataclass_fields__)[:11]])
        .where(among_param(dialect_name, G.c.subject_id, "subjects"))
        .order_by(G.c.subject_id, G.c.origin_system, G.c.role_origin_id)
    )
    return HotSelect(query.with_for_update() if dialect_name == "postgresql" else query)


_READ = {name: _read_query(name) for name in ("postgresql", "sqlite")}


def _live_holders(ctx: Ctx, subjects: list[str]) -> delivery.Holders:
    """``delivery.live_holders`` with the subjects in one parameter (``among``), as a
    ``HotSelect``: for each (subject, origin system, role) that the subjects' active, unexpired
    assignments need, how many of them need it, the latest end among them, and whether one
    never ends."""
    name = dialect(ctx.session)
    rows = _LIVE[name].rows(
        ctx.session.connection(), {"subjects": listed(subjects), "now": ctx.now}
    )
    return {
        (s, system, role): (int(n), latest, bool(never))
        for s, system, role, n, latest, never in rows
    }


def _live_query(dialect_name: str) -> HotSelect:
    a = Assignment
    columns: list[Any] = [
        a.target_id,
        ResourceRole.origin_system,
        ResourceRole.origin_id,
        func.count(distinct(a.id)),
        func.max(a.expires_at),
        func.max(case((a.expires_at.is_(None), 1), else_=0)),
    ]
    query = (
        select(*columns)
        .join(ResourceRoleScope, ResourceRoleScope.access_package_id == a.access_package_id)
        .join(ResourceRole, ResourceRole.id == ResourceRoleScope.role_id)
        .where(
            among_param(dialect_name, a.target_id, "subjects"),
            a.active_key.is_not(None),
            or_(a.expires_at.is_(None), a.expires_at > bindparam("now", type_=UTCDateTime())),
        )
        .group_by(a.target_id, ResourceRole.origin_system, ResourceRole.origin_id)
    )
    return HotSelect(query)


_LIVE = {name: _live_query(name) for name in ("postgresql", "sqlite")}


def _failed(g: Grant, error: str) -> None:
    """``delivery._failed`` for a permanent error."""
    g.attempts += 1
    g.last_error = error[:500]
    g.applied_generation, g.applied_state = g.generation, "failed"
    g.outcome = "failed"


# What ``BuiltinConnector.revoke`` deletes, by kind: (table, role column, subject column).
_EDGES: dict[str, tuple[Any, Any, Any]] = {
    "member": (GroupMember.__table__, GroupMember.group_id, GroupMember.member_id),
    "owner": (GroupOwner.__table__, GroupOwner.group_id, GroupOwner.user_id),
    "app": (
        AppRoleAssignment.__table__,
        AppRoleAssignment.app_role_id,
        AppRoleAssignment.principal_id,
    ),
    "site": (SiteRoleMember.__table__, SiteRoleMember.site_role_id, SiteRoleMember.user_id),
}


def _revoke_builtin(session: Session, revoked: list[Grant]) -> None:
    """``BuiltinConnector.revoke`` for many rows: one DELETE per directory table."""
    if not revoked:
        return
    groups = _existing(
        session, Group.id, {g.resource_origin_id for g in revoked if g.origin_system == "AadGroup"}
    )
    sites = _existing(
        session,
        SiteRole.id,
        {g.role_origin_id for g in revoked if g.origin_system == "SharePointOnline"},
    )
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for g in revoked:
        if g.origin_system == "AadGroup":
            if g.resource_origin_id not in groups:
                _failed(g, f"group {g.resource_origin_id} no longer exists")
                continue
            kind = "owner" if g.role_origin_id.startswith("Owner_") else "member"
            edges[kind].add((g.resource_origin_id, g.subject_id))
        elif g.origin_system == "AadApplication":
            edges["app"].add((g.role_origin_id, g.subject_id))
        elif g.origin_system == "SharePointOnline":
            if g.role_origin_id not in sites:
                _failed(g, f"site role {g.role_origin_id} no longer exists")
                continue
            edges["site"].add((g.role_origin_id, g.subject_id))
        else:
            _failed(g, f"no connector for {g.origin_system}")
            continue
        g.applied_generation, g.applied_state = g.generation, "revoked"
        g.outcome = "revoked"
    for kind, pairs in edges.items():
        table, role_column, subject_column = _EDGES[kind]
        ordered = sorted(pairs)
        if dialect(session) == "postgresql":
            _delete_pairs_pg(session, table.name, role_column.name, subject_column.name, ordered)
        else:
            _delete_pairs_sqlite(session, table, role_column, subject_column, ordered)


def _delete_pairs_pg(
    session: Session, table: str, role: str, subject: str, pairs: list[tuple[str, str]]
) -> None:
    """One DELETE joined to the pairs, given as a JSON array of [role, subject]."""
    session.execute(
        sql_text(
            f"DELETE FROM {table} AS t"  # noqa: S608 - our own table and column names
            " USING (SELECT p->>0 AS r, p->>1 AS s"
            " FROM json_array_elements(CAST(:pairs AS json)) AS p) AS x"
            f" WHERE t.{role} = x.r AND t.{subject} = x.s"
        ),
        {"pairs": json.dumps(pairs)},
    )


def _delete_pairs_sqlite(
    session: Session, table: Any, role: Any, subject: Any, pairs: list[tuple[str, str]]
) -> None:
    """A DELETE by primary key executed for many rows (far cheaper on SQLite than one DELETE
    with a list of pairs, which would scan the table), straight to the driver: the values are
    plain strings, and SQLAlchemy's handling of each row's parameters costs more than SQLite
    takes to delete the row."""
    conn = session.connection()
    found = _DELETES.get(table.name)
    if found is None:
        stmt = delete(table).where(role == bindparam("role"), subject == bindparam("subject"))
        compiled = stmt.compile(dialect=conn.dialect)
        found = _DELETES[table.name] = (
            compiled.string,
            compiled.positiontup == ["role", "subject"],
        )
    sql, role_first = found
    conn.exec_driver_sql(sql, pairs if role_first else [(s, r) for r, s in pairs])


_DELETES: dict[str, tuple[str, bool]] = {}  # SQLite's DELETE of one edge, by table


def _existing(session: Session, column: Any, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    return set(session.execute(select(column).where(column.in_(ids))).scalars())


def _write(ctx: Ctx, rows: list[Grant]) -> None:
    """Write the recounted rows back: set-based for the usual outcomes, row by row for the
    rest. A row whose desire did not change keeps its ``updated_at``, as the ORM leaves it."""
    session = ctx.session
    by_outcome: dict[str, list[Grant]] = defaultdict(list)
    for g in rows:
        by_outcome[g.outcome].append(g)
    ended = {
        "holders": 0,
        "desired": False,
        "valid_until": None,
        "generation": G.c.generation + 1,
        "attempts": 0,
        "last_error": None,
        "updated_at": ctx.now,
    }
    applied = {"applied_generation": G.c.generation + 1, "applied_state": "revoked"}
    for outcome, values in (("revoked", {**ended, **applied}), ("pending", ended)):
        if by_outcome[outcome]:
            ids = [g.id for g in by_outcome[outcome]]
            session.execute(update(G).where(among(session, G.c.id, ids)).values(**values))
    counted: dict[int, list[str]] = defaultdict(list)
    for g in by_outcome["counted"]:
        counted[g.holders].append(g.id)
    for holders, ids in counted.items():
        session.execute(update(G).where(among(session, G.c.id, ids)).values(holders=holders))
    if by_outcome["failed"]:
        fields = ["holders", "desired", "valid_until", "generation", "applied_generation"]
        fields += ["applied_state", "attempts", "last_error"]
        session.execute(
            update(G)
            .where(G.c.id == bindparam("g_id"))
            .values({f: bindparam(f"g_{f}") for f in fields} | {"updated_at": ctx.now}),
            [
                {"g_id": g.id} | {f"g_{f}": getattr(g, f) for f in fields}
                for g in by_outcome["failed"]
            ],
        )


def _apply_with_orm(ctx: Ctx, rows: list[Grant]) -> set[str]:
    """Write these recounted rows through the ORM and ``delivery.apply`` them (local only);
    the subjects left with one pending."""
    if not rows:
        return set()
    loaded: list[ResourceGrant] = []
    for g in rows:
        grant = ctx.session.get(ResourceGrant, g.id, populate_existing=True)
        if grant is None:  # pragma: no cover - read (and locked on PostgreSQL) just before
            continue
        grant.holders, grant.desired, grant.valid_until = g.holders, g.desired, g.valid_until
        grant.generation, grant.attempts, grant.last_error = g.generation, 0, None
        grant.updated_at = ctx.now
        loaded.append(grant)
    retry = delivery.apply(ctx, loaded, local_only=True)
    ctx.session.flush()
    for g, grant in zip(rows, loaded, strict=True):
        g.applied_generation, g.applied_state = grant.applied_generation, grant.applied_state
    return {g.subject_id for g in rows if retry or g.pending}
