"""Audit tables: the events, and a one-row head that anchors the end of the chain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base


class AuditEvent(Base):
    __tablename__ = "audit_events"

    # Consecutive from 1; a gap, a repeat or a swap breaks the chain.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    occurred_at: Mapped[datetime]
    category: Mapped[str] = mapped_column(String(32))
    activity: Mapped[str] = mapped_column(String(120))
    operation_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(36), index=True)
    actor_name: Mapped[str | None] = mapped_column(String(320))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(120), index=True)
    target_name: Mapped[str | None] = mapped_column(Text)
    # Not a foreign key: the record outlives the catalog it speaks of.
    catalog_id: Mapped[str | None] = mapped_column(String(36))
    # The user the event is about (a request's target, an assignment's holder): a user's whole
    # history is one indexed query.
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_events_catalog", "catalog_id", "seq"),)


class AuditHead(Base):
    """The last sequence number and hash; written in the same transaction as each event."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
