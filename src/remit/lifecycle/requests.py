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
from remit.lifecycle.assignments import ADD_TYPES, REMOVE_TYPES, active_key
from remit.lifecycle.locks import lock_subjects
from remit.lifecycle.schedule import extension_end, frozen_schedule, iso, parse_instant
from remit.models.catalogs import Catalog
from remit.models.directory import User
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy
from remit.policies import scope

TARGET = "AccessPackageAssignmentRequest"
REQUEST_TYPES = {
    t.lower(): t
    for t in (
        "userAdd",
        "userUpdate",
        "userExtend",
        "userRemove",
        "adminAdd",
        "adminUpdate",
        "adminRemove",
        "systemAdd",
        "systemUpdate",
        "systemRemove",
        "onBehalfAdd",
        "notSpecified",
    )
}
REPROCESS_WINDOW = timedelta(days=7)  # spec §6.7 / §9
REQUESTOR_CANCELLABLE = ("submitted", "pendingApproval", "scheduled")
ADMIN_CANCELLABLE = (
    "submitted",
    "pendingApproval",
    "scheduled",
    "delivering",
    "deliveryFailed",
    "partiallyDelivered",
)


def request_type(value: Any) -> str:
    found = REQUEST_TYPES.get(str(value or "").strip().lower())
    if found is None:
        raise Invalid(f"unknown requestType {value!r}", target="requestType")
    if found in ("onBehalfAdd", "notSpecified"):
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
    kind = request_type(kind)
    if kind.startswith("system") and not ctx.actor.is_system:
        raise Invalid("system requests are made by remit itself", target="requestType")
    justification = validation.justification(justification)
    if kind in ADD_TYPES:
        if not package_id:
            raise Invalid("assignment.accessPackageId is required", target="accessPackageId")
        return _add(
            ctx,
            kind,
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
    if kind in REMOVE_TYPES:
        return _remove(ctx, kind, assignment_id, justification)
    return _update(ctx, kind, assignment_id, justification, answers, schedule)


# ------------------------------------------------------------------------------------ adds


def _add(
    ctx: Ctx,
    kind: str,
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
    admin = kind in ("adminAdd", "systemAdd")
    if admin:
        if not sees_package:
            raise NotFound(f"access package {package_id} was not found")
        authorize(actor, Task.ASSIGNMENT_DIRECT_ADD, package.catalog_id)
    target = _add_target(ctx, kind, target_id, target_email)
    lock_subjects(ctx, [target.id if target is not None else target_email])
    catalog = session.get(Catalog, package.catalog_id)
    if catalog is None or catalog.state != "published":
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
    needs_reason = policy.request_approval_settings.get("isRequestorJustificationRequired")
    if kind == "userAdd" and needs_reason and justification is None:
        raise Invalid(
            "this policy requires a justification",
            target="justification",
            code="JustificationRequired",
        )
    stored_answers = answer_rules.validate(policy.questions, answers)
    custom = bool(policy.requestor_settings.get("allowCustomAssignmentSchedule")) or admin
    frozen = frozen_schedule(policy.expiration, schedule, allow_custom=custom, now=ctx.now)
    who = target.id if target is not None else (target_email or "").lower()
    if target is not None:
        _no_active_assignment(ctx, target.id, package.id)
    request = AssignmentRequest(
        request_type=kind,
        state="submitted",
        status="Accepted",
        access_package_id=package.id,
        catalog_id=package.catalog_id,
        policy_id=policy.id,
        target_id=target.id if target is not None else None,
        target_email=None if target is not None else (target_email or "").lower(),
        requestor_id=None if actor.is_system else actor.user_id,
        justification=justification,
        answers=stored_answers,
        schedule=frozen,
        created_at=ctx.now,
        open_key=_open_add_key(who, package.id),
    )
    _insert(ctx, request)
    crash_point("request.after_insert")
    ctx.audit(
        {
            "userAdd": "User requests access package assignment",
            "adminAdd": "Administrator directly assigns user to access package",
        }.get(kind, "System requests access package assignment"),
        operation_type="Add",
        target_type=TARGET,
        target_id=request.id,
        target_name=package.display_name,
        catalog_id=package.catalog_id,
        subject_id=request.target_id,
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
    settings = policy.request_approval_settings
    stages = list(settings.get("stages") or [])
    if settings.get("isApprovalRequiredForAdd") and stages:
        approvals.begin(ctx, request, stages, package.display_name)
        return request
    _auto_approve(ctx, request, package.display_name)
    assignments.activate(ctx, request, package)
    return request


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
    ctx.audit(
        "Auto approve access package assignment request",
        operation_type="Update",
        target_type=TARGET,
        target_id=request.id,
        target_name=package_name,
        catalog_id=request.catalog_id,
        subject_id=request.target_id,
    )


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
    ctx: Ctx, kind: str, target_id: str | None, target_email: str | None
) -> User | None:
    session, actor = ctx.session, ctx.actor
    if kind == "userAdd":
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
    kind: str,
    package: AccessPackage,
    policy_id: str | None,
    target: User | None,
    target_email: str | None,
    sees_package: bool,
) -> AssignmentPolicy:
    if kind == "userAdd" and target is not None:
        return _user_policy(ctx, package, policy_id, target, sees_package)
    if not policy_id:
        raise Invalid("assignment.assignmentPolicyId is required", target="assignmentPolicyId")
    policy = _policy_of(ctx, package, policy_id)
    if not policy.requestor_settings.get("acceptRequests", True):
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
            if p.requestor_settings.get("enableOnBehalfRequestorsToAddAccess")
            and p.requestor_settings.get("acceptRequests", True)
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
        return org is not None and org.state == "configured"
    if scope_name == "specificConnectedOrganizationUsers":
        named = {
            t.get("connectedOrganizationId")
            for t in policy.specific_allowed_targets
            if t.get("@odata.type") == "#microsoft.graph.connectedOrganizationMembers"
        }
        return org is not None and org.id in named
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
    ctx: Ctx, kind: str, assignment_id: str, justification: str | None
) -> AssignmentRequest:
    assignment = _active_assignment(ctx, assignment_id)
    lock_subjects(ctx, [assignment.target_id])
    policy = (
        ctx.session.get(AssignmentPolicy, assignment.policy_id) if assignment.policy_id else None
    )
    settings = policy.requestor_settings if policy else {}
    if kind == "adminRemove":
        authorize(ctx.actor, Task.ASSIGNMENT_DIRECT_REMOVE, assignment.catalog_id)
    elif kind == "userRemove":
        own = relations.holds(ctx.actor, assignment)
        if own and not settings.get("enableTargetsToSelfRemoveAccess"):
            raise Forbidden("this policy does not let you remove your own access")
        if not own and not (
            relations.manages(ctx.session, ctx.actor, assignment.target_id)
            and settings.get("enableOnBehalfRequestorsToRemoveAccess")
        ):
            raise Forbidden("you may not remove this assignment")
    request = AssignmentRequest(
        request_type=kind,
        state="delivering",
        status="Accepted",
        access_package_id=assignment.access_package_id,
        catalog_id=assignment.catalog_id,
        policy_id=assignment.policy_id,
        assignment_id=assignment.id,
        target_id=assignment.target_id,
        requestor_id=None if ctx.actor.is_system else ctx.actor.user_id,
        justification=justification,
        answers=[],
        schedule={},
        created_at=ctx.now,
    )
    ctx.session.add(request)
    ctx.session.flush()
    ctx.audit(
        {"userRemove": "User requests removal of access package assignment"}.get(
            kind, "Administrator removes access package assignment"
        )
        if kind != "systemRemove"
        else "System removes access package assignment",
        operation_type="Delete",
        target_type=TARGET,
        target_id=request.id,
        catalog_id=request.catalog_id,
        subject_id=request.target_id,
        after={"requestType": kind, "assignmentId": assignment.id, "justification": justification},
    )
    reason = {"userRemove": "removedByUser", "adminRemove": "removedByAdmin"}.get(
        kind, "removedBySystem"
    )
    assignments.end(ctx, assignment, reason=reason, request=request)
    return request


# ---------------------------------------------------------------------------- updates


def _update(
    ctx: Ctx,
    kind: str,
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
    admin = kind in ("adminUpdate", "systemUpdate")
    if admin:
        authorize(ctx.actor, Task.ASSIGNMENT_DIRECT_ADD, assignment.catalog_id)
    else:
        if not relations.holds(ctx.actor, assignment):
            raise Forbidden("you can extend only your own access")
        if not policy.requestor_settings.get("enableTargetsToSelfUpdateAccess"):
            raise Forbidden("this policy does not allow extensions")
        target = ctx.session.get(User, assignment.target_id)
        groups = transitive_group_ids(ctx.session, assignment.target_id, now=ctx.now)
        if target is None or not scope.is_allowed_requestor(ctx.session, policy, target, groups):
            raise Invalid(
                "you are no longer in this policy's scope, so the assignment cannot be extended",
                code="RequestorNotInPolicyScope",
            )
        if (
            policy.request_approval_settings.get("isRequestorJustificationRequired")
            and not justification
        ):
            raise Invalid(
                "this policy requires a justification",
                target="justification",
                code="JustificationRequired",
            )
    new_end = _requested_end(policy, assignment, schedule, admin=admin, now=ctx.now)
    stored_answers = answer_rules.validate(policy.questions, answers) if answers is not None else []
    request = AssignmentRequest(
        request_type=kind,
        state="submitted",
        status="Accepted",
        access_package_id=assignment.access_package_id,
        catalog_id=assignment.catalog_id,
        policy_id=policy.id,
        assignment_id=assignment.id,
        target_id=assignment.target_id,
        requestor_id=None if ctx.actor.is_system else ctx.actor.user_id,
        justification=justification,
        answers=stored_answers,
        schedule={
            "startDateTime": iso(assignment.start_at),
            "expiration": {"type": "afterDateTime", "endDateTime": iso(new_end), "duration": None}
            if new_end
            else {"type": "noExpiration", "endDateTime": None, "duration": None},
        },
        created_at=ctx.now,
        open_key=f"update:{assignment.id}",
    )
    _insert(ctx, request)
    package = ctx.session.get(AccessPackage, assignment.access_package_id)
    name = package.display_name if package else assignment.access_package_id
    ctx.audit(
        "User requests access package assignment extension"
        if not admin
        else "Administrator updates access package assignment",
        operation_type="Update",
        target_type=TARGET,
        target_id=request.id,
        target_name=name,
        catalog_id=request.catalog_id,
        subject_id=request.target_id,
        after={"requestType": kind, "assignmentId": assignment.id, "newEnd": iso(new_end)},
    )
    stages = list(policy.request_approval_settings.get("stages") or [])
    if not admin and policy.request_approval_settings.get("isApprovalRequiredForUpdate") and stages:
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
    default = extension_end(policy.expiration, assignment.expires_at, now)
    if not schedule:
        return default
    if not admin and not policy.requestor_settings.get("allowCustomAssignmentSchedule"):
        raise Invalid(
            "this policy does not let requestors choose their own schedule", target="schedule"
        )
    expiration = schedule.get("expiration") or {}
    if not isinstance(expiration, dict):
        raise Invalid("schedule.expiration must be an object", target="schedule.expiration")
    raw = expiration.get("endDateTime")
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
        request.state, request.status, request.completed_at = (
            "deliveryFailed",
            "AssignmentEnded",
            ctx.now,
        )
        request.open_key = None
        return
    end = (request.schedule.get("expiration") or {}).get("endDateTime")
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
                state="canceled",
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
        .where(ApprovalStage.request_id == request.id, ApprovalStage.status != "Completed")
        .values(status="Completed", review_result="NotReviewed")
        .execution_options(synchronize_session=False)
    )
    ctx.audit(
        "Cancel access package assignment request",
        operation_type="Update",
        target_type=TARGET,
        target_id=request.id,
        catalog_id=request.catalog_id,
        subject_id=request.target_id,
    )
    if request.request_type in ADD_TYPES and request.assignment_id:
        assignment = ctx.session.get(Assignment, request.assignment_id)
        if assignment is not None and assignment.active_key is not None:
            assignments.end(ctx, assignment, reason="canceled", request=None)
    return request


def reprocess_request(ctx: Ctx, request_id: str) -> AssignmentRequest:
    request = queries.request(ctx, request_id)
    lock_subjects(ctx, [request.target_id])
    authorize(ctx.actor, Task.REQUEST_REPROCESS, request.catalog_id)
    if request.state not in ("deliveryFailed", "partiallyDelivered"):
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
    request.state, request.status, request.completed_at = "delivering", "Delivering", None
    retry_roles(ctx, assignment, failed_only=True)
    ctx.audit(
        "Reprocess access package assignment request",
        operation_type="Update",
        target_type=TARGET,
        target_id=request.id,
        catalog_id=request.catalog_id,
        subject_id=request.target_id,
    )
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
        if not grant.desired or (failed_only and grant.applied_state != "failed"):
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
    if request.completed_at is None or request.state in (
        "submitted",
        "pendingApproval",
        "scheduled",
        "delivering",
    ):
        raise Conflict("only completed requests can be deleted", code="RequestNotCompleted")
    ctx.audit(
        "Delete access package assignment request",
        operation_type="Delete",
        target_type=TARGET,
        target_id=request.id,
        catalog_id=request.catalog_id,
        subject_id=request.target_id,
        before={"requestType": request.request_type, "state": request.state},
    )
    ctx.session.delete(request)


def system_remove_record(ctx: Ctx, assignment: Assignment) -> AssignmentRequest:
    """The systemRemove request that records an expiry or a loss of auto-assignment scope."""
    request = AssignmentRequest(
        request_type="systemRemove",
        state="delivering",
        status="Accepted",
        access_package_id=assignment.access_package_id,
        catalog_id=assignment.catalog_id,
        policy_id=assignment.policy_id,
        assignment_id=assignment.id,
        target_id=assignment.target_id,
        requestor_id=None,
        answers=[],
        schedule={},
        created_at=ctx.now,
    )
    ctx.session.add(request)
    ctx.session.flush()
    return request
