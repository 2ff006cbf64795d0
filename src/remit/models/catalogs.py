"""Catalog tables. A resource is onboarded per catalog; its roles and scopes are copied then."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base, new_id
from remit.models.vocabulary import CatalogState, RequestState, RequestType, Word


class Catalog(Base):
    __tablename__ = "catalogs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str]
    # Lower-cased name: catalog names are unique in a tenant regardless of case.
    name_key: Mapped[str] = mapped_column(unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    state: Mapped[CatalogState] = mapped_column(
        Word(CatalogState, 16), default=CatalogState.PUBLISHED
    )
    is_externally_visible: Mapped[bool] = mapped_column(Boolean, default=True)
    catalog_type: Mapped[str] = mapped_column(String(16), default="userManaged")
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(36))


class CatalogResource(Base):
    __tablename__ = "catalog_resources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    catalog_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("catalogs.id", ondelete="CASCADE")
    )
    origin_system: Mapped[str] = mapped_column(String(32))
    origin_id: Mapped[str] = mapped_column(String(36))
    display_name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("catalog_id", "origin_system", "origin_id"),
        Index("ix_catalog_resources_origin", "origin_id"),
    )


class ResourceRole(Base):
    __tablename__ = "resource_roles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resource_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("catalog_resources.id", ondelete="CASCADE"), index=True
    )
    origin_system: Mapped[str] = mapped_column(String(32))
    # Member_{groupId} / Owner_{groupId}, an app role id, or a site role id.
    origin_id: Mapped[str] = mapped_column(String(80))
    display_name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("resource_id", "origin_id"),)


class ResourceScope(Base):
    __tablename__ = "resource_scopes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resource_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("catalog_resources.id", ondelete="CASCADE"), index=True
    )
    origin_system: Mapped[str] = mapped_column(String(32))
    origin_id: Mapped[str] = mapped_column(String(80))
    display_name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    is_root_scope: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (UniqueConstraint("resource_id", "origin_id"),)


class ResourceRequest(Base):
    """A record of an adminAdd / adminRemove; kept after the resource itself is gone."""

    __tablename__ = "resource_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_type: Mapped[RequestType] = mapped_column(Word(RequestType, 16))
    state: Mapped[RequestState] = mapped_column(Word(RequestState, 16))
    catalog_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("catalogs.id", ondelete="CASCADE"), index=True
    )
    resource_id: Mapped[str | None] = mapped_column(String(36))
    origin_system: Mapped[str] = mapped_column(String(32))
    origin_id: Mapped[str] = mapped_column(String(36))
    display_name: Mapped[str]
    requestor_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
