"""Graph JSON for requests, assignments, subjects and approvals (graph-api §A.4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remit.api import shapes
from remit.api.collection import Navigation, expanded
from remit.api.shapes import iso
from remit.context import Ctx
from remit.lifecycle import assignments, queries
from remit.lifecycle.schedule import assignment_schedule
from remit.lifecycle.schedule import iso as schedule_iso
from remit.models.directory import User
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy
from remit.models.vocabulary import GRAPH, AssignmentState


def request(r: AssignmentRequest) -> dict[str, Any]:
    schedule = dict(r.schedule or {})
    if schedule:
        schedule.setdefault("recurrence", None)
    return {
        "id": r.id,
        "requestType": r.request_type,
        "state": r.state,
        "status": r.status,
        "createdDateTime": iso(r.created_at),
        "completedDateTime": iso(r.completed_at),
        "justification": r.justification,
        "schedule": schedule or None,
        "answers": r.answers or [],
        "customExtensionCalloutInstances": [],
    }


def assignment(a: Assignment, now: datetime) -> dict[str, Any]:
    """An assignment whose end has passed reads as expired even before the sweep ends it."""
    lapsed = assignments.lapsed(a, now)
    return {
        "id": a.id,
        "state": AssignmentState.EXPIRED if lapsed else a.state,
        "status": "Expired" if lapsed else a.status,
        "expiredDateTime": iso(a.expires_at if lapsed else a.expired_at),
        "schedule": assignment_schedule(a.start_at, a.expires_at, a.expiration),
        "customExtensionCalloutInstances": [],
    }


def subject(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "objectId": u.id,
        "displayName": u.display_name,
        "email": u.mail,
        "principalName": u.user_principal_name,
        "onPremisesSecurityIdentifier": None,
        "subjectType": "user",
        "subjectLifecycle": u.subject_lifecycle
        or ("notGoverned" if u.user_type == "Guest" else "notDefined"),
    }


def approval(found: queries.Approval) -> dict[str, Any]:
    return {"id": found.request.id, "stages": [approval_stage(v) for v in found.stages]}


def approval_stage(view: queries.StageView) -> dict[str, Any]:
    s = view.stage
    return {
        "@odata.type": f"{GRAPH}approvalStage",
        "id": s.id,
        "displayName": f"Stage {s.stage_index + 1}",
        "status": s.status,
        "reviewResult": s.review_result,
        "justification": s.justification,
        "assignedToMe": view.assigned_to_me,
        "reviewedBy": {"id": s.reviewed_by, "displayName": view.reviewer_name}
        if s.reviewed_by
        else None,
        # Milliseconds, like the schedules' instants (lifecycle.schedule.iso).
        "reviewedDateTime": schedule_iso(s.reviewed_at),
    }


def _package(row: AssignmentRequest | Assignment, found: dict[str, AccessPackage]) -> Any:
    package = found.get(row.access_package_id)
    return shapes.access_package(package) if package else None


def _assignment(row: AssignmentRequest, found: dict[str, Assignment]) -> Any:
    a = found.get(row.assignment_id or "")
    return {"id": a.id, "state": a.state, "status": a.status} if a else None


def _target(row: Assignment, found: dict[str, User]) -> Any:
    user = found.get(row.target_id)
    return subject(user) if user else {"objectId": row.target_id}


def _policy(row: Assignment, found: dict[str, AssignmentPolicy]) -> Any:
    policy = found.get(row.policy_id or "")
    if policy is None:
        return None
    return {"id": policy.id, "displayName": policy.display_name, "description": policy.description}


PACKAGE: dict[str, Navigation[Any, Any]] = {
    "accessPackage": Navigation(queries.packages_of, _package)
}
ASSIGNMENT: dict[str, Navigation[AssignmentRequest, Any]] = {
    "assignment": Navigation(queries.assignments_of, _assignment)
}
ASSIGNMENT_NAVIGATIONS: dict[str, Navigation[Assignment, Any]] = {
    **PACKAGE,
    "target": Navigation(queries.people_of, _target),
    "assignmentPolicy": Navigation(queries.policies_of, _policy),
}


def expand_requests(
    ctx: Ctx, rows: list[AssignmentRequest], items: list[dict[str, Any]], expand: set[str]
) -> None:
    expanded(ctx, rows, items, expand, PACKAGE)
    if "requestor" in expand or "target" in expand:
        # One read for both: requestors are often the targets.
        users = queries.people_of(ctx, rows)
        for item, r in zip(items, rows, strict=True):
            if "requestor" in expand:
                who = users.get(r.requestor_id or "")
                item["requestor"] = subject(who) if who else None
            if "target" in expand:
                who = users.get(r.target_id or "")
                item["target"] = subject(who) if who else {"email": r.target_email}
    expanded(ctx, rows, items, expand, ASSIGNMENT)


def expand_assignments(
    ctx: Ctx, rows: list[Assignment], items: list[dict[str, Any]], expand: set[str]
) -> None:
    expanded(ctx, rows, items, expand, ASSIGNMENT_NAVIGATIONS)
