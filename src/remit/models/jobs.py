"""The job table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base
from remit.models.vocabulary import JobStatus, Word


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # queued | running | failed (a job that succeeds is deleted)
    status: Mapped[JobStatus] = mapped_column(Word(JobStatus, 16), default=JobStatus.QUEUED)
    run_after: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Set while queued, cleared when claimed: one queued job per key (e.g. "sync a subject").
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)

    __table_args__ = (Index("ix_jobs_status_run_after", "status", "run_after", "id"),)
