"""The builtin connector: remit's own directory (group members and owners, app role
assignments, site role members), the builtin delivery target. Local: it writes in the
delivery's own transaction.

Delivered rows carry ``valid_until`` (the latest expiry among the assignments that need them),
which every decision compares with the clock, so expired access counts for nothing even before
the expiry sweep deletes the row.

Revocations are set-based (``revoke_many``): one DELETE per directory table for a whole batch,
whether the batch is one removal's roles or an expiry sweep's chunk (docs/decisions/0017).
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import bindparam, delete, literal_column, select
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from remit.connectors.base import ConnectorError, Outcomes, Revocation, RoleRef
from remit.db import dialect, upsert_into
from remit.models.directory import (
    AppRoleAssignment,
    Group,
    GroupMember,
    GroupOwner,
    SiteRole,
    SiteRoleMember,
    User,
)


class BuiltinConnector:
    name = "builtin"
    local: Literal[True] = True

    def grant(
        self,
        session: Session,
        subject_id: str,
        role: RoleRef,
        *,
        valid_until: datetime | None,
        now: datetime,
    ) -> None:
        kind, _, keys = _target(subject_id, role)
        values = {**keys, **_extra(kind, role, now), "valid_until": valid_until}
        # One statement on the usual path: insert the row, or move its expiry, provided the
        # user and the group or site role still exist. Only when nothing was written is it
        # worth a second look, to say which is missing.
        other = role.role_origin_id if kind == "site" else role.resource_origin_id
        params = {**values, "guard_user": subject_id, "guard_other": other}
        stmt = _upsert(session.get_bind().dialect.name, kind, tuple(values), len(keys))
        # Through the connection: an ORM session reports no row count for an INSERT … SELECT
        # on PostgreSQL, so the row written is asked for by RETURNING.
        written = session.connection().execute(stmt, params).first()
        if written is None:
            if session.get(User, subject_id) is None:
                raise ConnectorError(f"user {subject_id} does not exist", permanent=True)
            self._row(session, subject_id, role)  # says which resource is gone
            raise ConnectorError(f"could not write {role.display_name}", permanent=True)

    def revoke_many(self, session: Session, items: Sequence[Revocation]) -> Outcomes:
        """Delete the subjects' edges, one DELETE per directory table. An item whose group or
        site role no longer exists fails for good (and deletes nothing), as does one of an
        origin system remit's directory does not hold."""
        outcomes: Outcomes = [None] * len(items)
        if not items:
            return outcomes
        groups = _existing(
            session,
            Group.id,
            {i.role.resource_origin_id for i in items if i.role.origin_system == "AadGroup"},
        )
        sites = _existing(
            session,
            SiteRole.id,
            {i.role.role_origin_id for i in items if i.role.origin_system == "SharePointOnline"},
        )
        edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for n, item in enumerate(items):
            role, subject = item.role, item.subject_id
            if role.origin_system == "AadGroup":
                if role.resource_origin_id not in groups:
                    outcomes[n] = _gone(f"group {role.resource_origin_id}")
                    continue
                kind = "owner" if role.role_origin_id.startswith("Owner_") else "member"
                edges[kind].add((role.resource_origin_id, subject))
            elif role.origin_system == "AadApplication":
                edges["app"].add((role.role_origin_id, subject))
            elif role.origin_system == "SharePointOnline":
                if role.role_origin_id not in sites:
                    outcomes[n] = _gone(f"site role {role.role_origin_id}")
                    continue
                edges["site"].add((role.role_origin_id, subject))
            else:
                outcomes[n] = ConnectorError(
                    f"no connector for {role.origin_system}", permanent=True
                )
        for kind, pairs in edges.items():
            table, role_column, subject_column = _EDGES[kind]
            ordered = sorted(pairs)
            if dialect(session) == "postgresql":
                _delete_pairs_pg(
                    session, table.name, role_column.name, subject_column.name, ordered
                )
            else:
                _delete_pairs_sqlite(session, table, role_column, subject_column, ordered)
        return outcomes

    def holders(self, session: Session, role: RoleRef) -> set[str]:
        kind, table, keys = self._row(session, "", role)
        column = {"member": "member_id", "owner": "user_id", "app": "principal_id"}.get(
            kind, "user_id"
        )
        keys.pop(column)
        rows = session.execute(select(getattr(table, column)).filter_by(**keys)).scalars()
        return set(rows)

    def _row(
        self, session: Session, subject_id: str, role: RoleRef
    ) -> tuple[str, Any, dict[str, Any]]:
        """``_target``, once the group or site role is known to exist."""
        kind, table, keys = _target(subject_id, role)
        if kind in ("member", "owner") and session.get(Group, role.resource_origin_id) is None:
            raise _gone(f"group {role.resource_origin_id}")
        if kind == "site" and session.get(SiteRole, role.role_origin_id) is None:
            raise _gone(f"site role {role.role_origin_id}")
        return kind, table, keys


def _gone(what: str) -> ConnectorError:
    return ConnectorError(f"{what} no longer exists", permanent=True)


_TABLES: dict[str, Any] = {
    "member": GroupMember,
    "owner": GroupOwner,
    "app": AppRoleAssignment,
    "site": SiteRoleMember,
}


def _target(subject_id: str, role: RoleRef) -> tuple[str, Any, dict[str, Any]]:
    """The directory table a role lives in and the key of the subject's row there."""
    keys: dict[str, Any]
    if role.origin_system == "AadGroup":
        group = role.resource_origin_id
        if role.role_origin_id.startswith("Owner_"):
            kind, keys = "owner", {"group_id": group, "user_id": subject_id}
        else:
            kind, keys = "member", {"group_id": group, "member_id": subject_id}
    elif role.origin_system == "AadApplication":
        kind, keys = "app", {"app_role_id": role.role_origin_id, "principal_id": subject_id}
    elif role.origin_system == "SharePointOnline":
        kind, keys = "site", {"site_role_id": role.role_origin_id, "user_id": subject_id}
    else:
        raise ConnectorError(f"no connector for {role.origin_system}", permanent=True)
    return kind, _TABLES[kind], keys


@functools.cache
def _upsert(dialect: str, kind: str, names: tuple[str, ...], key: int) -> ReturningInsert[Any]:
    """The guarded upsert of ``grant`` for one kind of row, built once per dialect (building
    it costs several times what running it does). Parameters: the row's columns ``names``,
    of which the first ``key`` are its key, ``guard_user`` and, for groups and site roles,
    ``guard_other``."""
    table = _TABLES[kind]
    columns = table.__table__.c
    guard = [select(User.id).where(User.id == bindparam("guard_user")).exists()]
    if kind in ("member", "owner"):
        guard.append(select(Group.id).where(Group.id == bindparam("guard_other")).exists())
    elif kind == "site":
        guard.append(select(SiteRole.id).where(SiteRole.id == bindparam("guard_other")).exists())
    source = select(*(bindparam(k, type_=columns[k].type) for k in names)).where(*guard)
    stmt = upsert_into(dialect, table).from_select(list(names), source)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(names[:key]), set_={"valid_until": stmt.excluded.valid_until}
    )
    return cast("ReturningInsert[Any]", stmt.returning(literal_column("1")))


def _extra(kind: str, role: RoleRef, now: datetime) -> dict[str, Any]:
    if kind == "member":
        return {"member_type": "user"}
    if kind == "app":
        return {"application_id": role.resource_origin_id, "created_at": now}
    if kind == "site":
        return {"created_at": now}
    return {}


# What ``revoke_many`` deletes, by kind: (table, role column, subject column).
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
