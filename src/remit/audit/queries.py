"""Who may read which audit events, and a user's history (API and CLI read through here)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, false, or_, select

from remit import validation
from remit.authz.tasks import Task
from remit.authz.visibility import catalogs_with_task
from remit.context import Ctx
from remit.models.audit import AuditEvent


def visible_events(ctx: Ctx) -> Select[AuditEvent]:
    """Events about a catalog follow that catalog's visibility; the rest are for admins."""
    clauses: list[ColumnElement[bool]] = []
    if Task.TENANT_AUDIT_READ in ctx.actor.tenant_tasks:
        clauses.append(AuditEvent.catalog_id.is_(None))
    readable = catalogs_with_task(ctx.actor, Task.AUDIT_READ)
    clauses.append(
        AuditEvent.catalog_id.is_not(None)
        if readable is None
        else AuditEvent.catalog_id.in_(readable)
    )
    return select(AuditEvent).where(or_(*clauses))


def history(ctx: Ctx, user_id: str) -> Select[AuditEvent]:
    """The events the actor may read about one user, oldest first: what they asked for and
    what others did to them (requests, decisions, assignments, deliveries, removals), whoever
    acted. Lifecycle events carry the user as their subject (``AuditEvent.subject_id``). An id
    no user can have (a control character in it) has none, without asking the database."""
    about = AuditEvent.subject_id == user_id if validation.usable_id(user_id) else false()
    return visible_events(ctx).where(about).order_by(AuditEvent.seq)


def get_event(ctx: Ctx, event_id: str) -> AuditEvent | None:
    """One event the actor may read, or None (an id with a control character names none)."""
    if not validation.usable_id(event_id):
        return None
    return ctx.session.execute(
        visible_events(ctx).where(AuditEvent.id == event_id)
    ).scalar_one_or_none()
