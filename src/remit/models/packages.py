"""Access package tables. A package belongs to exactly one catalog, for ever."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base, new_id


class AccessPackage(Base):
    __tablename__ = "access_packages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    catalog_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("catalogs.id", ondelete="RESTRICT"), index=True
    )
    display_name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    is_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(36))


class ResourceRoleScope(Base):
    """One resource role at one scope in a package. Its Graph id is ``{roleId}_{scopeId}``."""

    __tablename__ = "package_resource_role_scopes"

    access_package_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("access_packages.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("resource_roles.id", ondelete="RESTRICT"), primary_key=True
    )
    scope_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("resource_scopes.id", ondelete="RESTRICT"), primary_key=True
    )
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_package_rrs_role", "role_id"),)


class IncompatiblePackage(Base):
    __tablename__ = "incompatible_packages"

    access_package_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("access_packages.id", ondelete="CASCADE"), primary_key=True
    )
    incompatible_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("access_packages.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )


class IncompatibleGroup(Base):
    __tablename__ = "incompatible_groups"

    access_package_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("access_packages.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
