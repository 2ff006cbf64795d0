"""Directory tables. Membership edges allow groups inside groups; owners are users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base, new_id


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_principal_name: Mapped[str] = mapped_column(String(320))
    # Lower-cased copy for case-insensitive uniqueness and look-ups on both engines.
    upn_key: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str]
    mail: Mapped[str | None] = mapped_column(String(320))
    user_type: Mapped[str] = mapped_column(String(16), default="Member")
    account_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    manager_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    department: Mapped[str | None]
    job_title: Mapped[str | None]
    created_at: Mapped[datetime]
    # Guests: governed (invited through entitlement management) or notGoverned; spec §6.4.
    subject_lifecycle: Mapped[str | None] = mapped_column(String(16))
    connected_organization_id: Mapped[str | None] = mapped_column(String(36))
    # Set when a governed guest lost its last assignment: when it was blocked, when it goes.
    blocked_at: Mapped[datetime | None]
    delete_after: Mapped[datetime | None] = mapped_column(index=True)


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    # "security" or "microsoft365"
    kind: Mapped[str] = mapped_column(String(16))
    mail_nickname: Mapped[str | None]
    is_assignable_to_role: Mapped[bool] = mapped_column(Boolean, default=False)
    # A dynamic group's membership follows a rule; only its Owner role can be granted.
    membership_rule: Mapped[str | None] = mapped_column(Text)
    on_premises_sync_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class GroupMember(Base):
    """A direct membership edge. ``member_type`` is "user" or "group" (nesting)."""

    __tablename__ = "group_members"

    group_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_type: Mapped[str] = mapped_column(String(8))
    # Delivered by an access package: the latest expiry of the assignments that need it. Past
    # it the edge counts for nothing, even before the expiry sweep has removed it.
    valid_until: Mapped[datetime | None]

    __table_args__ = (Index("ix_group_members_member", "member_id"),)


class GroupOwner(Base):
    __tablename__ = "group_owners"

    group_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    valid_until: Mapped[datetime | None]


class Application(Base):
    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    display_name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class AppRole(Base):
    __tablename__ = "app_roles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    display_name: Mapped[str]
    value: Mapped[str | None]
    description: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("application_id", "value"),)


class ApplicationOwner(Base):
    __tablename__ = "application_owners"

    application_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class AppRoleAssignment(Base):
    """An app role held by a user (delivered by an access package or granted by hand)."""

    __tablename__ = "app_role_assignments"

    # An app role id, or the all-zero id of "Default Access" for an app without roles.
    app_role_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    application_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    valid_until: Mapped[datetime | None]


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str]
    name: Mapped[str]
    web_url: Mapped[str] = mapped_column(String(1024), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class SiteRole(Base):
    __tablename__ = "site_roles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    site_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    display_name: Mapped[str]

    __table_args__ = (UniqueConstraint("site_id", "display_name"),)


class SiteRoleMember(Base):
    """A user holding a site role."""

    __tablename__ = "site_role_members"

    site_role_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("site_roles.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    created_at: Mapped[datetime]
    valid_until: Mapped[datetime | None]


class SiteAdmin(Base):
    __tablename__ = "site_admins"

    site_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class DirectoryRoleAssignment(Base):
    """A directory (tenant) role held by a user or a role-assignable group."""

    __tablename__ = "directory_role_assignments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    principal_id: Mapped[str] = mapped_column(String(36), index=True)
    principal_type: Mapped[str] = mapped_column(String(8))
    role_definition_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("principal_id", "role_definition_id"),)
