"""Assignments: activation from an approved request, delivery states, extension and ending.

Every function here runs inside an operation's (or a job's) transaction; authorization has
already happened in the request operation that leads here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from remit.authz.actor import transitive_group_ids
from remit.connectors.base import RoleRef
from remit.context import Ctx
from remit.db import HotSelect, UTCDateTime, add_unique, affected
from remit.errors import Conflict
from remit.faults import crash_point
from remit.jobs.queue import enqueue
from remit.lifecycle import delivery, notices
from remit.lifecycle.events import about
from remit.lifecycle.kinds import ADD_TYPES, REMOVE_TYPES
from remit.lifecycle.locks import lock_subjects
from remit.lifecycle.schedule import (
    assignment_schedule,
    end_of,
    ends_at,
    iso,
    passed_reminders,
    start_of,
)
from remit.models.directory import User
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.packages import AccessPackage, IncompatibleGroup, IncompatiblePackage
from remit.models.policy_settings import schedule_of
from remit.models.vocabulary import Activity, AssignmentState, RequestState


def lapsed(a: Assignment, now: datetime) -> bool:
    """Active on paper but past its end: it counts for nothing (expired access is never
    honoured), and reads as expired, even before the sweep ends it."""
    return a.active_key is not None and a.expires_at is not None and a.expires_at <= now


def active_key(target_id: str, package_id: str) -> str:
    return f"{target_id}:{package_id}"


def already_assigned() -> Conflict:
    """The refusal of a second active assignment of one package to one target."""
    return Conflict(
        "the target already has an active assignment to this access package",
        code="ExistingAssignment",
    )


def conflict(ctx: Ctx, package_id: str, target_id: str) -> str | None:
    """Spec §4.3: why ``target_id`` may not hold ``package_id`` now (an incompatible package it
    holds, or an incompatible group it is in), or None. Checked when a request is submitted
    and again when an assignment is activated (approvals and scheduled starts take time)."""
    session = ctx.session
    if _HELD.in_session(session, {"target": target_id, "package": package_id, "now": ctx.now}):
        return "the target holds an access package that is incompatible with this one"
    # Most packages name no incompatible group: then the target's groups need not be read.
    barred = {row[0] for row in _BARRED.in_session(session, {"package": package_id})}
    if barred and barred & set(transitive_group_ids(session, target_id, now=ctx.now)):
        return "the target is a member of a group that is incompatible with this access package"
    return None


# Asked on every request and every activation: built once (db.HotSelect).
_HELD = HotSelect(
    select(Assignment.access_package_id)
    .where(
        Assignment.target_id == bindparam("target"),
        Assignment.active_key.is_not(None),
        or_(
            Assignment.expires_at.is_(None),
            Assignment.expires_at > bindparam("now", type_=UTCDateTime()),
        ),
        Assignment.access_package_id.in_(
            select(IncompatiblePackage.incompatible_id).where(
                IncompatiblePackage.access_package_id == bindparam("package")
            )
        ),
    )
    .limit(1)
)
_BARRED = HotSelect(
    select(IncompatibleGroup.group_id).where(
        IncompatibleGroup.access_package_id == bindparam("package")
    )
)


def activate(ctx: Ctx, request: AssignmentRequest, package: AccessPackage) -> Assignment | None:
    """An approved add request becomes an assignment (or waits, scheduled, for its start)."""
    schedule = schedule_of(request)
    start = start_of(schedule, ctx.now)
    if start > ctx.now:
        request.state, request.status = RequestState.SCHEDULED, "Scheduled"
        enqueue(
            ctx.session,
            "lifecycle.activate_scheduled",
            {"request_id": request.id},
            now=ctx.now,
            run_after=start,
        )
        return None
    target_id = request.target_id
    if target_id is None:
        target_id = notices.guest_for(ctx, request).id
        request.target_id = target_id
    ends = end_of(schedule, start)
    problem = (
        "the requested period ended before it could start"
        if ends is not None and ends <= start
        else conflict(ctx, package.id, target_id)
    )
    if problem is not None:
        request.state, request.status = RequestState.DELIVERY_FAILED, "NotDelivered"
        request.delivery_error, request.completed_at, request.open_key = problem, ctx.now, None
        return None
    assignment = Assignment(
        access_package_id=package.id,
        catalog_id=package.catalog_id,
        policy_id=request.policy_id,
        target_id=target_id,
        state=AssignmentState.DELIVERING,
        status="Delivering",
        start_at=start,
        expires_at=ends,
        reminders_sent=passed_reminders(ends, max(start, ctx.now)),
        expiration=schedule.expiration.stored() or {"type": "noExpiration"},
        created_at=ctx.now,
        modified_at=ctx.now,
        request_id=request.id,
        active_key=active_key(target_id, package.id),
    )
    add_unique(ctx.session, assignment, already_assigned())
    crash_point("assignment.after_create")
    about(
        ctx,
        Activity.READY_TO_FULFILL,
        request,
        "Add",
        name=package.display_name,
        after={"assignmentId": assignment.id, "expiresAt": iso(assignment.expires_at)},
    )
    notices.restore_guest(ctx, target_id)
    roles = delivery.package_roles(ctx.session, [package.id], flush=False)
    delivery.settle(ctx, target_id, roles[package.id])
    # Set after ``settle`` (whose recount flushes what is pending): the request's row is then
    # written once, at commit, with the state ``refresh_states`` gives it (one flush, not three).
    request.assignment_id = assignment.id
    request.state, request.status = RequestState.DELIVERING, "Delivering"
    refresh_states(ctx, target_id, known=roles)
    return assignment


def end(
    ctx: Ctx,
    assignment: Assignment,
    *,
    reason: str,
    request: AssignmentRequest | None = None,
) -> None:
    """End an active assignment: revoke what no other assignment needs, notify, audit.

    The row is claimed with a conditional update, so of two concurrent ends (an expiry sweep
    and an admin removal, say) exactly one goes ahead and the other gets Conflict.
    """
    claimed = affected(
        ctx.session.execute(
            update(Assignment)
            .where(Assignment.id == assignment.id, Assignment.active_key.is_not(None))
            .values(
                state=AssignmentState.EXPIRED,
                status="Expired" if reason == "expired" else "Removed",
                active_key=None,
                expired_at=ctx.now,
                modified_at=ctx.now,
                end_reason=reason,
                ended_by=None if ctx.actor.is_system or reason == "expired" else ctx.actor.user_id,
                version=Assignment.version + 1,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if claimed != 1:
        raise Conflict("the assignment has already ended", code="AssignmentEnded")
    ctx.session.refresh(assignment)
    package = ctx.session.get(AccessPackage, assignment.access_package_id)
    name = package.display_name if package else assignment.access_package_id
    about(
        ctx,
        Activity.REMOVE_ASSIGNMENT,
        assignment,
        "Delete",
        name=name,
        details={"reason": reason, "requestId": request.id if request else None},
    )
    roles = delivery.package_roles(ctx.session, [assignment.access_package_id])
    delivery.settle(ctx, assignment.target_id, roles[assignment.access_package_id])
    _close_undelivered_add(ctx, assignment, reason)
    crash_point("removal.after_revoke")
    if request is not None:
        request.assignment_id = assignment.id
    refresh_states(ctx, assignment.target_id)
    notices.access_ended(ctx, assignment, name, reason)
    notices.after_last_assignment(ctx, assignment.target_id)


def _close_undelivered_add(ctx: Ctx, assignment: Assignment, reason: str) -> None:
    """The add request of an assignment that ends before it was delivered is over too: it
    would otherwise stay "delivering", holding its open key, for ever."""
    if not assignment.request_id:
        return
    add = ctx.session.get(AssignmentRequest, assignment.request_id)
    if add is not None and add.state == RequestState.DELIVERING and add.request_type in ADD_TYPES:
        add.state, add.status = RequestState.CANCELED, f"AssignmentEnded:{reason}"
        add.completed_at, add.open_key = ctx.now, None
        about(
            ctx,
            Activity.CANCEL_REQUEST,
            add,
            "Update",
            details={"reason": f"the assignment ended before delivery ({reason})"},
        )


def extend(
    ctx: Ctx, assignment: Assignment, new_end: datetime | None, request: AssignmentRequest
) -> None:
    before = iso(assignment.expires_at)
    assignment.expires_at = new_end
    assignment.expiration = ends_at(new_end).stored()
    assignment.extension_count += 1
    assignment.reminders_sent = passed_reminders(new_end, ctx.now)
    assignment.modified_at = ctx.now
    assignment.version += 1
    request.assignment_id = assignment.id
    about(
        ctx,
        Activity.EXTEND_ASSIGNMENT,
        assignment,
        "Update",
        before={"expiresAt": before},
        after={"expiresAt": iso(new_end)},
        details={"requestId": request.id},
    )
    roles = delivery.package_roles(ctx.session, [assignment.access_package_id])
    # A new end changes the delivered rows' valid_until (a shortened one is a partial
    # revocation): local targets get it at once.
    delivery.settle(ctx, assignment.target_id, roles[assignment.access_package_id])
    request.state, request.status, request.completed_at = (
        RequestState.DELIVERED,
        "Fulfilled",
        ctx.now,
    )
    request.open_key = None


def refresh_states(
    ctx: Ctx, subject_id: str, known: dict[str, list[RoleRef]] | None = None
) -> None:
    """Derive the subject's assignment and request states from its grant rows. ``known``: the
    roles of packages the caller has just read, which need not be read again.

    Nothing is flushed for these reads unless a row was added: the rows they return come from
    the session's identity map with their pending changes (the grant rows' generations), and
    no pending change moves a row into or out of what they select (an assignment's target and
    active key, and a removal request's state, change by conditional ``UPDATE`` or on rows
    created in this transaction). The states set here are written at the next flush, with
    the grant rows (the commit's, in an approval).
    """
    session = ctx.session
    if session.new:
        session.flush()  # a new assignment or removal request must be found below
    with session.no_autoflush:
        assignments = list(session.execute(_ACTIVE_OF, {"subject": subject_id}).scalars())
        known = known or {}
        roles = known | delivery.package_roles(
            session, {a.access_package_id for a in assignments} - known.keys(), flush=False
        )
        all_roles = {r for rs in roles.values() for r in rs}
        grants = delivery.grant_rows(session, subject_id, all_roles)
    for a in assignments:
        state, error = delivery.delivery_state(roles[a.access_package_id], grants)
        if state != a.state:
            _transition(ctx, a, state, error)
    _finish_removals(ctx, subject_id)


_ACTIVE_OF = select(Assignment).where(
    Assignment.target_id == bindparam("subject"), Assignment.active_key.is_not(None)
)

STATUS = {
    AssignmentState.DELIVERING: "Delivering",
    AssignmentState.DELIVERED: "Delivered",
    AssignmentState.PARTIALLY_DELIVERED: "PartiallyDelivered",
    AssignmentState.DELIVERY_FAILED: "DeliveryFailed",
}


def _transition(ctx: Ctx, a: Assignment, state: AssignmentState, error: str | None) -> None:
    a.state, a.status, a.modified_at = state, STATUS[state], ctx.now
    request = ctx.session.get(AssignmentRequest, a.request_id) if a.request_id else None
    package = ctx.session.get(AccessPackage, a.access_package_id)
    name = package.display_name if package else a.access_package_id
    if state == AssignmentState.DELIVERED:
        details: dict[str, Any] = {"requestId": a.request_id}
        about(ctx, Activity.FULFILL_ASSIGNMENT, a, "Update", name=name, details=details)
    elif state in (AssignmentState.PARTIALLY_DELIVERED, AssignmentState.DELIVERY_FAILED):
        details = {"state": state, "error": error}
        about(ctx, Activity.DELIVERY_FAILED, a, "Update", name=name, details=details)
    if request is None or request.request_type not in ADD_TYPES:
        return
    # Only a request still delivering follows its assignment: a completed one stays completed
    # (a reprocess of the assignment, or a role shared with another one, does not reopen it).
    if request.state == RequestState.DELIVERING:
        first_time = True
        request.state = RequestState(state)
        request.status = "Fulfilled" if state == AssignmentState.DELIVERED else STATUS[state]
        request.delivery_error = error
        if state != AssignmentState.DELIVERING:
            request.completed_at = ctx.now
            request.open_key = None
        if state == AssignmentState.DELIVERED and first_time:
            notices.delivered(ctx, request, a, name)


def _finish_removals(ctx: Ctx, subject_id: str) -> None:
    """Removal requests complete once nothing about their assignment's roles is pending."""
    session = ctx.session
    # No autoflush: what ``_transition`` just changed (assignment states, add requests) does
    # not touch what these reads select (refresh_states says why).
    with session.no_autoflush:
        removals = [
            r
            for r in session.execute(_DELIVERING_REMOVALS, {"subject": subject_id}).scalars()
            if r.state == RequestState.DELIVERING  # not one finished earlier in this session
        ]
        if not removals:
            return
        ended = {
            a.id: a.access_package_id
            for a in session.execute(
                select(Assignment).where(Assignment.id.in_({r.assignment_id for r in removals}))
            ).scalars()
        }
        roles = delivery.package_roles(session, set(ended.values()), flush=False)
        grants = delivery.grant_rows(session, subject_id, {r for rs in roles.values() for r in rs})
    for r in removals:
        needed = roles.get(ended.get(r.assignment_id or "", ""), [])
        if any(g.applied_generation < g.generation for x in needed if (g := grants.get(x))):
            continue
        r.state, r.status, r.completed_at = RequestState.DELIVERED, "Fulfilled", ctx.now


_DELIVERING_REMOVALS = select(AssignmentRequest).where(
    AssignmentRequest.target_id == bindparam("subject"),
    AssignmentRequest.state == RequestState.DELIVERING,
    AssignmentRequest.request_type.in_(sorted(REMOVE_TYPES)),
)


def target_user(ctx: Ctx, user_id: str) -> User | None:
    return ctx.session.get(User, user_id)


def render_schedule(a: Assignment) -> dict[str, Any]:
    return assignment_schedule(a.start_at, a.expires_at, a.expiration)


def package_roles_changed(ctx: Ctx, package_id: str, removed: Iterable[RoleRef] = ()) -> int:
    """Spec §4.2: a role added to a package goes to every active assignee; a role removed is
    taken away from them, unless another of their assignments still grants it. Returns how
    many assignees were touched."""
    session = ctx.session
    session.flush()
    subjects = sorted(
        set(
            session.execute(
                select(Assignment.target_id).where(
                    Assignment.access_package_id == package_id,
                    Assignment.active_key.is_not(None),
                )
            ).scalars()
        )
    )
    roles = delivery.package_roles(session, [package_id])[package_id] + list(removed)
    lock_subjects(ctx, subjects)
    for subject in subjects:
        if delivery.settle(ctx, subject, roles):
            refresh_states(ctx, subject)
    return len(subjects)
