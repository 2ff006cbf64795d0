"""Multi-stage approval (spec §5.6): stages in order, any one approver decides a stage, a denial
anywhere ends the request, nobody decides their own request, escalation after its delay and
automatic denial at the deadline.

A stage's approvers are resolved when it starts: users and groups as named (groups are checked
against the deciding actor's transitive groups, so membership changes count), dynamic approvers
(manager, second-level manager, sponsors) resolved to users, fallbacks when those cannot be
found. Decisions are claimed with conditional updates on the stage and on the request, so of
fifty concurrent approvals one advances and the rest get Conflict, and an approval racing a
cancel never both succeed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm.attributes import set_committed_value

from remit import validation
from remit.authz import relations
from remit.authz.relations import Named
from remit.context import Ctx
from remit.db import affected, new_id
from remit.errors import Conflict, Forbidden, Invalid
from remit.faults import crash_point
from remit.lifecycle import notices
from remit.lifecycle.events import about
from remit.models.lifecycle import ApprovalStage, AssignmentRequest, StageApprover
from remit.models.policy_settings import StageSettings, stage_of
from remit.models.vocabulary import (
    Activity,
    ApproverTier,
    RequestState,
    ReviewResult,
    StageStatus,
)

DEFAULT_DEADLINE = timedelta(days=14)


def begin(
    ctx: Ctx, request: AssignmentRequest, stages: Sequence[StageSettings], package_name: str
) -> None:
    """Create the request's stages from the policy's (frozen here) and start the first."""
    rows = [
        ApprovalStage(
            id=new_id(),  # now, not at the flush: the approvers refer to it
            request_id=request.id,
            stage_index=i,
            status=StageStatus.NOT_STARTED,
            review_result=ReviewResult.NOT_REVIEWED,
            settings=stage.stored(),
        )
        for i, stage in enumerate(stages)
    ]
    # The first stage is inserted open, in the flush that inserts its approvers and changes the
    # request (``_name_approvers``'), which also reports a conflict of either.
    _open(ctx, request, rows[0])
    request.state, request.status = RequestState.PENDING_APPROVAL, "PendingApproval"
    ctx.session.add_all(rows)
    about(
        ctx,
        Activity.CREATE_REQUEST_APPROVAL,
        request,
        "Add",
        name=package_name,
        category="UserManagement",
        details={"stages": len(rows)},
    )
    _name_approvers(ctx, request, rows[0], len(rows), package_name)


def _open(ctx: Ctx, request: AssignmentRequest, stage: ApprovalStage) -> None:
    """Make ``stage`` the request's current one, with its deadlines from now."""
    s = stage_of(stage)
    stage.status = StageStatus.IN_PROGRESS
    stage.started_at = ctx.now
    deadline = s.duration_before_automatic_denial
    stage.deny_at = ctx.now + (DEFAULT_DEADLINE if deadline is None else deadline)
    if s.is_escalation_enabled:
        stage.escalate_at = ctx.now + (s.duration_before_escalation or timedelta(0))
    request.current_stage = stage.stage_index


def _start(
    ctx: Ctx, request: AssignmentRequest, stage: ApprovalStage, count: int, package_name: str
) -> None:
    _open(ctx, request, stage)
    _name_approvers(ctx, request, stage, count, package_name)


def _name_approvers(
    ctx: Ctx, request: AssignmentRequest, stage: ApprovalStage, count: int, package_name: str
) -> None:
    """Record the open stage's approvers (and escalation approvers) with why each was named
    (``authz.relations.name_approvers``), audit, and notify."""
    s = stage_of(stage)
    session = ctx.session
    # Approvers are found in the directory, which the pending lifecycle rows (the stage, the
    # request) do not touch: they wait for the flush below, with the approvers.
    with session.no_autoflush:
        primary = relations.name_approvers(
            session, request.target_id, s.primary_approvers, s.fallback_primary_approvers
        )
        escalation = (
            relations.name_approvers(
                session,
                request.target_id,
                s.escalation_approvers,
                s.fallback_escalation_approvers,
            )
            if s.is_escalation_enabled
            else []
        )
    for tier, found in ((ApproverTier.PRIMARY, primary), (ApproverTier.ESCALATION, escalation)):
        for principal_id, (principal_type, why) in _by_principal(found).items():
            session.add(
                StageApprover(
                    stage_id=stage.id,
                    principal_id=principal_id,
                    principal_type=principal_type,
                    tier=tier,
                    named_as=relations.named_as_codes(why),
                )
            )
    # One flush for the stage, its approvers and the request. The models declare no
    # relationship(), so the unit of work orders these INSERTs by mapper name (ApprovalStage
    # before StageApprover); every submit in the suite runs with foreign keys enforced, so a
    # rename that broke the order would fail there at once.
    session.flush()
    about(
        ctx,
        Activity.ADD_APPROVER,
        request,
        "Add",
        name=package_name,
        category="UserManagement",
        details={
            "stage": stage.stage_index + 1,
            "approvers": sorted(n.principal_id for n in primary),
            "escalationApprovers": sorted(n.principal_id for n in escalation),
        },
    )
    notices.approval_needed(
        ctx, request, stage, count, package_name, [n.principal_id for n in primary]
    )


def _by_principal(
    found: list[Named],
) -> dict[str, tuple[str, list[relations.NamedAs]]]:
    """One row per principal: its type (the last one found, as before) and every reason."""
    rows: dict[str, tuple[str, list[relations.NamedAs]]] = {}
    for n in found:
        whys = rows[n.principal_id][1] if n.principal_id in rows else []
        rows[n.principal_id] = (n.principal_type, [*whys, n.why])
    return rows


def decide(
    ctx: Ctx,
    request: AssignmentRequest,
    stage: ApprovalStage,
    *,
    result: str,
    justification: str | None,
    package_name: str,
) -> str:
    """Record one approver's decision on the open stage; returns what became of the request:
    "next stage", "approved" or "denied"."""
    verdict = {"approve": ReviewResult.APPROVE, "deny": ReviewResult.DENY}.get(
        result.strip().lower()
    )
    if verdict is None:
        raise Invalid("reviewResult must be Approve or Deny", target="reviewResult")
    justification = validation.justification(justification)
    if not relations.may_decide(ctx.session, ctx.actor, request, stage):
        if relations.is_party(ctx.actor, request):
            raise Forbidden("nobody can approve or deny their own request")
        raise Forbidden("you are not an approver of this stage")
    if stage_of(stage).is_approver_justification_required and justification is None:
        raise Invalid(
            "this stage requires a justification from the approver", target="justification"
        )
    # The request row first, then the stage: the order every transition takes (a cancel does
    # the same), so that racing transitions queue instead of deadlocking.
    try:
        _claim_request(ctx, request)
    except Conflict:
        ctx.session.refresh(stage)
        if stage.status == StageStatus.COMPLETED:
            raise Conflict(
                "another approver has already decided this stage", code="StageAlreadyDecided"
            ) from None
        raise
    decision = {
        "status": StageStatus.COMPLETED,
        "review_result": verdict,
        "reviewed_by": ctx.actor.user_id,
        "reviewed_at": ctx.now,
        "justification": justification,
    }
    claimed = affected(ctx.session.execute(_DECIDE_STAGE, {"stage": stage.id, **decision}))
    if claimed != 1:
        raise Conflict(
            "another approver has already decided this stage", code="StageAlreadyDecided"
        )
    for key, value in decision.items():  # what the row now holds, without reading it back
        set_committed_value(stage, key, value)
    crash_point("stage.after_decision")
    detail = {"stage": stage.stage_index + 1, "justification": stage.justification}
    if verdict == ReviewResult.DENY:
        _close(ctx, request, RequestState.DENIED, "Denied")
        about(
            ctx,
            Activity.DENY_REQUEST,
            request,
            "Update",
            name=package_name,
            details=detail,
        )
        notices.denied(ctx, request, stage, package_name)
        return "denied"
    about(
        ctx,
        Activity.APPROVE_REQUEST,
        request,
        "Update",
        name=package_name,
        details=detail,
    )
    stages = stages_of(ctx, request.id)
    following = [s for s in stages if s.stage_index > stage.stage_index]
    if following:
        notices.stage_approved(ctx, request, stage, package_name)
        _start(ctx, request, following[0], len(stages), package_name)
        return "next stage"
    notices.request_approved(ctx, request, stage, package_name)
    return "approved"


def stages_of(ctx: Ctx, request_id: str) -> list[ApprovalStage]:
    """The request's stages, in order."""
    return list(ctx.session.execute(_STAGES, {"request": request_id}).scalars())


_STAGES = (
    select(ApprovalStage)
    .where(ApprovalStage.request_id == bindparam("request"))
    .order_by(ApprovalStage.stage_index)
)


_DECIDE_STAGE = (
    update(ApprovalStage)
    .where(ApprovalStage.id == bindparam("stage"), ApprovalStage.status == StageStatus.IN_PROGRESS)
    .execution_options(synchronize_session=False)
)


def _claim_request(ctx: Ctx, request: AssignmentRequest) -> None:
    """Bump the request's version while it is still pending: a concurrent cancel (or a timer)
    that got there first makes this decision fail instead of both taking effect."""
    claimed = affected(
        ctx.session.execute(_CLAIM, {"request": request.id, "seen": request.version})
    )
    if claimed != 1:
        raise Conflict("the request is no longer pending approval", code="RequestNotPending")
    ctx.session.refresh(request)


_CLAIM = (
    update(AssignmentRequest)
    .where(
        AssignmentRequest.id == bindparam("request"),
        AssignmentRequest.state == RequestState.PENDING_APPROVAL,
        AssignmentRequest.version == bindparam("seen"),
    )
    .values(version=AssignmentRequest.version + 1)
    .execution_options(synchronize_session=False)
)


def _close(ctx: Ctx, request: AssignmentRequest, state: RequestState, status: str) -> None:
    request.state, request.status = state, status
    request.completed_at = ctx.now
    request.open_key = None
    request.current_stage = None


def escalate(ctx: Ctx, request: AssignmentRequest, stage: ApprovalStage, package_name: str) -> None:
    stage.escalated = True
    escalation = [
        pid
        for (pid,) in ctx.session.execute(
            select(StageApprover.principal_id).where(
                StageApprover.stage_id == stage.id, StageApprover.tier == ApproverTier.ESCALATION
            )
        )
    ]
    about(
        ctx,
        Activity.FORWARD_APPROVAL,
        request,
        "Update",
        name=package_name,
        category="UserManagement",
        details={"stage": stage.stage_index + 1, "approvers": sorted(escalation)},
    )
    count = ctx.session.execute(
        select(ApprovalStage.id).where(ApprovalStage.request_id == request.id)
    ).all()
    notices.approval_needed(
        ctx, request, stage, len(count), package_name, escalation, escalated=True
    )


def time_out(ctx: Ctx, request: AssignmentRequest, stage: ApprovalStage, package_name: str) -> None:
    """Nobody decided before the deadline: the request is denied (the requestor resubmits)."""
    try:
        _claim_request(ctx, request)
    except Conflict:
        return  # decided or cancelled meanwhile
    claimed = affected(
        ctx.session.execute(
            update(ApprovalStage)
            .where(ApprovalStage.id == stage.id, ApprovalStage.status == StageStatus.IN_PROGRESS)
            .values(
                status=StageStatus.COMPLETED,
                review_result=ReviewResult.TIMED_OUT,
                reviewed_at=ctx.now,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if claimed != 1:
        raise Conflict("the stage was decided meanwhile", code="StageAlreadyDecided")
    _close(ctx, request, RequestState.DENIED, "TimedOut")
    about(
        ctx,
        Activity.REQUEST_TIMED_OUT,
        request,
        "Update",
        name=package_name,
        details={"stage": stage.stage_index + 1},
    )
    notices.timed_out(ctx, request, stage, package_name)


def approvers_of(ctx: Ctx, stage_ids: Iterable[str]) -> dict[str, list[tuple[str, str, str]]]:
    found: dict[str, list[tuple[str, str, str]]] = {}
    for stage_id, pid, ptype, tier in ctx.session.execute(
        select(
            StageApprover.stage_id,
            StageApprover.principal_id,
            StageApprover.principal_type,
            StageApprover.tier,
        ).where(StageApprover.stage_id.in_(set(stage_ids)))
    ):
        found.setdefault(stage_id, []).append((pid, ptype, tier))
    return found
