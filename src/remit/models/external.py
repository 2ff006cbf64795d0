"""Connected organizations and the tenant's entitlement-management settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base, new_id
from remit.models.vocabulary import OrganizationState, Word


class ConnectedOrganization(Base):
    __tablename__ = "connected_organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    display_name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    # configured | proposed
    state: Mapped[OrganizationState] = mapped_column(
        Word(OrganizationState, 16), default=OrganizationState.CONFIGURED
    )
    identity_sources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(36))


class ConnectedOrganizationDomain(Base):
    """The email domains and tenant ids an organization's users come from (matching index)."""

    __tablename__ = "connected_organization_domains"

    organization_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("connected_organizations.id", ondelete="CASCADE"), primary_key=True
    )
    # A lower-cased domain name ("fabrikam.example") or "tenant:{tenantId}".
    domain: Mapped[str] = mapped_column(String(260), primary_key=True, index=True)


class ConnectedOrganizationSponsor(Base):
    __tablename__ = "connected_organization_sponsors"

    organization_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("connected_organizations.id", ondelete="CASCADE"), primary_key=True
    )
    # internal | external
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    principal_type: Mapped[str] = mapped_column(String(8))


class TenantSettings(Base):
    """One row (id 1): entitlementManagementSettings."""

    __tablename__ = "tenant_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # none | blockSignIn | blockSignInAndDelete
    external_user_lifecycle_action: Mapped[str] = mapped_column(
        String(24), default="blockSignInAndDelete"
    )
    # durationUntilExternalUserDeletedAfterBlocked, in seconds (0: delete at once).
    delete_after_blocked_seconds: Mapped[int] = mapped_column(Integer, default=30 * 86400)
    modified_at: Mapped[datetime]
