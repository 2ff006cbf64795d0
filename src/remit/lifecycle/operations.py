"""Use cases the adapters call for approvals and assignments (requests: ``requests``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select

from remit import validation
from remit.authz.decide import authorize, can
from remit.authz.tasks import Task
from remit.authz.visibility import catalog_filter
from remit.context import Ctx
from remit.errors import Conflict, Invalid, NotFound
from remit.lifecycle import approvals, assignments, requests
from remit.lifecycle.locks import lock_subjects
from remit.lifecycle.schedule import iso
from remit.models.directory import User
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest
from remit.models.packages import AccessPackage, IncompatiblePackage


def visible_requests(ctx: Ctx) -> Select[AssignmentRequest]:
    me = ctx.actor.user_id
    return select(AssignmentRequest).where(
        or_(
            catalog_filter(ctx.actor, Task.REQUEST_READ, AssignmentRequest.catalog_id),
            AssignmentRequest.target_id == me,
            AssignmentRequest.requestor_id == me,
        )
    )


def requests_for_current_user(ctx: Ctx, on: str) -> Select[AssignmentRequest]:
    me = ctx.actor.user_id
    query = select(AssignmentRequest)
    if on == "target":
        return query.where(AssignmentRequest.target_id == me)
    if on == "createdBy":
        return query.where(AssignmentRequest.requestor_id == me)
    if on == "approver":
        return query.where(AssignmentRequest.id.in_(approvals.pending_for(ctx.actor)))
    raise Invalid("on must be 'target', 'createdBy' or 'approver'", target="on")


def visible_assignments(ctx: Ctx) -> Select[Assignment]:
    return select(Assignment).where(
        or_(
            catalog_filter(ctx.actor, Task.ASSIGNMENT_READ, Assignment.catalog_id),
            Assignment.target_id == ctx.actor.user_id,
        )
    )


def assignments_for_current_user(ctx: Ctx, on: str) -> Select[Assignment]:
    me = ctx.actor.user_id
    if on == "target":
        return select(Assignment).where(Assignment.target_id == me)
    if on == "createdBy":
        return select(Assignment).where(
            Assignment.request_id.in_(
                select(AssignmentRequest.id).where(AssignmentRequest.requestor_id == me)
            )
        )
    raise Invalid("on must be 'target' or 'createdBy'", target="on")


def get_assignment(ctx: Ctx, assignment_id: str) -> Assignment:
    a = ctx.session.get(Assignment, assignment_id) if validation.usable_id(assignment_id) else None
    if a is None or not (
        a.target_id == ctx.actor.user_id or can(ctx.actor, Task.ASSIGNMENT_READ, a.catalog_id)
    ):
        raise NotFound(f"assignment {assignment_id} was not found")
    return a


def reprocess_assignment(ctx: Ctx, assignment_id: str) -> Assignment:
    """Spec §6.7: grant every resource role again (repairs drift made outside remit)."""
    a = get_assignment(ctx, assignment_id)
    lock_subjects(ctx, [a.target_id])
    authorize(ctx.actor, Task.REQUEST_REPROCESS, a.catalog_id)
    if a.active_key is None or assignments.lapsed(a, ctx.now):
        raise Conflict("the assignment has ended", code="AssignmentEnded")
    requests.retry_roles(ctx, a, failed_only=False)
    ctx.audit(
        "Reprocess access package assignment",
        operation_type="Update",
        target_type="AccessPackageAssignment",
        target_id=a.id,
        catalog_id=a.catalog_id,
        subject_id=a.target_id,
    )
    return a


def additional_access(ctx: Ctx, package_id: str, incompatible_id: str) -> Select[Assignment]:
    """Spec §4.3: assignments to ``package_id`` whose holders also hold ``incompatible_id``."""
    package = (
        ctx.session.get(AccessPackage, package_id) if validation.usable_id(package_id) else None
    )
    if package is None or not can(ctx.actor, Task.ASSIGNMENT_READ, package.catalog_id):
        raise NotFound(f"access package {package_id} was not found")
    usable = validation.usable_id(incompatible_id)
    other = ctx.session.get(AccessPackage, incompatible_id) if usable else None
    if other is None:
        raise NotFound(f"access package {incompatible_id} was not found")
    both = select(Assignment.target_id).where(
        Assignment.access_package_id == incompatible_id,
        Assignment.active_key.is_not(None),
        or_(Assignment.expires_at.is_(None), Assignment.expires_at > ctx.now),
    )
    _ = IncompatiblePackage  # the pair need not be configured for the report to be asked for
    return select(Assignment).where(
        Assignment.access_package_id == package_id,
        Assignment.active_key.is_not(None),
        or_(Assignment.expires_at.is_(None), Assignment.expires_at > ctx.now),
        Assignment.target_id.in_(both),
    )


# ------------------------------------------------------------------------------ approvals


def delivery_error(ctx: Ctx, request: AssignmentRequest) -> str | None:
    """A request's delivery error, for those who may read it (spec §1.2: not catalog readers,
    nor the requestor)."""
    if request.delivery_error and can(ctx.actor, Task.REQUEST_ERRORS_READ, request.catalog_id):
        return request.delivery_error
    return None


def get_approval(ctx: Ctx, request_id: str) -> tuple[AssignmentRequest, list[ApprovalStage]]:
    request = (
        ctx.session.get(AssignmentRequest, request_id) if validation.usable_id(request_id) else None
    )
    if request is None or not (
        approvals.is_approver_of(ctx, request.id)
        or can(ctx.actor, Task.REQUEST_READ, request.catalog_id)
    ):
        raise NotFound(f"approval {request_id} was not found")
    stages = approvals.stages_of(ctx, request.id)
    if not stages:
        raise NotFound(f"approval {request_id} was not found")
    return request, stages


def approvals_for_current_user(ctx: Ctx) -> Select[AssignmentRequest]:
    return select(AssignmentRequest).where(
        AssignmentRequest.id.in_(approvals.pending_for(ctx.actor))
    )


def decide_stage(
    ctx: Ctx, request_id: str, stage_id: str, *, result: str, justification: str | None
) -> str:
    request, stages = get_approval(ctx, request_id)
    lock_subjects(ctx, [request.target_id or request.target_email])
    stage = next((s for s in stages if s.id == stage_id), None)
    if stage is None:
        raise NotFound(f"approval stage {stage_id} was not found")
    if stage.status != "InProgress":
        if stage.status == "Completed":
            raise Conflict("this stage has already been decided", code="StageAlreadyDecided")
        raise Conflict("this stage has not started yet", code="StageNotStarted")
    package = ctx.session.get(AccessPackage, request.access_package_id)
    name = package.display_name if package else request.access_package_id
    outcome = approvals.decide(
        ctx, request, stage, result=result, justification=justification, package_name=name
    )
    if outcome == "approved":
        requests.finish_approved(ctx, request)
    return outcome


def stage_view(
    ctx: Ctx, request: AssignmentRequest, stages: list[ApprovalStage]
) -> list[dict[str, Any]]:
    """The approvalStage shapes, with ``assignedToMe`` for the caller."""
    names = {
        u.id: u.display_name
        for u in ctx.session.execute(
            select(User).where(User.id.in_({s.reviewed_by for s in stages if s.reviewed_by}))
        ).scalars()
    }
    out = []
    for s in stages:
        mine = s.status == "InProgress" and approvals.may_decide(ctx, request, s)
        out.append(
            {
                "id": s.id,
                "displayName": f"Stage {s.stage_index + 1}",
                "status": s.status,
                "reviewResult": s.review_result,
                "justification": s.justification,
                "assignedToMe": mine,
                "reviewedBy": {"id": s.reviewed_by, "displayName": names.get(s.reviewed_by or "")}
                if s.reviewed_by
                else None,
                "reviewedDateTime": iso(s.reviewed_at),
            }
        )
    return out
