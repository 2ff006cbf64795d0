"""Revocations through the builtin connector, for a chunk at once: ``BuiltinConnector.revoke``
deletes one edge of remit's own directory per (subject, role); here one DELETE per directory
table takes them all. A role whose group or site role is gone fails for good, as it would."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from remit.db import dialect
from remit.lifecycle.sweep.grant_rows import Grant
from remit.models.directory import (
    AppRoleAssignment,
    Group,
    GroupMember,
    GroupOwner,
    SiteRole,
    SiteRoleMember,
)

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


def builtin(session: Session, revoked: list[Grant]) -> None:
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
                g.fail(f"group {g.resource_origin_id} no longer exists")
                continue
            kind = "owner" if g.role_origin_id.startswith("Owner_") else "member"
            edges[kind].add((g.resource_origin_id, g.subject_id))
        elif g.origin_system == "AadApplication":
            edges["app"].add((g.role_origin_id, g.subject_id))
        elif g.origin_system == "SharePointOnline":
            if g.role_origin_id not in sites:
                g.fail(f"site role {g.role_origin_id} no longer exists")
                continue
            edges["site"].add((g.role_origin_id, g.subject_id))
        else:
            g.fail(f"no connector for {g.origin_system}")
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
