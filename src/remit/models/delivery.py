"""Delivery targets: where a resource's roles are delivered, as data (docs/decisions/0025).

A target is a configured system of a kind that a connector knows (``builtin``: remit's own
directory; later ``scim``, ``ldap``), with its non-secret settings. A route sends the roles of
one resource (an origin system and the resource's origin id: a group, an application, a site)
to a target; a resource without a route is delivered by the builtin target, a row every
database holds (``BUILTIN_TARGET_ID``, seeded by the migration and by ``bootstrap``). A target
that a route or a grant row refers to cannot be deleted (``RESTRICT``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base, new_id

# The builtin target (remit's own directory): fixed, so that code knows it without a read.
BUILTIN_TARGET_ID = "00000000-0000-0000-0000-000000000001"
BUILTIN_KIND = "builtin"


class DeliveryTarget(Base):
    __tablename__ = "delivery_targets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # The connector kind that serves it (connectors.registry): builtin | scim | ldap | ...
    kind: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str]
    # Non-secret settings (a base URL, a base DN, timeouts); secrets are never stored here.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]


class DeliveryRoute(Base):
    """The target that delivers the roles of one resource (in its origin system's terms)."""

    __tablename__ = "delivery_routes"

    origin_system: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_origin_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    target_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("delivery_targets.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime]
