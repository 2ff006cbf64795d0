"""Custom extensions: a catalog's webhooks, called at lifecycle stages (spec §5.10)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base, new_id


class CustomExtension(Base):
    __tablename__ = "custom_extensions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    catalog_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("catalogs.id", ondelete="CASCADE"), index=True
    )
    display_name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    endpoint_url: Mapped[str] = mapped_column(String(2048))
    # The HMAC key for X-Remit-Signature, sealed (notify.sealed: "sealed:1 ..."; a plaintext
    # value is one written before sealing existed); never rendered, logged or audited.
    secret: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]
