"""The builtin connector: remit's own directory (group members and owners, app role
assignments, site role members). Local: it writes in the delivery's own transaction.

Delivered rows carry ``valid_until`` (the latest expiry among the assignments that need them),
which every decision compares with the clock, so expired access counts for nothing even before
the expiry sweep deletes the row.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, delete, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from remit.connectors.base import ConnectorError, RoleRef
from remit.db import upsert_into
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
    local = True

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

    def revoke(self, session: Session, subject_id: str, role: RoleRef) -> None:
        _, table, keys = self._row(session, subject_id, role)
        session.execute(delete(table).filter_by(**keys))

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
            raise ConnectorError(
                f"group {role.resource_origin_id} no longer exists", permanent=True
            )
        if kind == "site" and session.get(SiteRole, role.role_origin_id) is None:
            raise ConnectorError(
                f"site role {role.role_origin_id} no longer exists", permanent=True
            )
        return kind, table, keys


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
