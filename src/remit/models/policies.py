"""Assignment policy tables.

A policy's settings are Graph-shaped documents (validated by ``policies.document``) kept as JSON:
they are read whole and replaced whole (policy update is PUT). What queries need to find by
(who may request) is indexed separately in ``policy_targets``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base, new_id


class AssignmentPolicy(Base):
    __tablename__ = "assignment_policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    access_package_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("access_packages.id", ondelete="CASCADE"), index=True
    )
    # Copied from the package (which never moves): scope checks and list filters need no join.
    catalog_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("catalogs.id", ondelete="CASCADE"), index=True
    )
    display_name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    allowed_target_scope: Mapped[str] = mapped_column(String(48))
    specific_allowed_targets: Mapped[list[Any]] = mapped_column(JSON, default=list)
    automatic_request_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    expiration: Mapped[dict[str, Any]] = mapped_column(JSON)
    requestor_settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_approval_settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    review_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    questions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    notification_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    custom_extension_stage_settings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # The package id while this is its auto-assignment policy: at most one per package.
    auto_assignment_key: Mapped[str | None] = mapped_column(String(36), unique=True)
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer, default=1)


class PolicyTarget(Base):
    """Who a policy names as allowed requestors: a user, a group, or a connected organization."""

    __tablename__ = "policy_targets"

    policy_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("assignment_policies.id", ondelete="CASCADE"), primary_key=True
    )
    # singleUser | groupMembers | connectedOrganizationMembers
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
