"""Reading the audit log: who may read which events, one event, a page of them, a user's history.

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, false, or_, select

from remit import listing, validation
from remit.authz.decide import can
from remit.authz.tasks import Task
from remit.authz.visibility import catalogs_with_task
from remit.context import Ctx
from remit.errors import NotFound
from remit.listing import F, ListOptions, Page
from remit.models.audit import AuditEvent
from remit.models.catalogs import Catalog
from remit.models.directory import User

# What a list may be filtered and ordered on (Graph's directoryAudit property names).
EVENT_FIELDS = {
    "id": F(AuditEvent.id),
    "category": F(AuditEvent.category),
    "activityDisplayName": F(AuditEvent.activity),
    "activityDateTime": F(AuditEvent.occurred_at),
    "operationType": F(AuditEvent.operation_type),
    "initiatedBy/user/id": F(AuditEvent.actor_id),
    "initiatedBy/user/userPrincipalName": F(AuditEvent.actor_name),
    "targetResourceId": F(AuditEvent.target_id),
    "catalogId": F(AuditEvent.catalog_id),
    # The user a lifecycle event is about (additionalDetails "subjectId"): a user's history.
    "subjectId": F(AuditEvent.subject_id),
}


def visible_events(ctx: Ctx) -> Select[AuditEvent]:
    """Events about a catalog follow that catalog's visibility; the rest are for admins."""
    clauses: list[ColumnElement[bool]] = []
    if can(ctx.actor, Task.TENANT_AUDIT_READ):
        clauses.append(AuditEvent.catalog_id.is_(None))
    readable = catalogs_with_task(ctx.actor, Task.AUDIT_READ)
    clauses.append(
        AuditEvent.catalog_id.is_not(None)
        if readable is None
        else AuditEvent.catalog_id.in_(readable)
    )
    return select(AuditEvent).where(or_(*clauses))


def history_events(ctx: Ctx, user_id: str) -> list[AuditEvent]:
    """The events the actor may read about one user, oldest first: what they asked for and
    what others did to them (requests, decisions, assignments, deliveries, removals), whoever
    acted. Lifecycle events carry the user as their subject (``AuditEvent.subject_id``). An id
    no user can have (a control character in it) has none, without asking the database."""
    about = AuditEvent.subject_id == user_id if validation.usable_id(user_id) else false()
    stmt = visible_events(ctx).where(about).order_by(AuditEvent.seq)
    return list(ctx.session.execute(stmt).scalars())


@dataclass(frozen=True)
class HistoryEntry:
    event: AuditEvent
    catalog_name: str | None


@dataclass(frozen=True)
class History:
    user_principal_name: str
    entries: list[HistoryEntry]


def history(ctx: Ctx, upn: str) -> History:
    """A user's history by userPrincipalName: the events the actor may read about them, with
    the name of each event's catalog. Unknown users are ``NotFound``."""
    user = (
        ctx.session.execute(select(User).where(User.upn_key == upn.lower())).scalar()
        if validation.usable_id(upn)
        else None
    )
    if user is None:
        raise NotFound(f"no user {upn}")
    events = history_events(ctx, user.id)
    wanted = {e.catalog_id for e in events if e.catalog_id}
    names = dict(
        ctx.session.execute(select(Catalog.id, Catalog.display_name).where(Catalog.id.in_(wanted)))
        .tuples()
        .all()
    )
    entries = [HistoryEntry(e, names.get(e.catalog_id or "", e.catalog_id)) for e in events]
    return History(user.user_principal_name, entries)


def events(ctx: Ctx, options: ListOptions) -> Page[AuditEvent]:
    """A page of the events the actor may read, in the order they were recorded."""
    return listing.page(
        ctx.session, visible_events(ctx), key=AuditEvent.seq, fields=EVENT_FIELDS, options=options
    )


def event(ctx: Ctx, event_id: str) -> AuditEvent:
    """One event the actor may read; any other id (one with a control character names none) is
    ``NotFound``."""
    found = (
        ctx.session.execute(
            visible_events(ctx).where(AuditEvent.id == event_id)
        ).scalar_one_or_none()
        if validation.usable_id(event_id)
        else None
    )
    if found is None:
        raise NotFound(f"audit event {event_id} was not found")
    return found
