"""The builtin connector: remit's own directory (group members and owners, app role
assignments, site role members). Local: it writes in the delivery's own transaction.

Delivered rows carry ``valid_until`` (the latest expiry among the assignments that need them),
which every decision compares with the clock, so expired access counts for nothing even before
the expiry sweep deletes the row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, literal, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from remit.connectors.base import ConnectorError, RoleRef
from remit.directory.models import (
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
        kind, table, keys = _target(subject_id, role)
        values = {**keys, **_extra(kind, role, now), "valid_until": valid_until}
        # One statement on the usual path: insert the row, or move its expiry, provided the
        # user and the group or site role still exist. Only when nothing was written is it
        # worth a second look, to say which is missing.
        guard = [select(User.id).where(User.id == subject_id).exists()]
        if kind in ("member", "owner"):
            guard.append(select(Group.id).where(Group.id == role.resource_origin_id).exists())
        elif kind == "site":
            guard.append(select(SiteRole.id).where(SiteRole.id == role.role_origin_id).exists())
        columns = table.__table__.c
        source = select(*(literal(v, columns[k].type) for k, v in values.items())).where(*guard)
        module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        stmt = module.insert(table).from_select(list(values), source)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={"valid_until": stmt.excluded.valid_until}
        )
        # Through the connection: an ORM session reports no row count for an INSERT … SELECT
        # on PostgreSQL, so the row written is asked for by RETURNING.
        written = session.connection().execute(stmt.returning(literal_column("1"))).first()
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


def _target(subject_id: str, role: RoleRef) -> tuple[str, Any, dict[str, Any]]:
    """The directory table a role lives in and the key of the subject's row there."""
    if role.origin_system == "AadGroup":
        if role.role_origin_id.startswith("Owner_"):
            return "owner", GroupOwner, {"group_id": role.resource_origin_id, "user_id": subject_id}
        return "member", GroupMember, {"group_id": role.resource_origin_id, "member_id": subject_id}
    if role.origin_system == "AadApplication":
        return (
            "app",
            AppRoleAssignment,
            {"app_role_id": role.role_origin_id, "principal_id": subject_id},
        )
    if role.origin_system == "SharePointOnline":
        return "site", SiteRoleMember, {"site_role_id": role.role_origin_id, "user_id": subject_id}
    raise ConnectorError(f"no connector for {role.origin_system}", permanent=True)


def _extra(kind: str, role: RoleRef, now: datetime) -> dict[str, Any]:
    if kind == "member":
        return {"member_type": "user"}
    if kind == "app":
        return {"application_id": role.resource_origin_id, "created_at": now}
    if kind == "site":
        return {"created_at": now}
    return {}
