"""Delivery: resource grants with reference counts, applied through connectors.

The flow, for one subject and one resource role (spec §4.2):

1. Whatever changes the subject's active assignments (activation, end, extension, a role added
   to or removed from a package) calls ``recompute``: under a lock on the (subject, role) grant
   row it counts the active, unexpired assignments whose package holds that role. ``desired`` is
   "count > 0"; a change of desire (or of the latest expiry) bumps ``generation``.
2. ``apply`` brings the target in line with the row's *current* desire and records the
   generation it applied, still under the row lock. A job that runs late applies the desire of
   its own moment, never a stale one, so a late grant cannot undo a newer revoke.
3. ``refresh_states`` derives each assignment's delivery state (and its request's) from the
   grant rows: all applied → delivered; some failed for good → partiallyDelivered or
   deliveryFailed; anything pending → delivering.

Local connectors (the builtin one writes remit's own directory) are applied in the very
transaction that changes the assignments (``settle``): access is there when an approval returns
and gone when a removal returns, and a crash loses both or neither. Remote targets wait for the
worker (``lifecycle.sync_subject``), queued in that same transaction, so a crash after it loses
nothing either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, distinct, func, or_, select
from sqlalchemy.orm import Session

from remit.connectors.base import ConnectorError, RoleRef
from remit.connectors.registry import connector_for
from remit.context import Ctx
from remit.db import HotSelect, UTCDateTime, among_param, insert_or_ignore, listed, new_id
from remit.faults import crash_point
from remit.jobs.queue import enqueue
from remit.models.catalogs import CatalogResource, ResourceRole
from remit.models.lifecycle import Assignment, ResourceGrant
from remit.models.packages import ResourceRoleScope

SYNC_JOB = "lifecycle.sync_subject"
MAX_ATTEMPTS = 8  # 30 s doubling: about two hours of retries ("several hours", spec §6.7)


def package_roles(session: Session, package_ids: Iterable[str]) -> dict[str, list[RoleRef]]:
    """The resource roles of each package, in target-system terms."""
    ids = set(package_ids)
    found: dict[str, list[RoleRef]] = {p: [] for p in ids}
    if not ids:
        return found
    rows = _PACKAGE_ROLES.in_session(session, {"packages": listed(ids)})
    for package_id, system, resource, role, role_name, resource_name in rows:
        ref = RoleRef(system, resource, role, f"{role_name} of {resource_name}")
        if ref not in found[package_id]:
            found[package_id].append(ref)
    return found


_PACKAGE_ROLES = HotSelect(
    lambda dialect: (
        select(
            ResourceRoleScope.access_package_id,
            ResourceRole.origin_system,
            CatalogResource.origin_id,
            ResourceRole.origin_id,
            ResourceRole.display_name,
            CatalogResource.display_name,
        )
        .join(ResourceRole, ResourceRole.id == ResourceRoleScope.role_id)
        .join(CatalogResource, CatalogResource.id == ResourceRole.resource_id)
        .where(among_param(dialect, ResourceRoleScope.access_package_id, "packages"))
        .order_by(ResourceRole.origin_system, ResourceRole.origin_id)
    )
)


Holders = dict[tuple[str, str, str], tuple[int, datetime | None, bool]]


def live_holders(session: Session, subject_ids: Sequence[str], now: datetime) -> Holders:
    """For each (subject, origin system, role) that the subjects' active, unexpired assignments
    need: how many of those assignments need it, the latest expiry among them, and whether one
    never expires. One grouped query, for one subject (a recount) or a sweep's chunk."""
    rows = _LIVE[session.get_bind().dialect.name].rows(
        session.connection(), {"subjects": listed(subject_ids), "now": now}
    )
    return {
        (s, system, role): (int(n), latest, bool(never))
        for s, system, role, n, latest, never in rows
    }


def _live_query(dialect_name: str) -> HotSelect:
    a = Assignment
    columns: list[Any] = [
        a.target_id,
        ResourceRole.origin_system,
        ResourceRole.origin_id,
        func.count(distinct(a.id)),
        func.max(a.expires_at),
        func.max(case((a.expires_at.is_(None), 1), else_=0)),
    ]
    query = (
        select(*columns)
        .join(ResourceRoleScope, ResourceRoleScope.access_package_id == a.access_package_id)
        .join(ResourceRole, ResourceRole.id == ResourceRoleScope.role_id)
        .where(
            among_param(dialect_name, a.target_id, "subjects"),
            a.active_key.is_not(None),
            or_(a.expires_at.is_(None), a.expires_at > bindparam("now", type_=UTCDateTime())),
        )
        .group_by(a.target_id, ResourceRole.origin_system, ResourceRole.origin_id)
    )
    return HotSelect(query)


_LIVE = {name: _live_query(name) for name in ("postgresql", "sqlite")}


def new_grant_row(subject_id: str, role: RoleRef, now: datetime) -> dict[str, Any]:
    """A grant row nothing holds yet (inserted, if missing, before it is locked)."""
    return {
        "id": new_id(),
        "subject_id": subject_id,
        "origin_system": role.origin_system,
        "resource_origin_id": role.resource_origin_id,
        "role_origin_id": role.role_origin_id,
        "display_name": role.display_name,
        "holders": 0,
        "desired": False,
        "generation": 0,
        "applied_generation": 0,
        "applied_state": "none",
        "attempts": 0,
        "updated_at": now,
    }


def _locked_grants(
    session: Session, subject_id: str, roles: Sequence[RoleRef], now: datetime
) -> list[ResourceGrant]:
    """The grant rows for these roles, created if missing, locked in a fixed order."""
    insert_or_ignore(
        session,
        ResourceGrant,
        [new_grant_row(subject_id, r, now) for r in roles],
        ["subject_id", "origin_system", "role_origin_id"],
    )
    # All of the subject's rows, locked in that order, and the wanted ones kept: one statement
    # built once. Its other rows are few, and the subject is locked anyway (lifecycle.locks).
    keys = {(r.origin_system, r.role_origin_id) for r in roles}
    rows = session.execute(_LOCK_SUBJECT_GRANTS, {"subject": subject_id}).scalars()
    return [g for g in rows if (g.origin_system, g.role_origin_id) in keys]


# A subject's grant rows, read (grant_rows) or locked in a fixed order (_locked_grants).
_SUBJECT_GRANTS = select(ResourceGrant).where(ResourceGrant.subject_id == bindparam("subject"))
_LOCK_SUBJECT_GRANTS = (
    _SUBJECT_GRANTS.order_by(ResourceGrant.origin_system, ResourceGrant.role_origin_id)
    .with_for_update()
    .execution_options(populate_existing=True)
)


def recompute(ctx: Ctx, subject_id: str, roles: Iterable[RoleRef]) -> list[ResourceGrant]:
    """Bring the subject's grant rows for ``roles`` in line with its active assignments.

    Returns the rows whose desire changed (now waiting to be applied).
    """
    wanted = sorted(set(roles), key=lambda r: (r.origin_system, r.role_origin_id))
    if not wanted:
        return []
    session = ctx.session
    session.flush()
    changed: list[ResourceGrant] = []
    locked = _locked_grants(session, subject_id, wanted, ctx.now)
    holders = live_holders(session, [subject_id], ctx.now)
    for grant in locked:
        key = (subject_id, grant.origin_system, grant.role_origin_id)
        count, latest, never = holders.get(key, (0, None, False))
        desired = count > 0
        valid_until = None if (not desired or never) else latest
        grant.holders = count
        if desired != grant.desired or (desired and valid_until != grant.valid_until):
            grant.desired = desired
            grant.valid_until = valid_until
            grant.generation += 1
            grant.attempts = 0
            grant.last_error = None
            grant.updated_at = ctx.now
            changed.append(grant)
        elif grant.applied_state == "failed" and desired:
            changed.append(grant)  # still failed: a reprocess retries it
    return changed


def settle(ctx: Ctx, subject_id: str, roles: Iterable[RoleRef]) -> list[ResourceGrant]:
    """Recount the subject's grant rows for ``roles``, apply at once what local connectors can
    (grants and revocations alike, in the caller's transaction), and queue the sync job for
    the rest: remote targets, and local attempts that failed but may be retried.

    Returns the rows whose desire changed.
    """
    changed = recompute(ctx, subject_id, roles)
    if changed:
        retry = apply(ctx, changed, local_only=True)
        if retry or any(g.applied_generation < g.generation for g in changed):
            schedule_sync(ctx, subject_id)
    return changed


def schedule_sync(ctx: Ctx, subject_id: str, *, delay: timedelta | None = None) -> None:
    """Queue (once) the job that applies the subject's pending grants."""
    enqueue(
        ctx.session,
        SYNC_JOB,
        {"subject_id": subject_id},
        now=ctx.now,
        run_after=ctx.now + delay if delay else None,
        dedupe_key=f"sync:{subject_id}",
    )


def pending_grants(session: Session, subject_id: str) -> list[ResourceGrant]:
    return list(
        session.execute(
            select(ResourceGrant)
            .where(
                ResourceGrant.subject_id == subject_id,
                ResourceGrant.applied_generation < ResourceGrant.generation,
            )
            .order_by(ResourceGrant.origin_system, ResourceGrant.role_origin_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalars()
    )


def apply(ctx: Ctx, grants: Sequence[ResourceGrant], *, local_only: bool = False) -> bool:
    """Apply the current desire of each (locked) row; True if some must be retried later."""
    retry = False
    for grant in grants:
        if grant.applied_generation >= grant.generation:
            continue
        try:
            connector = connector_for(grant.origin_system)
        except ConnectorError as e:
            _failed(ctx, grant, str(e), permanent=True)
            continue
        if local_only and not connector.local:
            continue
        try:
            crash_point("connector.before_call")
            # A local connector's refusal writes nothing (connectors.base): no savepoint.
            with nullcontext() if connector.local else ctx.session.begin_nested():
                if grant.desired:
                    connector.grant(
                        ctx.session,
                        grant.subject_id,
                        _ref(grant),
                        valid_until=grant.valid_until,
                        now=ctx.now,
                    )
                else:
                    connector.revoke(ctx.session, grant.subject_id, _ref(grant))
        except ConnectorError as e:
            retry |= not _failed(ctx, grant, str(e), permanent=e.permanent)
            continue
        except Exception as e:  # a remote target's transport error: retried
            if connector.local:
                raise
            retry |= not _failed(ctx, grant, f"{type(e).__name__}: {e}", permanent=False)
            continue
        crash_point("connector.after_call")
        grant.applied_generation = grant.generation
        grant.applied_state = "granted" if grant.desired else "revoked"
        grant.attempts = 0
        grant.last_error = None
        grant.updated_at = ctx.now
    return retry


def _failed(ctx: Ctx, grant: ResourceGrant, error: str, *, permanent: bool) -> bool:
    """Record a failed attempt; True when it will not be retried."""
    grant.attempts += 1
    grant.last_error = error[:500]
    grant.updated_at = ctx.now
    if permanent or grant.attempts >= MAX_ATTEMPTS:
        grant.applied_generation = grant.generation
        grant.applied_state = "failed"
        return True
    return False


def retry_delay(grants: Sequence[ResourceGrant]) -> timedelta:
    attempts = max((g.attempts for g in grants), default=1)
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def _ref(grant: ResourceGrant) -> RoleRef:
    return RoleRef(
        grant.origin_system, grant.resource_origin_id, grant.role_origin_id, grant.display_name
    )


def grant_rows(
    session: Session, subject_id: str, roles: Iterable[RoleRef]
) -> dict[RoleRef, ResourceGrant]:
    """The subject's grant rows for ``roles`` (unlocked, for deriving states)."""
    wanted = {(r.origin_system, r.role_origin_id): r for r in roles}
    if not wanted:
        return {}
    # All of the subject's rows (a few: one per role it ever held), filtered here: one
    # statement, built once.
    rows = session.execute(_SUBJECT_GRANTS, {"subject": subject_id}).scalars()
    return {wanted[key]: g for g in rows if (key := (g.origin_system, g.role_origin_id)) in wanted}


def delivery_state(
    roles: Sequence[RoleRef], grants: dict[RoleRef, ResourceGrant]
) -> tuple[str, str | None]:
    """An active assignment's state from its roles' grant rows, and the first error if any."""
    if not roles:
        return "delivered", None
    pending = failed = 0
    error = None
    for role in roles:
        g = grants.get(role)
        # A role already granted still counts as delivered while a newer generation of its row
        # (a new expiry, a reprocess) waits to be applied.
        held = g is not None and g.desired and g.applied_state == "granted"
        if g is None or not g.desired or (g.applied_generation < g.generation and not held):
            pending += 1
        elif g.applied_state == "failed":
            failed += 1
            error = error or f"{role.display_name}: {g.last_error}"
    if pending:
        return "delivering", error
    if failed:
        return ("deliveryFailed" if failed == len(roles) else "partiallyDelivered"), error
    return "delivered", None
