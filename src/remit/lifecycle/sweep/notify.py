"""The chunk's notices: an "access ended" email per assignment, custom extensions, guests."""

from __future__ import annotations

import functools
from typing import cast

from sqlalchemy import Insert, Integer, String, Table, bindparam, insert, literal, select

from remit.context import Ctx
from remit.db import among, among_param, dialect, listed
from remit.lifecycle import notices
from remit.lifecycle.sweep.claim import REASON, Ended
from remit.lifecycle.sweep.sql import JSON_OBJECT, text, uuid
from remit.models.directory import User
from remit.models.jobs import Job
from remit.models.lifecycle import Assignment
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy
from remit.models.policy_settings import NotificationSettings
from remit.models.vocabulary import JobStatus
from remit.notify import email

A = cast(Table, Assignment.__table__)
JOBS = cast(Table, Job.__table__)
PACKAGES = cast(Table, AccessPackage.__table__)
_COLUMNS = ["kind", "payload", "status", "run_after", "attempts", "max_attempts"]
_COLUMNS += ["created_at", "updated_at"]


def access_ended(ctx: Ctx, ended: list[Ended], names: dict[str, str]) -> int:
    """``notices.access_ended`` for each assignment: the email jobs in one ``INSERT … SELECT``
    (the payload ``email.send_later`` queues) unless the policy mutes them; policies with custom
    extensions one by one, through ``notices``. The number of emails queued."""
    session = ctx.session
    policies: dict[str, tuple[bool, bool]] = {}
    policy_ids = {a.policy_id for a in ended if a.policy_id}
    if policy_ids:
        for pid, notification, extensions in session.execute(
            select(
                AssignmentPolicy.id,
                AssignmentPolicy.notification_settings,
                AssignmentPolicy.custom_extension_stage_settings,
            ).where(AssignmentPolicy.id.in_(policy_ids))
        ):
            settings = NotificationSettings.model_validate(notification or {})
            muted = settings.is_assignment_notification_disabled
            policies[pid] = (muted, bool(extensions))
    mailed: list[str] = []
    for a in ended:
        muted, extended = policies.get(a.policy_id or "", (False, False))
        if extended:
            notices.access_ended(ctx, _as_assignment(a), names[a.package_id], REASON)
        elif not muted:
            mailed.append(a.id)
    if not mailed:
        return 0
    params = {"now": ctx.now, "queued_at": ctx.now.isoformat(), "ids": listed(mailed)}
    session.execute(_insert_emails(dialect(session)), params)
    return len(mailed)


@functools.cache
def _insert_emails(dialect_name: str) -> Insert:
    """Built once per engine (its parameters named), as statement construction would cost a
    chunk more than running it."""
    obj = JSON_OBJECT[dialect_name]
    payload = obj(
        text("template"), text("access_ended"),
        text("user_id"), A.c.target_id,
        text("data"), obj(
            text("package"), PACKAGES.c.display_name,
            text("reason"), text(REASON),
            text("assignment_id"), A.c.id,
        ),
        text("message_id"), uuid(dialect_name),
        text("queued_at"), text(bindparam("queued_at", type_=String)),
    )  # fmt: skip
    now = bindparam("now", type_=JOBS.c.created_at.type)
    source = (
        select(
            literal(email.EMAIL_JOB, String),
            payload,
            literal(JobStatus.QUEUED, String),
            now,
            literal(0, Integer),
            literal(email.EMAIL_ATTEMPTS, Integer),
            now,
            now,
        )
        .select_from(A.join(PACKAGES, PACKAGES.c.id == A.c.access_package_id))
        .where(among_param(dialect_name, A.c.id, "ids"))
    )
    return insert(JOBS).from_select(_COLUMNS, source)


def _as_assignment(a: Ended) -> Assignment:
    """A transient copy for ``notices`` (never added to the session)."""
    return Assignment(
        id=a.id,
        access_package_id=a.package_id,
        catalog_id=a.catalog_id,
        policy_id=a.policy_id,
        target_id=a.target_id,
        expires_at=a.expires_at,
    )


def last_assignments(ctx: Ctx, subjects: list[str]) -> None:
    """``notices.after_last_assignment`` for the governed guests among the subjects."""
    guests = ctx.session.execute(
        select(User.id)
        .where(
            among(ctx.session, User.id, subjects),
            User.user_type == "Guest",
            User.subject_lifecycle == "governed",
            User.blocked_at.is_(None),
        )
        .order_by(User.id)
    ).scalars()
    for user_id in list(guests):
        notices.after_last_assignment(ctx, user_id)
