"""The builtin connector: remit's own directory (group members and owners, app role
assignments, site role members). Local: it writes in the delivery's own transaction.

Delivered rows carry ``valid_until`` (the latest expiry among the assignments that need them),
which every decision compares with the clock, so expired access counts for nothing even before
the expiry sweep deletes the row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
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
        if session.get(User, subject_id) is None:
            raise ConnectorError(f"user {subject_id} does not exist", permanent=True)
        kind, table, keys = self._row(session, subject_id, role)
        existing = session.execute(select(table).filter_by(**keys)).scalar_one_or_none()
        if existing is None:
            session.add(table(**keys, **_extra(kind, role, now), valid_until=valid_until))
        elif existing.valid_until != valid_until:
            session.execute(update(table).filter_by(**keys).values(valid_until=valid_until))
        session.flush()

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
        if role.origin_system == "AadGroup":
            if session.get(Group, role.resource_origin_id) is None:
                raise ConnectorError(
                    f"group {role.resource_origin_id} no longer exists", permanent=True
                )
            if role.role_origin_id.startswith("Owner_"):
                return (
                    "owner",
                    GroupOwner,
                    {"group_id": role.resource_origin_id, "user_id": subject_id},
                )
            return (
                "member",
                GroupMember,
                {"group_id": role.resource_origin_id, "member_id": subject_id},
            )
        if role.origin_system == "AadApplication":
            return (
                "app",
                AppRoleAssignment,
                {"app_role_id": role.role_origin_id, "principal_id": subject_id},
            )
        if role.origin_system == "SharePointOnline":
            if session.get(SiteRole, role.role_origin_id) is None:
                raise ConnectorError(
                    f"site role {role.role_origin_id} no longer exists", permanent=True
                )
            return (
                "site",
                SiteRoleMember,
                {"site_role_id": role.role_origin_id, "user_id": subject_id},
            )
        raise ConnectorError(f"no connector for {role.origin_system}", permanent=True)


def _extra(kind: str, role: RoleRef, now: datetime) -> dict[str, Any]:
    if kind == "member":
        return {"member_type": "user"}
    if kind == "app":
        return {"application_id": role.resource_origin_id, "created_at": now}
    if kind == "site":
        return {"created_at": now}
    return {}
