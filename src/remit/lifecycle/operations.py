"""Use cases the adapters call for approvals and assignments (requests: ``requests``; what the
actor may see of them: ``queries``)."""

from __future__ import annotations

from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.errors import Conflict, NotFound
from remit.lifecycle import approvals, assignments, queries, requests
from remit.lifecycle.events import about
from remit.lifecycle.locks import lock_subjects
from remit.models.lifecycle import Assignment
from remit.models.packages import AccessPackage
from remit.models.vocabulary import Activity, StageStatus


def reprocess_assignment(ctx: Ctx, assignment_id: str) -> Assignment:
    """Spec §6.7: grant every resource role again (repairs drift made outside remit)."""
    a = queries.assignment(ctx, assignment_id)
    lock_subjects(ctx, [a.target_id])
    authorize(ctx.actor, Task.REQUEST_REPROCESS, a.catalog_id)
    if a.active_key is None or assignments.lapsed(a, ctx.now):
        raise Conflict("the assignment has ended", code="AssignmentEnded")
    requests.retry_roles(ctx, a, failed_only=False)
    about(ctx, Activity.REPROCESS_ASSIGNMENT, a, "Update")
    return a


# ------------------------------------------------------------------------------ approvals


def decide_stage(
    ctx: Ctx, request_id: str, stage_id: str, *, result: str, justification: str | None
) -> str:
    request, stages = queries.approval_stages(ctx, request_id)
    lock_subjects(ctx, [request.target_id or request.target_email])
    stage = next((s for s in stages if s.id == stage_id), None)
    if stage is None:
        raise NotFound(f"approval stage {stage_id} was not found")
    if stage.status != StageStatus.IN_PROGRESS:
        if stage.status == StageStatus.COMPLETED:
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
