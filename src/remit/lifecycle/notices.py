"""What the lifecycle tells people and systems: emails (spec §6.10), custom-extension webhooks
(§5.10) and the guest lifecycle (§7.2). Each call only queues jobs in the caller's transaction.

Direct assignments by an administrator send the target no emails about completion or denial
(§6.9); a policy may turn assignment notifications off altogether.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, select

from remit.context import Ctx
from remit.db import HotSelect, among_param, listed
from remit.directory.queries import live_membership
from remit.external import guests, orgs
from remit.lifecycle.kinds import ADMIN_TYPES, SYSTEM_TYPES
from remit.lifecycle.schedule import end_of, iso, start_of
from remit.models.directory import GroupMember, User
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest, StageApprover
from remit.models.policies import AssignmentPolicy
from remit.models.policy_settings import schedule_of, settings_of
from remit.notify import email, webhooks


def _name(ctx: Ctx, user_id: str | None) -> str:
    if user_id is None:
        return "remit"
    user = ctx.session.get(User, user_id)
    return user.display_name if user is not None else user_id


def _policy(ctx: Ctx, policy_id: str | None) -> AssignmentPolicy | None:
    return ctx.session.get(AssignmentPolicy, policy_id) if policy_id else None


def _muted(policy: AssignmentPolicy | None) -> bool:
    return (
        policy is not None and settings_of(policy).notification.is_assignment_notification_disabled
    )


def users_of(ctx: Ctx, principals: Iterable[str]) -> list[str]:
    """The users among ``principals`` plus every user in the groups among them (transitively)."""
    ids = set(principals)
    users = {row[0] for row in _ENABLED_USERS.in_session(ctx.session, {"ids": listed(ids)})}
    frontier = ids - users
    seen: set[str] = set(frontier)
    while frontier:
        rows = ctx.session.execute(
            select(GroupMember.member_id, GroupMember.member_type).where(
                GroupMember.group_id.in_(frontier), live_membership(ctx.now)
            )
        ).all()
        frontier = set()
        for member, kind in rows:
            if kind == "user":
                users.add(member)
            elif member not in seen:
                seen.add(member)
                frontier.add(member)
    return sorted(users)


def _request_data(ctx: Ctx, request: AssignmentRequest, package_name: str) -> dict[str, Any]:
    schedule = schedule_of(request)
    start = start_of(schedule, request.created_at)
    end = end_of(schedule, start)
    return {
        "package": package_name,
        "requestor": _name(ctx, request.requestor_id),
        "target": _name(ctx, request.target_id) if request.target_id else request.target_email,
        "justification": request.justification or "",
        "start": iso(start),
        "end": iso(end) if end else "no end date",
        "submitted": iso(request.created_at),
        "request_id": request.id,
    }


def _hook(
    ctx: Ctx, policy: AssignmentPolicy | None, catalog_id: str, stage: str, payload: dict[str, Any]
) -> None:
    """Call the custom extensions the policy attaches to ``stage`` (spec §5.10), if any."""
    if policy is None or not policy.custom_extension_stage_settings:
        return
    webhooks.fire(
        ctx,
        catalog_id=catalog_id,
        stage_settings=settings_of(policy).extensions,
        stage=stage,
        payload=payload,
    )


def _fire(ctx: Ctx, request: AssignmentRequest, stage: str, payload: dict[str, Any]) -> None:
    _hook(ctx, _policy(ctx, request.policy_id), request.catalog_id, stage, payload)


def _event(request: AssignmentRequest, assignment: Assignment | None = None) -> dict[str, Any]:
    return {
        "requestId": request.id,
        "requestType": request.request_type,
        "state": request.state,
        "accessPackageId": request.access_package_id,
        "policyId": request.policy_id,
        "targetId": request.target_id,
        "assignmentId": assignment.id if assignment else request.assignment_id,
    }


def submitted(ctx: Ctx, request: AssignmentRequest) -> None:
    _fire(ctx, request, "assignmentRequestCreated", _event(request))


def approval_needed(
    ctx: Ctx,
    request: AssignmentRequest,
    stage: ApprovalStage,
    stages: int,
    package_name: str,
    principals: list[str],
    *,
    escalated: bool = False,
) -> None:
    data = _request_data(ctx, request, package_name) | {
        "deadline": iso(stage.deny_at),
        "stage": stage.stage_index + 1,
        "stages": stages,
        "escalated": escalated,
    }
    deciders = [
        u for u in users_of(ctx, principals) if u not in {request.target_id, request.requestor_id}
    ]
    email.send_later(ctx, template="approval_needed", to=deciders, data=data)


def _stage_approvers(ctx: Ctx, stage: ApprovalStage) -> list[str]:
    principals = [row[0] for row in _STAGE_APPROVERS.in_session(ctx.session, {"stage": stage.id})]
    return users_of(ctx, principals)


# Run for every notice to approvers: built once per engine.
_ENABLED_USERS = HotSelect(
    lambda dialect: select(User.id).where(
        among_param(dialect, User.id, "ids"), User.account_enabled
    )
)
_STAGE_APPROVERS = HotSelect(
    select(StageApprover.principal_id).where(StageApprover.stage_id == bindparam("stage"))
)


def stage_approved(
    ctx: Ctx, request: AssignmentRequest, stage: ApprovalStage, package_name: str
) -> None:
    others = [u for u in _stage_approvers(ctx, stage) if u != ctx.actor.user_id]
    data = _request_data(ctx, request, package_name) | {
        "stage": stage.stage_index + 1,
        "approver": _name(ctx, ctx.actor.user_id),
    }
    email.send_later(ctx, template="request_stage_approved", to=others, data=data)


def request_approved(
    ctx: Ctx, request: AssignmentRequest, stage: ApprovalStage, package_name: str
) -> None:
    others = [u for u in _stage_approvers(ctx, stage) if u != ctx.actor.user_id]
    data = _request_data(ctx, request, package_name) | {"approver": _name(ctx, ctx.actor.user_id)}
    email.send_later(ctx, template="request_approved", to=others, data=data)
    _fire(ctx, request, "assignmentRequestApproved", _event(request))


def _told(ctx: Ctx, request: AssignmentRequest) -> list[str]:
    """Who hears about the outcome: the requestor and the target, unless an administrator
    assigned directly (§6.9) or the policy mutes notifications."""
    if request.request_type in ADMIN_TYPES | SYSTEM_TYPES or _muted(
        _policy(ctx, request.policy_id)
    ):
        return []
    return sorted({u for u in (request.requestor_id, request.target_id) if u})


def denied(ctx: Ctx, request: AssignmentRequest, stage: ApprovalStage, package_name: str) -> None:
    data = _request_data(ctx, request, package_name) | {
        "approver": _name(ctx, ctx.actor.user_id),
        "justification": stage.justification or "",
    }
    email.send_later(ctx, template="request_denied", to=_told(ctx, request), data=data)


def timed_out(
    ctx: Ctx, request: AssignmentRequest, stage: ApprovalStage, package_name: str
) -> None:
    data = _request_data(ctx, request, package_name)
    to = set(_told(ctx, request)) | set(_stage_approvers(ctx, stage))
    email.send_later(ctx, template="request_expired", to=sorted(to), data=data)


def delivered(
    ctx: Ctx, request: AssignmentRequest, assignment: Assignment, package_name: str
) -> None:
    data = {
        "package": package_name,
        "end": iso(assignment.expires_at) if assignment.expires_at else "no end date",
        "request_id": request.id,
    }
    to = [assignment.target_id] if _told(ctx, request) else []
    email.send_later(ctx, template="access_delivered", to=to, data=data)
    _fire(ctx, request, "assignmentRequestGranted", _event(request, assignment))


def _to_holder(
    ctx: Ctx,
    assignment: Assignment,
    template: str,
    data: dict[str, Any],
    stage: str,
    event: dict[str, Any],
) -> None:
    """An email to the assignment's holder, unless its policy mutes them, and the policy's
    custom extensions of ``stage``."""
    policy = _policy(ctx, assignment.policy_id)
    if not _muted(policy):
        email.send_later(ctx, template=template, to=[assignment.target_id], data=data)
    payload = {
        "assignmentId": assignment.id,
        "accessPackageId": assignment.access_package_id,
        "targetId": assignment.target_id,
    }
    _hook(ctx, policy, assignment.catalog_id, stage, payload | event)


def access_ended(ctx: Ctx, assignment: Assignment, package_name: str, reason: str) -> None:
    data = {"package": package_name, "reason": reason, "assignment_id": assignment.id}
    _to_holder(
        ctx, assignment, "access_ended", data, "assignmentRequestRemoved", {"reason": reason}
    )


def expiring(ctx: Ctx, assignment: Assignment, package_name: str, days: int) -> None:
    end = iso(assignment.expires_at)
    data = {"package": package_name, "end": end, "days": days, "assignment_id": assignment.id}
    stage = (
        "assignmentFourteenDaysBeforeExpiration" if days > 1 else "assignmentOneDayBeforeExpiration"
    )
    _to_holder(ctx, assignment, "access_expiring", data, stage, {"expiresAt": end})


def guest_for(ctx: Ctx, request: AssignmentRequest) -> User:
    """The guest account for a request by email (created, governed, on approval; §5.2)."""
    address = request.target_email or ""
    org = orgs.match_organization(ctx.session, address)
    return guests.ensure_guest(ctx, email=address, organization_id=org.id if org else None)


def restore_guest(ctx: Ctx, user_id: str) -> None:
    guests.restore_on_new_assignment(ctx, user_id)


def after_last_assignment(ctx: Ctx, user_id: str) -> None:
    still = ctx.session.execute(
        select(Assignment.id)
        .where(Assignment.target_id == user_id, Assignment.active_key.is_not(None))
        .limit(1)
    ).first()
    if still is None:
        guests.on_last_assignment_ended(ctx, user_id)
