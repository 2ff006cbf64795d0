"""Requests, approval stages, assignments and resource grants.

Uniqueness that races must not break is carried by nullable unique "keys" (NULLs never collide on
either engine): ``open_key`` on a request while it is an open add for (target, package), and
``active_key`` on an assignment while it is active. Fifty identical requests in parallel meet
the unique index, not a check-then-insert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from remit.db import Base, new_id
from remit.models.delivery import BUILTIN_TARGET_ID
from remit.models.vocabulary import (
    ApproverTier,
    AssignmentState,
    GrantState,
    RequestState,
    RequestType,
    ReviewResult,
    StageStatus,
    Word,
)


class AssignmentRequest(Base):
    __tablename__ = "assignment_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_type: Mapped[RequestType] = mapped_column(Word(RequestType, 16))
    state: Mapped[RequestState] = mapped_column(Word(RequestState, 24))
    status: Mapped[str] = mapped_column(String(64))
    access_package_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("access_packages.id", ondelete="CASCADE"), index=True
    )
    catalog_id: Mapped[str] = mapped_column(String(36), index=True)
    policy_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("assignment_policies.id", ondelete="SET NULL"), index=True
    )
    # The assignment this request created (adds) or acts on (updates, removals).
    assignment_id: Mapped[str | None] = mapped_column(String(36), index=True)
    target_id: Mapped[str | None] = mapped_column(String(36), index=True)
    target_email: Mapped[str | None] = mapped_column(String(320))
    # Who asked: the target themself, a manager on behalf, an administrator; NULL for the system.
    requestor_id: Mapped[str | None] = mapped_column(String(36), index=True)
    justification: Mapped[str | None] = mapped_column(Text)
    answers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # {startDateTime, expiration{type,endDateTime,duration}}: frozen when submitted.
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]
    current_stage: Mapped[int | None] = mapped_column(Integer)
    open_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    delivery_error: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)


class ApprovalStage(Base):
    """One stage of one request's approval; its settings are frozen from the policy."""

    __tablename__ = "approval_stages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("assignment_requests.id", ondelete="CASCADE")
    )
    stage_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[StageStatus] = mapped_column(Word(StageStatus, 16))
    review_result: Mapped[ReviewResult] = mapped_column(Word(ReviewResult, 16))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[datetime | None]
    escalate_at: Mapped[datetime | None] = mapped_column(index=True)
    deny_at: Mapped[datetime | None] = mapped_column(index=True)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewed_by: Mapped[str | None] = mapped_column(String(36))
    reviewed_at: Mapped[datetime | None]
    justification: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("request_id", "stage_index"),)


class StageApprover(Base):
    """Who may decide a stage: users or groups (checked against the actor's transitive groups).

    Dynamic approvers (manager, second-level manager, sponsors) are resolved to users when the
    stage starts; fallbacks stand in when they cannot be found. Escalation approvers count only
    once the stage has escalated. Who may decide is ``authz.relations`` (decision 0026).
    """

    __tablename__ = "stage_approvers"

    stage_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("approval_stages.id", ondelete="CASCADE"), primary_key=True
    )
    principal_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    tier: Mapped[ApproverTier] = mapped_column(Word(ApproverTier, 16), primary_key=True)
    principal_type: Mapped[str] = mapped_column(String(8))
    # Why the principal was named when the stage started, for ``explain``: the subjectSet kinds
    # that resolved to it, e.g. "requestorManager:2" or "fallback:groupMembers", comma-separated
    # (``authz.relations.NamedAs``). None on rows written before it was recorded.
    named_as: Mapped[str | None] = mapped_column(String(255))


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Indexed by ix_assignments_package_state, whose first column it is.
    access_package_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("access_packages.id", ondelete="CASCADE")
    )
    catalog_id: Mapped[str] = mapped_column(String(36), index=True)
    policy_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("assignment_policies.id", ondelete="SET NULL"), index=True
    )
    target_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[AssignmentState] = mapped_column(Word(AssignmentState, 24))
    status: Mapped[str] = mapped_column(String(64))
    start_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    # The pattern it was given ({type, duration, endDateTime}), as Graph shows it in ``schedule``.
    expiration: Mapped[dict[str, Any]] = mapped_column(JSON)
    expired_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]
    request_id: Mapped[str | None] = mapped_column(String(36))
    ended_by: Mapped[str | None] = mapped_column(String(36))
    end_reason: Mapped[str | None] = mapped_column(String(32))
    extension_count: Mapped[int] = mapped_column(Integer, default=0)
    # Bit 1: the 14-day reminder went out; bit 2: the 1-day one.
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    # Auto-assignment: when the holder stopped matching the rule (the grace period runs from it).
    out_of_scope_since: Mapped[datetime | None]
    active_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        Index("ix_assignments_package_state", "access_package_id", "state"),
        # The expiry sweep's queue: active assignments in the order they end. Ended ones leave
        # it, so finding the next due chunk never walks over those ended before.
        Index(
            "ix_assignments_due",
            "expires_at",
            "id",
            sqlite_where=text("active_key IS NOT NULL"),
            postgresql_where=text("active_key IS NOT NULL"),
        ),
    )


class ResourceGrant(Base):
    """A resource role a subject should (or should no longer) hold in a target system.

    ``holders`` counts the active assignments that need it (spec §4.2: revoke only when the last
    one ends). Each change of ``desired`` bumps ``generation``; delivery applies the current
    desire and records ``applied_generation``, so a late grant can never undo a newer revoke:
    a local target under a lock on this row, a remote one through a claim (``claim_token``,
    ``claimed_generation``, ``claimed_until``: the generation a call in flight applies, and its
    lease), whose outcome counts only if the generation is still the claimed one.

    ``target_id`` is the delivery target the row was resolved to when it was created (the
    resource's route, or the builtin target). A row moves to the resource's current target only
    when it is about to be granted again with nothing held or in flight at the old one.
    """

    __tablename__ = "resource_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Indexed by the unique (subject_id, origin_system, role_origin_id), whose first column it is.
    subject_id: Mapped[str] = mapped_column(String(36))
    origin_system: Mapped[str] = mapped_column(String(32))
    resource_origin_id: Mapped[str] = mapped_column(String(80))
    role_origin_id: Mapped[str] = mapped_column(String(80))
    display_name: Mapped[str]
    holders: Mapped[int] = mapped_column(Integer, default=0)
    desired: Mapped[bool] = mapped_column(Boolean, default=False)
    # The latest expiry among the holders (NULL: one of them never expires).
    valid_until: Mapped[datetime | None]
    generation: Mapped[int] = mapped_column(Integer, default=0)
    applied_generation: Mapped[int] = mapped_column(Integer, default=0)
    applied_state: Mapped[GrantState] = mapped_column(Word(GrantState, 16), default=GrantState.NONE)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    # No index: a target is deleted rarely (and refused while rows name it), and every grant
    # row written would pay for one.
    target_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("delivery_targets.id", ondelete="RESTRICT"),
        default=BUILTIN_TARGET_ID,
        server_default=BUILTIN_TARGET_ID,
    )
    # A remote call in flight: who claimed the row, for which generation, until when.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_generation: Mapped[int | None] = mapped_column(Integer)
    claimed_until: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("subject_id", "origin_system", "role_origin_id"),
        # Room in each page for the new versions of its rows: every grant, revoke and recount
        # updates rows in place, and PostgreSQL then writes no index entries for them (HOT
        # updates; none of the indexed columns changes): a third less time per row (decision 0017).
        {"postgresql_with": {"fillfactor": 70}},
    )
