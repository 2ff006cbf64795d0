"""Delivery: resource grants with reference counts, applied through connectors.

The flow, for one subject and one resource role (spec §4.2):

1. Whatever changes the subject's active assignments (activation, end, extension, a role added
   to or removed from a package) calls ``recompute``: under a lock on the (subject, role) grant
   row it counts the active, unexpired assignments whose package holds that role. ``desired`` is
   "count > 0"; a change of desire (or of the latest expiry) bumps ``generation``.
2. The row's *current* desire is applied through the connector of its delivery target, and the
   generation applied is recorded, so a late call never applies a stale desire and a late grant
   cannot undo a newer revoke. Grants go one row at a time, revocations in one
   ``revoke_many`` per target.
3. ``refresh_states`` derives each assignment's delivery state (and its request's) from the
   grant rows: all applied → delivered; some failed for good → partiallyDelivered or
   deliveryFailed; anything pending → delivering.

Which target delivers a role is data (``models.delivery``): the route of its resource, else the
builtin target. It is resolved in the statement that reads a package's roles (``RoleRef``
carries it) and kept on the grant row when the row is created.

Local targets (the builtin one writes remit's own directory) are applied in the very
transaction that changes the assignments (``settle``, ``apply``): access is there when an
approval returns and gone when a removal returns, and a crash loses both or neither. Remote
targets wait for the worker (``lifecycle.sync_subject``, queued in that same transaction), which
applies them in three steps, with no transaction open during the call (docs/decisions/0025):

a. ``claim`` — in a short write transaction, the subject's pending rows of remote targets are
   claimed: the generation being applied, a random token and a lease (``claimed_until``); a row
   whose claim is still live is left alone (its call is in flight: the job waits). Committed.
b. ``call`` — the targets are called with what was claimed, outside any transaction.
c. ``record`` — in a new short write transaction, each row still claimed with our token is
   released, and marked applied (or failed) only if its generation is still the claimed one:
   if a newer desire arrived during the call, the row stays pending and the next claim applies
   the newest desire. A crash between the call and the record repeats the call once the lease
   runs out (calls are idempotent).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, distinct, func, or_, select
from sqlalchemy.orm import Session

from remit.connectors import registry
from remit.connectors.base import (
    ConnectorError,
    LocalConnector,
    Outcomes,
    RemoteConnector,
    Revocation,
    RoleRef,
)
from remit.context import Ctx
from remit.db import HotSelect, UTCDateTime, among_param, insert_or_ignore, listed, new_id
from remit.faults import crash_point
from remit.jobs.queue import enqueue
from remit.lifecycle.locks import lock_subjects
from remit.models.catalogs import CatalogResource, ResourceRole
from remit.models.delivery import BUILTIN_TARGET_ID, DeliveryRoute
from remit.models.lifecycle import Assignment, ResourceGrant
from remit.models.packages import ResourceRoleScope
from remit.models.vocabulary import AssignmentState, GrantState

SYNC_JOB = "lifecycle.sync_subject"
MAX_ATTEMPTS = 8  # 30 s doubling: about two hours of retries ("several hours", spec §6.7)


def package_roles(
    session: Session, package_ids: Iterable[str], *, flush: bool = True
) -> dict[str, list[RoleRef]]:
    """The resource roles of each package, in target-system terms, each with the delivery
    target its resource is routed to (read in the same statement).

    ``flush=False``: the session's pending changes are the lifecycle's own rows (requests,
    assignments, grants), which no package's roles depend on, and may wait for the next flush.
    """
    ids = set(package_ids)
    found: dict[str, list[RoleRef]] = {p: [] for p in ids}
    if not ids:
        return found
    params = {"packages": listed(ids)}
    rows = (
        _PACKAGE_ROLES.in_session(session, params)
        if flush
        else _PACKAGE_ROLES.rows(session.connection(), params)
    )
    for package_id, system, resource, role, role_name, resource_name, target in rows:
        name = f"{role_name} of {resource_name}"
        ref = RoleRef(system, resource, role, name, target or BUILTIN_TARGET_ID)
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
            DeliveryRoute.target_id,
        )
        .join(ResourceRole, ResourceRole.id == ResourceRoleScope.role_id)
        .join(CatalogResource, CatalogResource.id == ResourceRole.resource_id)
        # The resource's route, if it has one (its primary key: a look-up per role).
        .outerjoin(
            DeliveryRoute,
            and_(
                DeliveryRoute.origin_system == ResourceRole.origin_system,
                DeliveryRoute.resource_origin_id == CatalogResource.origin_id,
            ),
        )
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
        "applied_state": GrantState.NONE,
        "attempts": 0,
        "updated_at": now,
        "target_id": role.target_id,
    }


def moves_to(
    target_id: str, *, applied_state: str, pending: bool, claimed: bool, role: RoleRef
) -> bool:
    """Whether a grant row about to be granted again takes its role's current target (the
    resource was routed elsewhere since the row was made): only when nothing is held or in
    flight at its old target (never granted, or revoked and applied, and no call claimed)."""
    return (
        target_id != role.target_id
        and applied_state in (GrantState.NONE, GrantState.REVOKED)
        and not pending
        and not claimed
    )


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
    refs = {(r.origin_system, r.role_origin_id): r for r in wanted}
    for grant in locked:
        key = (subject_id, grant.origin_system, grant.role_origin_id)
        count, latest, never = holders.get(key, (0, None, False))
        desired = count > 0
        valid_until = None if (not desired or never) else latest
        grant.holders = count
        if (
            desired
            and not grant.desired
            and moves_to(
                grant.target_id,
                applied_state=grant.applied_state,
                pending=grant.applied_generation < grant.generation,
                claimed=grant.claim_token is not None,
                role=refs[(grant.origin_system, grant.role_origin_id)],
            )
        ):
            grant.target_id = refs[(grant.origin_system, grant.role_origin_id)].target_id
        if desired != grant.desired or (desired and valid_until != grant.valid_until):
            grant.desired = desired
            grant.valid_until = valid_until
            grant.generation += 1
            grant.attempts = 0
            grant.last_error = None
            grant.updated_at = ctx.now
            changed.append(grant)
        elif grant.applied_state == GrantState.FAILED and desired:
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
        retry = apply(ctx, changed)
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
    """The subject's rows waiting to be applied, locked in the fixed order."""
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


def apply(
    ctx: Ctx, grants: Sequence[ResourceGrant], found: registry.Resolved | None = None
) -> bool:
    """Apply the current desire of each (locked) row whose target is local, in the caller's
    transaction: grants row by row, revocations in one ``revoke_many`` per target. Rows of
    remote targets stay pending (``sync_subject`` claims and calls them); a row whose target has
    no connector fails for good. True if some must be retried later. ``found``: the rows'
    connectors, if the caller has them."""
    todo = [g for g in grants if g.applied_generation < g.generation]
    if not todo:
        return False
    if found is None:
        found = registry.connectors(ctx.session, {g.target_id for g in todo})
    retry = False
    revoking: dict[str, tuple[LocalConnector, list[ResourceGrant]]] = {}
    for grant in todo:
        connector = found[grant.target_id]
        if isinstance(connector, ConnectorError):
            _failed(ctx, grant, str(connector), permanent=True)
            continue
        if not connector.local:
            continue
        if not grant.desired:
            revoking.setdefault(grant.target_id, (connector, []))[1].append(grant)
            continue
        try:
            crash_point("connector.before_call")
            # A local connector's refusal writes nothing (connectors.base): no savepoint.
            connector.grant(
                ctx.session,
                grant.subject_id,
                _ref(grant),
                valid_until=grant.valid_until,
                now=ctx.now,
            )
        except ConnectorError as e:
            retry |= not _failed(ctx, grant, str(e), permanent=e.permanent)
            continue
        crash_point("connector.after_call")
        _applied(ctx, grant)
    for connector, rows in revoking.values():
        crash_point("connector.before_call")
        outcomes = connector.revoke_many(
            ctx.session, [Revocation(g.subject_id, _ref(g)) for g in rows]
        )
        crash_point("connector.after_call")
        retry |= _outcomes(ctx, rows, outcomes)
    return retry


def _outcomes(ctx: Ctx, rows: Sequence[ResourceGrant], outcomes: Outcomes) -> bool:
    """Record a ``revoke_many``'s answers; True if some must be retried later."""
    retry = False
    for grant, error in zip(rows, outcomes, strict=True):
        if error is None:
            _applied(ctx, grant)
        else:
            retry |= not _failed(ctx, grant, str(error), permanent=error.permanent)
    return retry


def _applied(ctx: Ctx, grant: ResourceGrant) -> None:
    grant.applied_generation = grant.generation
    grant.applied_state = GrantState.GRANTED if grant.desired else GrantState.REVOKED
    grant.attempts = 0
    grant.last_error = None
    grant.updated_at = ctx.now


def _failed(ctx: Ctx, grant: ResourceGrant, error: str, *, permanent: bool) -> bool:
    """Record a failed attempt; True when it will not be retried."""
    grant.attempts += 1
    grant.last_error = error[:500]
    grant.updated_at = ctx.now
    if permanent or grant.attempts >= MAX_ATTEMPTS:
        grant.applied_generation = grant.generation
        grant.applied_state = GrantState.FAILED
        return True
    return False


def retry_delay(grants: Sequence[ResourceGrant]) -> timedelta:
    attempts = max((g.attempts for g in grants), default=1)
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


# ---------------------------------------------------------------- remote targets: three steps


@dataclass(frozen=True)
class Call:
    """One claimed row: what the call to its target applies."""

    grant_id: str
    subject_id: str
    role: RoleRef
    desired: bool
    valid_until: datetime | None


@dataclass
class Claim:
    """What step (a) committed: the calls to make, by target, under ``token``; and when to come
    back for what it could not claim or apply."""

    token: str
    calls: dict[str, list[Call]] = field(default_factory=dict)
    connectors: dict[str, RemoteConnector] = field(default_factory=dict)
    # A row claimed by a call still in flight elsewhere: not before its lease ends.
    busy_until: datetime | None = None
    # Local attempts that failed and will be retried (``retry_delay``).
    retry_after: timedelta | None = None


@dataclass
class Recorded:
    """What step (c) found: a row whose desire changed during its call (``superseded``: it
    waits for the next claim), and when failed attempts are retried."""

    superseded: bool = False
    retry_after: timedelta | None = None


def claim(ctx: Ctx, subject_id: str, *, lease: timedelta) -> Claim:
    """Step (a), in the caller's (short) transaction: apply what local targets can, and claim
    the subject's pending rows of remote targets for one call each, with a lease."""
    lock_subjects(ctx, [subject_id])
    grants = pending_grants(ctx.session, subject_id)
    found = registry.connectors(ctx.session, {g.target_id for g in grants})
    result = Claim(secrets.token_hex(16))
    if apply(ctx, grants, found):
        result.retry_after = retry_delay(
            [
                g
                for g in grants
                if g.applied_generation < g.generation
                and not isinstance(c := found[g.target_id], ConnectorError)
                and c.local
            ]
        )
    for grant in grants:
        connector = found[grant.target_id]
        if (
            grant.applied_generation >= grant.generation
            or isinstance(connector, ConnectorError)
            or connector.local
        ):
            continue
        if grant.claim_token is not None and _live(grant.claimed_until, ctx.now):
            until = grant.claimed_until or ctx.now
            result.busy_until = min(result.busy_until or until, until)
            continue
        grant.claim_token = result.token
        grant.claimed_generation = grant.generation
        grant.claimed_until = ctx.now + lease
        result.connectors[grant.target_id] = connector
        result.calls.setdefault(grant.target_id, []).append(
            Call(grant.id, grant.subject_id, _ref(grant), grant.desired, grant.valid_until)
        )
    return result


def _live(until: datetime | None, now: datetime) -> bool:
    return until is not None and until > now


def call(claimed: Claim, now: datetime) -> dict[str, ConnectorError | None]:
    """Step (b), with no transaction open: call each target with what was claimed (grants one
    by one, revocations in one ``revoke_many``); each row's outcome, by grant id."""
    outcomes: dict[str, ConnectorError | None] = {}
    for target_id, calls in claimed.calls.items():
        connector = claimed.connectors[target_id]
        for c in calls:
            if not c.desired:
                continue
            crash_point("connector.before_call")
            try:
                connector.grant(c.subject_id, c.role, valid_until=c.valid_until, now=now)
            except ConnectorError as e:
                outcomes[c.grant_id] = e
                continue
            except Exception as e:  # the transport: retried
                outcomes[c.grant_id] = _transient(e)
                continue
            crash_point("connector.after_call")
            outcomes[c.grant_id] = None
        revoking = [c for c in calls if not c.desired]
        if not revoking:
            continue
        crash_point("connector.before_call")
        answers: Outcomes
        try:
            answers = connector.revoke_many([Revocation(c.subject_id, c.role) for c in revoking])
            if len(answers) != len(revoking):
                answers = [ConnectorError(f"{connector.name}: one answer per item expected")]
                answers *= len(revoking)
        except ConnectorError as e:
            answers = [e] * len(revoking)
        except Exception as e:  # the transport: retried
            answers = [_transient(e)] * len(revoking)
        else:
            crash_point("connector.after_call")
        outcomes.update(zip((c.grant_id for c in revoking), answers, strict=True))
    return outcomes


def _transient(e: Exception) -> ConnectorError:
    return ConnectorError(f"{type(e).__name__}: {e}", permanent=False)


def record(
    ctx: Ctx, subject_id: str, claimed: Claim, outcomes: dict[str, ConnectorError | None]
) -> Recorded:
    """Step (c), in a new short transaction: release our claims and record each outcome, if
    the row's generation is still the one claimed (else a newer desire arrived during the call:
    the row stays pending for the next claim). A row claimed by someone else since (our lease
    ran out) is theirs to record."""
    lock_subjects(ctx, [subject_id])
    ids = [c.grant_id for calls in claimed.calls.values() for c in calls]
    rows = ctx.session.execute(
        select(ResourceGrant)
        .where(ResourceGrant.id.in_(ids))
        .order_by(ResourceGrant.origin_system, ResourceGrant.role_origin_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars()
    result = Recorded()
    waiting: list[ResourceGrant] = []
    for grant in rows:
        if grant.claim_token != claimed.token:
            continue
        generation = grant.claimed_generation
        grant.claim_token = grant.claimed_generation = grant.claimed_until = None
        if grant.generation != generation or grant.id not in outcomes:
            result.superseded = True
            continue
        error = outcomes[grant.id]
        if error is None:
            _applied(ctx, grant)
        elif not _failed(ctx, grant, str(error), permanent=error.permanent):
            waiting.append(grant)
    if waiting:
        result.retry_after = retry_delay(waiting)
    return result


def _ref(grant: ResourceGrant) -> RoleRef:
    """The row's role, with the target it is delivered by."""
    return RoleRef(
        grant.origin_system,
        grant.resource_origin_id,
        grant.role_origin_id,
        grant.display_name,
        grant.target_id,
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
) -> tuple[AssignmentState, str | None]:
    """An active assignment's state from its roles' grant rows, and the first error if any."""
    if not roles:
        return AssignmentState.DELIVERED, None
    pending = failed = 0
    error = None
    for role in roles:
        g = grants.get(role)
        # A role already granted still counts as delivered while a newer generation of its row
        # (a new expiry, a reprocess) waits to be applied.
        held = g is not None and g.desired and g.applied_state == GrantState.GRANTED
        if g is None or not g.desired or (g.applied_generation < g.generation and not held):
            pending += 1
        elif g.applied_state == GrantState.FAILED:
            failed += 1
            error = error or f"{role.display_name}: {g.last_error}"
    if pending:
        return AssignmentState.DELIVERING, error
    if failed:
        partly = failed < len(roles)
        return (
            AssignmentState.PARTIALLY_DELIVERED if partly else AssignmentState.DELIVERY_FAILED
        ), error
    return AssignmentState.DELIVERED, None
