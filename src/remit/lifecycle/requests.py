"""Assignment requests (spec §6): submission with its validation pipeline, cancel, reprocess.

Every change to who holds a package goes through here, for users, administrators and the
system alike. Validation runs in the order of spec §11.3: catalog enabled → external check →
policy enabled → target in the policy's scope → incompatible packages and groups → questions and
justification → schedule → no duplicate open request or active assignment. Direct assignment
never bypasses the policy's approval (§1.2).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from remit import validation
from remit.authz import relations
from remit.authz.actor import transitive_group_ids
from remit.authz.decide import authorize, can
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.db import add_unique, affected
from remit.errors import Conflict, Forbidden, Invalid, NotFound
from remit.external import orgs
from remit.faults import crash_point
from remit.lifecycle import answers as answer_rules
from remit.lifecycle import approvals, assignments, delivery, notices, queries
from remit.lifecycle.assignments import active_key
from remit.lifecycle.events import about
from remit.lifecycle.kinds import ADD_TYPES, REMOVE_TYPES, SYSTEM_TYPES
from remit.lifecycle.locks import lock_subjects
from remit.lifecycle.schedule import (
    asked_end,
    ends_at,
    extension_end,
    frozen_schedule,
    iso,
    parse_instant,
)
from remit.models.catalogs import Catalog
from remit.models.directory import User
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy
from remit.models.policy_settings import RequestorSettings, Schedule, schedule_of, settings_of
from remit.models.vocabulary import (
    OPEN_REQUEST_STATES,
    Activity,
    CatalogState,
    GrantState,
    OrganizationState,
    RequestState,
    RequestType,
    ReviewResult,
    StageStatus,
)
from remit.policies import scope

REQUEST_TYPES = {t.lower(): t for t in RequestType}
REPROCESS_WINDOW = timedelta(days=7)  # spec §6.7 / §9
S = RequestState
REQUESTOR_CANCELLABLE = (S.SUBMITTED, S.PENDING_APPROVAL, S.SCHEDULED)
ADMIN_CANCELLABLE = (*REQUESTOR_CANCELLABLE, S.DELIVERING, S.DELIVERY_FAILED, S.PARTIALLY_DELIVERED)
REPROCESSABLE = (S.DELIVERY_FAILED, S.PARTIALLY_DELIVERED)
# The audit activity of each kind of request when it is made.
SUBMITTED = {
    RequestType.USER_ADD: Activity.USER_REQUESTS_ASSIGNMENT,
    RequestType.ADMIN_ADD: Activity.ADMIN_ASSIGNS,
    RequestType.SYSTEM_ADD: Activity.SYSTEM_REQUESTS_ASSIGNMENT,
    RequestType.USER_UPDATE: Activity.USER_REQUESTS_EXTENSION,
    RequestType.USER_EXTEND: Activity.USER_REQUESTS_EXTENSION,
    RequestType.ADMIN_UPDATE: Activity.ADMIN_UPDATES_ASSIGNMENT,
    RequestType.SYSTEM_UPDATE: Activity.ADMIN_UPDATES_ASSIGNMENT,
    RequestType.USER_REMOVE: Activity.USER_REQUESTS_REMOVAL,
    RequestType.ADMIN_REMOVE: Activity.ADMIN_REMOVES_ASSIGNMENT,
    RequestType.SYSTEM_REMOVE: Activity.SYSTEM_REMOVES_ASSIGNMENT,
}
REMOVED_BY = {RequestType.USER_REMOVE: "removedByUser", RequestType.ADMIN_REMOVE: "removedByAdmin"}


def request_type(value: Any) -> RequestType:
    found = REQUEST_TYPES.get(str(value or "").strip().lower())
    if found is None:
        raise Invalid(f"unknown requestType {value!r}", target="requestType")
    if found in (RequestType.ON_BEHALF_ADD, RequestType.NOT_SPECIFIED):
        raise Invalid(f"requestType {found} is not supported", target="requestType")
    return found


def submit(
    ctx: Ctx,
    *,
    kind: str,
    package_id: str | None = None,
    policy_id: str | None = None,
    target_id: str | None = None,
    target_email: str | None = None,
    assignment_id: str | None = None,
    justification: str | None = None,
    answers: list[Any] | None = None,
    schedule: dict[str, Any] | None = None,
) -> AssignmentRequest:
    """Create a request of any type; raises a domain error (and changes nothing) if invalid."""
    rtype = request_type(kind)
    if rtype in SYSTEM_TYPES and not ctx.actor.is_system:
        raise Invalid("system requests are made by remit itself", target="requestType")
    justification = validation.justification(justification)
    if rtype in ADD_TYPES:
        if not package_id:
            raise Invalid("assignment.accessPackageId is required", target="accessPackageId")
        return _add(
            ctx,
            rtype,
            package_id=package_id,
            policy_id=policy_id,
            target_id=target_id,
            target_email=target_email,
            justification=justification,
            answers=answers or [],
            schedule=schedule,
        )
    if not assignment_id:
        raise Invalid("assignment.id is required for this request type", target="assignment.id")
    if rtype in REMOVE_TYPES:
        return _remove(ctx, rtype, assignment_id, justification)
    return _update(ctx, rtype, assignment_id, justification, answers, schedule)


# ------------------------------------------------------------------------------------ adds


def _add(
    ctx: Ctx,
    kind: RequestType,
    *,
    package_id: str,
    policy_id: str | None,
    target_id: str | None,
    target_email: str | None,
    justification: str | None,
    answers: list[Any],
    schedule: dict[str, Any] | None,
) -> AssignmentRequest:
    session, actor = ctx.session, ctx.actor
    package = session.get(AccessPackage, package_id) if validation.usable_id(package_id) else None
    if package is None:
        raise NotFound(f"access package {package_id} was not found")
    sees_package = can(actor, Task.PACKAGE_READ, package.catalog_id)
    admin = kind in (RequestType.ADMIN_ADD, RequestType.SYSTEM_ADD)
    if admin:
        if not sees_package:
            raise NotFound(f"access package {package_id} was not found")
        authorize(actor, Task.ASSIGNMENT_DIRECT_ADD, package.catalog_id)
    target = _add_target(ctx, kind, target_id, target_email)
    lock_subjects(ctx, [target.id if target is not None else target_email])
    catalog = session.get(Catalog, package.catalog_id)
    if catalog is None or catalog.state != CatalogState.PUBLISHED:
        raise Invalid("the catalog of this access package is disabled", code="CatalogDisabled")
    external = target.user_type == "Guest" if target is not None else True
    if external and not catalog.is_externally_visible:
        raise Invalid(
            "the catalog of this access package is not enabled for external users",
            code="CatalogNotExternallyVisible",
        )
    policy = _choose_policy(ctx, kind, package, policy_id, target, target_email, sees_package)
    _hold(ctx, policy)
    _check_incompatible(ctx, package, target)
    settings = settings_of(policy)
    needs_reason = settings.approval.is_requestor_justification_required
    if kind == RequestType.USER_ADD and needs_reason and justification is None:
        raise Invalid(
            "this policy requires a justification",
            target="justification",
            code="JustificationRequired",
        )
    stored_answers = answer_rules.validate(settings.questions, answers)
    custom = settings.requestor.allow_custom_assignment_schedule or admin
    frozen = frozen_schedule(settings.expiration, schedule, allow_custom=custom, now=ctx.now)
    who = target.id if target is not None else (target_email or "").lower()
    if target is not None:
        _no_active_assignment(ctx, target.id, package.id)
    request = _new(
        ctx,
        kind,
        RequestState.SUBMITTED,
        package,
        policy_id=policy.id,
        target_id=target.id if target is not None else None,
        target_email=None if target is not None else (target_email or "").lower(),
        justification=justification,
        answers=stored_answers,
        schedule=frozen,
        open_key=_open_add_key(who, package.id),
    )
    _insert(ctx, request)
    crash_point("request.after_insert")
    about(
        ctx,
        SUBMITTED[kind],
        request,
        "Add",
        name=package.display_name,
        after={
            "requestType": kind,
            "policyId": policy.id,
            "targetId": request.target_id,
            "targetEmail": request.target_email,
            "schedule": frozen,
            "justification": justification,
        },
    )
    notices.submitted(ctx, request)
    crash_point("request.before_commit")
    if settings.approval.is_approval_required_for_add and settings.approval.stages:
        approvals.begin(ctx, request, settings.approval.stages, package.display_name)
        return request
    _auto_approve(ctx, request, package.display_name)
    assignments.activate(ctx, request, package)
    return request


def _new(
    ctx: Ctx,
    kind: RequestType,
    state: RequestState,
    on: AccessPackage | Assignment,
    **columns: Any,
) -> AssignmentRequest:
    """A new request by the actor (not yet added) for a package (an add; ``columns`` name the
    policy and the target) or about an assignment (its policy, its target)."""
    if isinstance(on, Assignment):
        columns |= {"access_package_id": on.access_package_id, "policy_id": on.policy_id}
        columns |= {"assignment_id": on.id, "target_id": on.target_id}
    else:
        columns["access_package_id"] = on.id
    columns.setdefault("requestor_id", None if ctx.actor.is_system else ctx.actor.user_id)
    columns.setdefault("answers", [])
    columns.setdefault("schedule", {})
    return AssignmentRequest(
        request_type=kind,
        state=state,
        status="Accepted",
        catalog_id=on.catalog_id,
        created_at=ctx.now,
        **columns,
    )


def _open_add_key(who: str, package_id: str) -> str:
    """The unique key of an open add request: a user id, or a digest of an email address (an
    address may be 320 characters long; the key column holds 80)."""
    if "@" in who:
        who = "mail-" + hashlib.sha256(who.encode()).hexdigest()[:31]
    return f"add:{who}:{package_id}"


def _hold(ctx: Ctx, policy: AssignmentPolicy) -> None:
    """Share-lock the policy until commit, so that a concurrent delete (which takes it FOR
    UPDATE) waits for this request and then sees it, instead of orphaning it. SQLite's one
    writer already serialises the two."""
    if ctx.session.get_bind().dialect.name == "postgresql":
        ctx.session.execute(
            select(AssignmentPolicy.id)
            .where(AssignmentPolicy.id == policy.id)
            .with_for_update(read=True)
        )


def _auto_approve(ctx: Ctx, request: AssignmentRequest, package_name: str) -> None:
    about(ctx, Activity.AUTO_APPROVE_REQUEST, request, "Update", name=package_name)


def _insert(ctx: Ctx, request: AssignmentRequest) -> None:
    add_unique(
        ctx.session,
        request,
        Conflict(
            "there is already an open request for this target and access package",
            code="ExistingOpenRequest",
        ),
    )


def _add_target(
    ctx: Ctx, kind: RequestType, target_id: str | None, target_email: str | None
) -> User | None:
    session, actor = ctx.session, ctx.actor
    if kind == RequestType.USER_ADD:
        wanted = target_id or actor.user_id
        target = session.get(User, wanted) if validation.usable_id(wanted) else None
        if target is None or not target.account_enabled:
            raise Invalid("the target user does not exist or cannot sign in", target="targetId")
        return target
    if target_id:
        target = session.get(User, target_id) if validation.usable_id(target_id) else None
        if target is None:
            raise Invalid(f"user {target_id} does not exist", target="targetId")
        return target
    if not target_email:
        raise Invalid(
            "assignment.targetId or assignment.target.email is required", target="targetId"
        )
    address = validation.no_controls(target_email, "target.email").strip().lower()
    if "@" not in address or address.startswith("@") or address.endswith("@") or " " in address:
        raise Invalid(f"{target_email!r} is not an email address", target="target.email")
    existing = session.execute(
        select(User).where(or_(User.upn_key == address, User.mail.ilike(address)))
    ).scalar_one_or_none()
    if existing is not None:
        if not existing.account_enabled:
            raise Invalid(
                "that user is blocked from signing in", target="target.email", code="TargetBlocked"
            )
        return existing
    return None


def _choose_policy(
    ctx: Ctx,
    kind: RequestType,
    package: AccessPackage,
    policy_id: str | None,
    target: User | None,
    target_email: str | None,
    sees_package: bool,
) -> AssignmentPolicy:
    if kind == RequestType.USER_ADD and target is not None:
        return _user_policy(ctx, package, policy_id, target, sees_package)
    if not policy_id:
        raise Invalid("assignment.assignmentPolicyId is required", target="assignmentPolicyId")
    policy = _policy_of(ctx, package, policy_id)
    if not settings_of(policy).requestor.accept_requests:
        raise Invalid("this policy is disabled", target="assignmentPolicyId", code="PolicyDisabled")
    if policy.auto_assignment_key is not None and not ctx.actor.is_system:
        raise Invalid(
            "an auto-assignment policy assigns by its rule only",
            target="assignmentPolicyId",
            code="AutoAssignmentPolicy",
        )
    if not _admin_scope_ok(ctx, policy, target, target_email):
        raise Invalid(
            "the target does not meet this policy's requirements",
            target="assignmentPolicyId",
            code="RequestorNotInPolicyScope",
        )
    return policy


def _user_policy(
    ctx: Ctx, package: AccessPackage, policy_id: str | None, target: User, sees_package: bool
) -> AssignmentPolicy:
    """The policy of a request by the target themself, or by an on-behalf requestor (spec §5.3).

    Someone who may neither see the package nor request it learns nothing: NotFound.
    """
    session, actor = ctx.session, ctx.actor
    groups = transitive_group_ids(session, target.id, now=ctx.now)
    if target.id == actor.user_id:
        candidates = scope.requestable_policies(session, package.id, target, groups)
    else:
        # On behalf of someone else: a policy that takes on-behalf requests must name the actor
        # among its on-behalf requestors (their manager, by name, or through a group).
        named = [
            p
            for p in _policies(ctx, package.id)
            if (requestor := settings_of(p).requestor).enable_on_behalf_requestors_to_add_access
            and requestor.accept_requests
            and scope.names_on_behalf_requestor(p, actor, target)
        ]
        if not named and not relations.is_manager(session, actor.user_id, target):
            raise Forbidden(
                "you can request access only for yourself, or on behalf of those a policy lets "
                "you request for (such as your direct reports)"
            )
        candidates = [p for p in named if scope.is_allowed_requestor(session, p, target, groups)]
    if not candidates and not sees_package:
        raise NotFound(f"access package {package.id} was not found")
    if policy_id:
        chosen = next((p for p in candidates if p.id == policy_id), None)
        if chosen is None:
            _policy_of(ctx, package, policy_id)  # a policy of another package: say so first
            raise Invalid(
                "you don't meet the requirements of this policy",
                target="assignmentPolicyId",
                code="RequestorNotInPolicyScope",
            )
        return chosen
    if not candidates:
        raise Invalid(
            "no policy of this access package lets you request it",
            code="RequestorNotInPolicyScope",
        )
    if len(candidates) > 1:
        raise Invalid(
            "several policies apply; choose one with assignment.assignmentPolicyId: "
            + ", ".join(p.id for p in candidates),
            target="assignmentPolicyId",
            code="PolicySelectionRequired",
        )
    return candidates[0]


def _admin_scope_ok(
    ctx: Ctx, policy: AssignmentPolicy, target: User | None, email: str | None
) -> bool:
    scope_name = policy.allowed_target_scope
    if scope_name == "notSpecified" or ctx.actor.is_system:
        return True
    if target is not None:
        groups = transitive_group_ids(ctx.session, target.id, now=ctx.now)
        return scope.is_allowed_requestor(ctx.session, policy, target, groups)
    org = orgs.match_organization(ctx.session, email or "")
    if scope_name == "allExternalUsers":
        return True
    if scope_name == "allConfiguredConnectedOrganizationUsers":
        return org is not None and org.state == OrganizationState.CONFIGURED
    if scope_name == "specificConnectedOrganizationUsers":
        return org is not None and org.id in scope.named_organizations(policy)
    return False


def _policies(ctx: Ctx, package_id: str) -> list[AssignmentPolicy]:
    return list(
        ctx.session.execute(
            select(AssignmentPolicy)
            .where(AssignmentPolicy.access_package_id == package_id)
            .order_by(AssignmentPolicy.created_at, AssignmentPolicy.id)
        ).scalars()
    )


def _policy_of(ctx: Ctx, package: AccessPackage, policy_id: str) -> AssignmentPolicy:
    policy = (
        ctx.session.get(AssignmentPolicy, policy_id) if validation.usable_id(policy_id) else None
    )
    if policy is None or policy.access_package_id != package.id:
        raise Invalid(
            f"policy {policy_id} is not a policy of access package {package.id}",
            target="assignmentPolicyId",
        )
    return policy


def _check_incompatible(ctx: Ctx, package: AccessPackage, target: User | None) -> None:
    """Spec §4.3: holding an incompatible package, or membership of an incompatible group,
    blocks requests and direct assignments alike."""
    if target is None:
        return
    problem = assignments.conflict(ctx, package.id, target.id)
    if problem is not None:
        code = "IncompatibleGroup" if "group" in problem else "IncompatibleAccessPackage"
        raise Invalid(problem, code=code)


def _no_active_assignment(ctx: Ctx, target_id: str, package_id: str) -> None:
    """Refuse a second assignment to the package. One whose end has passed but which the sweep
    has not reached yet is ended here first (as the sweep would), so that it never blocks."""
    current = ctx.session.execute(
        _ACTIVE_BY_KEY, {"key": active_key(target_id, package_id)}
    ).scalar_one_or_none()
    if current is None:
        return
    if assignments.lapsed(current, ctx.now):
        assignments.end(ctx, current, reason="expired", request=system_remove_record(ctx, current))
        return
    raise assignments.already_assigned()


_ACTIVE_BY_KEY = select(Assignment).where(Assignment.active_key == bindparam("key"))


# --------------------------------------------------------------------------- removals


def _active_assignment(ctx: Ctx, assignment_id: str) -> Assignment:
    assignment = (
        ctx.session.get(Assignment, assignment_id) if validation.usable_id(assignment_id) else None
    )
    visible = assignment is not None and (
        relations.holds(ctx.actor, assignment)
        or can(ctx.actor, Task.ASSIGNMENT_READ, assignment.catalog_id)
        or relations.manages(ctx.session, ctx.actor, assignment.target_id)
    )
    if assignment is None or not visible:
        raise NotFound(f"assignment {assignment_id} was not found")
    if assignment.active_key is None:
        raise Conflict("the assignment has already ended", code="AssignmentEnded")
    return assignment


def _remove(
    ctx: Ctx, kind: RequestType, assignment_id: str, justification: str | None
) -> AssignmentRequest:
    assignment = _active_assignment(ctx, assignment_id)
    lock_subjects(ctx, [assignment.target_id])
    policy = (
        ctx.session.get(AssignmentPolicy, assignment.policy_id) if assignment.policy_id else None
    )
    settings = settings_of(policy).requestor if policy else RequestorSettings()
    if kind == RequestType.ADMIN_REMOVE:
        authorize(ctx.actor, Task.ASSIGNMENT_DIRECT_REMOVE, assignment.catalog_id)
    elif kind == RequestType.USER_REMOVE:
        own = relations.holds(ctx.actor, assignment)
        if own and not settings.enable_targets_to_self_remove_access:
            raise Forbidden("this policy does not let you remove your own access")
        if not own and not (
            relations.manages(ctx.session, ctx.actor, assignment.target_id)
            and settings.enable_on_behalf_requestors_to_remove_access
        ):
            raise Forbidden("you may not remove this assignment")
    request = _new(ctx, kind, RequestState.DELIVERING, assignment, justification=justification)
    ctx.session.add(request)
    ctx.session.flush()
    about(
        ctx,
        SUBMITTED[kind],
        request,
        "Delete",
        after={"requestType": kind, "assignmentId": assignment.id, "justification": justification},
    )
    reason = REMOVED_BY.get(kind, "removedBySystem")
    assignments.end(ctx, assignment, reason=reason, request=request)
    return request


# ---------------------------------------------------------------------------- updates


def _update(
    ctx: Ctx,
    kind: RequestType,
    assignment_id: str,
    justification: str | None,
    answers: list[Any] | None,
    schedule: dict[str, Any] | None,
) -> AssignmentRequest:
    assignment = _active_assignment(ctx, assignment_id)
    lock_subjects(ctx, [assignment.target_id])
    if assignments.lapsed(assignment, ctx.now):
        raise Conflict("the assignment has expired", code="AssignmentEnded")
    policy = (
        ctx.session.get(AssignmentPolicy, assignment.policy_id) if assignment.policy_id else None
    )
    if policy is None:
        raise Invalid("the assignment's policy no longer exists; it cannot be extended")
    admin = kind in (RequestType.ADMIN_UPDATE, RequestType.SYSTEM_UPDATE)
    settings = settings_of(policy)
    if admin:
        authorize(ctx.actor, Task.ASSIGNMENT_DIRECT_ADD, assignment.catalog_id)
    else:
        if not relations.holds(ctx.actor, assignment):
            raise Forbidden("you can extend only your own access")
        if not settings.requestor.enable_targets_to_self_update_access:
            raise Forbidden("this policy does not allow extensions")
        target = ctx.session.get(User, assignment.target_id)
        groups = transitive_group_ids(ctx.session, assignment.target_id, now=ctx.now)
        if target is None or not scope.is_allowed_requestor(ctx.session, policy, target, groups):
            raise Invalid(
                "you are no longer in this policy's scope, so the assignment cannot be extended",
                code="RequestorNotInPolicyScope",
            )
        if settings.approval.is_requestor_justification_required and not justification:
            raise Invalid(
                "this policy requires a justification",
                target="justification",
                code="JustificationRequired",
            )
    new_end = _requested_end(policy, assignment, schedule, admin=admin, now=ctx.now)
    stored_answers = (
        answer_rules.validate(settings.questions, answers) if answers is not None else []
    )
    frozen = Schedule(start_date_time=iso(assignment.start_at), expiration=ends_at(new_end))
    request = _new(
        ctx,
        kind,
        RequestState.SUBMITTED,
        assignment,
        justification=justification,
        answers=stored_answers,
        schedule=frozen.stored(),
        open_key=f"update:{assignment.id}",
    )
    _insert(ctx, request)
    package = ctx.session.get(AccessPackage, assignment.access_package_id)
    name = package.display_name if package else assignment.access_package_id
    about(
        ctx,
        SUBMITTED[kind],
        request,
        "Update",
        name=name,
        after={"requestType": kind, "assignmentId": assignment.id, "newEnd": iso(new_end)},
    )
    stages = settings.approval.stages
    if not admin and settings.approval.is_approval_required_for_update and stages:
        approvals.begin(ctx, request, stages, name)
        return request
    _auto_approve(ctx, request, name)
    if stored_answers:
        request.answers = stored_answers
    assignments.extend(ctx, assignment, new_end, request)
    return request


def _requested_end(
    policy: AssignmentPolicy,
    assignment: Assignment,
    schedule: dict[str, Any] | None,
    *,
    admin: bool,
    now: Any,
) -> Any:
    settings = settings_of(policy)
    default = extension_end(settings.expiration, assignment.expires_at, now)
    if not schedule:
        return default
    if not admin and not settings.requestor.allow_custom_assignment_schedule:
        raise Invalid(
            "this policy does not let requestors choose their own schedule", target="schedule"
        )
    raw = asked_end(schedule)[1].end_date_time
    if not raw:
        return default
    wanted = parse_instant(raw, "schedule.expiration.endDateTime")
    if wanted <= now:
        raise Invalid("the requested end is in the past", target="schedule")
    return min(wanted, default) if default is not None else wanted


# ------------------------------------------------------------- decisions after submission


def finish_approved(ctx: Ctx, request: AssignmentRequest) -> None:
    """The last stage approved: an add activates, an extension applies."""
    package = ctx.session.get(AccessPackage, request.access_package_id)
    if package is None:
        raise NotFound("the access package no longer exists")
    if request.request_type in ADD_TYPES:
        assignments.activate(ctx, request, package)
        return
    assignment = (
        ctx.session.get(Assignment, request.assignment_id) if request.assignment_id else None
    )
    if assignment is None or assignment.active_key is None:
        request.state, request.status = RequestState.DELIVERY_FAILED, "AssignmentEnded"
        request.completed_at, request.open_key = ctx.now, None
        return
    end = schedule_of(request).expiration.end_date_time
    assignments.extend(ctx, assignment, parse_instant(end, "endDateTime") if end else None, request)


def cancel(ctx: Ctx, request_id: str) -> AssignmentRequest:
    request = queries.request(ctx, request_id)
    lock_subjects(ctx, [request.target_id or request.target_email])
    admin = can(ctx.actor, Task.REQUEST_CANCEL, request.catalog_id)
    own = relations.is_party(ctx.actor, request)
    if not admin and not own:
        raise Forbidden("you may not cancel this request")
    allowed = ADMIN_CANCELLABLE if admin else REQUESTOR_CANCELLABLE
    if request.state not in allowed:
        raise Conflict(
            f"a request that is {request.state} cannot be cancelled", code="RequestNotCancellable"
        )
    claimed = affected(
        ctx.session.execute(
            update(AssignmentRequest)
            .where(
                AssignmentRequest.id == request.id,
                AssignmentRequest.version == request.version,
                AssignmentRequest.state.in_(allowed),
            )
            .values(
                state=RequestState.CANCELED,
                status="Canceled",
                completed_at=ctx.now,
                open_key=None,
                current_stage=None,
                version=AssignmentRequest.version + 1,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if claimed != 1:
        raise Conflict("the request changed while cancelling it; try again", code="RequestChanged")
    ctx.session.refresh(request)
    ctx.session.execute(
        update(ApprovalStage)
        .where(
            ApprovalStage.request_id == request.id, ApprovalStage.status != StageStatus.COMPLETED
        )
        .values(status=StageStatus.COMPLETED, review_result=ReviewResult.NOT_REVIEWED)
        .execution_options(synchronize_session=False)
    )
    about(ctx, Activity.CANCEL_REQUEST, request, "Update")
    if request.request_type in ADD_TYPES and request.assignment_id:
        assignment = ctx.session.get(Assignment, request.assignment_id)
        if assignment is not None and assignment.active_key is not None:
            assignments.end(ctx, assignment, reason="canceled", request=None)
    return request


def reprocess_request(ctx: Ctx, request_id: str) -> AssignmentRequest:
    request = queries.request(ctx, request_id)
    lock_subjects(ctx, [request.target_id])
    authorize(ctx.actor, Task.REQUEST_REPROCESS, request.catalog_id)
    if request.state not in REPROCESSABLE:
        raise Invalid(
            "only requests whose delivery failed or was partial can be reprocessed",
            code="RequestNotReprocessable",
        )
    if request.completed_at is None or ctx.now - request.completed_at > REPROCESS_WINDOW:
        raise Invalid(
            "requests completed more than 7 days ago cannot be reprocessed",
            code="RequestNotReprocessable",
        )
    assignment = (
        ctx.session.get(Assignment, request.assignment_id) if request.assignment_id else None
    )
    if (
        assignment is None
        or assignment.active_key is None
        or assignments.lapsed(assignment, ctx.now)
    ):
        raise Invalid("the request's assignment has ended", code="RequestNotReprocessable")
    request.state, request.status = RequestState.DELIVERING, "Delivering"
    request.completed_at = None
    retry_roles(ctx, assignment, failed_only=True)
    about(ctx, Activity.REPROCESS_REQUEST, request, "Update")
    return request


def retry_roles(ctx: Ctx, assignment: Assignment, *, failed_only: bool) -> int:
    """Apply the assignment's resource roles again (all of them, or the failed ones)."""
    roles = delivery.package_roles(ctx.session, [assignment.access_package_id])[
        assignment.access_package_id
    ]
    delivery.recompute(ctx, assignment.target_id, roles)
    grants = delivery.grant_rows(ctx.session, assignment.target_id, roles)
    count = 0
    for grant in grants.values():
        if not grant.desired or (failed_only and grant.applied_state != GrantState.FAILED):
            continue
        grant.generation += 1
        grant.attempts = 0
        grant.last_error = None
        grant.updated_at = ctx.now
        count += 1
    if count:
        delivery.schedule_sync(ctx, assignment.target_id)
        assignments.refresh_states(ctx, assignment.target_id)
    return count


def delete_record(ctx: Ctx, request_id: str) -> None:
    """Spec §6.8: remove the record of a completed request; its assignment stays."""
    request = queries.request(ctx, request_id)
    authorize(ctx.actor, Task.REQUEST_RECORD_DELETE)
    if request.completed_at is None or request.state in OPEN_REQUEST_STATES:
        raise Conflict("only completed requests can be deleted", code="RequestNotCompleted")
    about(
        ctx,
        Activity.DELETE_REQUEST,
        request,
        "Delete",
        before={"requestType": request.request_type, "state": request.state},
    )
    ctx.session.delete(request)


def system_remove_record(ctx: Ctx, assignment: Assignment) -> AssignmentRequest:
    """The systemRemove request that records an expiry or a loss of auto-assignment scope."""
    request = _new(
        ctx, RequestType.SYSTEM_REMOVE, RequestState.DELIVERING, assignment, requestor_id=None
    )
    ctx.session.add(request)
    ctx.session.flush()
    return request
