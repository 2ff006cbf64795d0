"""Entitlement-management role assignments (the unifiedRoleAssignment rows of the EM provider)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base, new_id


class RoleAssignment(Base):
    __tablename__ = "em_role_assignments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    principal_id: Mapped[str] = mapped_column(String(36))
    # "user" or "group"
    principal_type: Mapped[str] = mapped_column(String(8))
    role_definition_id: Mapped[str] = mapped_column(String(36))
    # "/" for tenant-wide roles, "/AccessPackageCatalog/{id}" for catalog roles.
    app_scope_id: Mapped[str] = mapped_column(String(80))
    catalog_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("catalogs.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(36))

    __table_args__ = (
        UniqueConstraint("principal_id", "role_definition_id", "app_scope_id"),
        Index("ix_em_role_assignments_catalog", "catalog_id", "role_definition_id"),
    )
