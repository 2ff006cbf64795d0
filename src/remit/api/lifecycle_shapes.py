"""Graph JSON for requests, assignments, subjects and approvals (graph-api §A.4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remit.api import shapes
from remit.api.shapes import iso
from remit.context import Ctx
from remit.lifecycle import assignments, queries
from remit.lifecycle.schedule import assignment_schedule
from remit.lifecycle.schedule import iso as schedule_iso
from remit.models.directory import User
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.vocabulary import AssignmentState

GRAPH = "#microsoft.graph."


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


def expand_requests(
    ctx: Ctx, rows: list[AssignmentRequest], items: list[dict[str, Any]], expand: set[str]
) -> None:
    if "accessPackage" in expand:
        packages = queries.packages_of(ctx, rows)
        for item, r in zip(items, rows, strict=True):
            p = packages.get(r.access_package_id)
            item["accessPackage"] = shapes.access_package(p) if p else None
    if "requestor" in expand or "target" in expand:
        users = queries.people_of(ctx, rows)
        for item, r in zip(items, rows, strict=True):
            if "requestor" in expand:
                who = users.get(r.requestor_id or "")
                item["requestor"] = subject(who) if who else None
            if "target" in expand:
                who = users.get(r.target_id or "")
                item["target"] = subject(who) if who else {"email": r.target_email}
    if "assignment" in expand:
        found = queries.assignments_of(ctx, rows)
        for item, r in zip(items, rows, strict=True):
            a = found.get(r.assignment_id or "")
            item["assignment"] = {"id": a.id, "state": a.state, "status": a.status} if a else None


def expand_assignments(
    ctx: Ctx, rows: list[Assignment], items: list[dict[str, Any]], expand: set[str]
) -> None:
    if "accessPackage" in expand:
        packages = queries.packages_of(ctx, rows)
        for item, a in zip(items, rows, strict=True):
            p = packages.get(a.access_package_id)
            item["accessPackage"] = shapes.access_package(p) if p else None
    if "target" in expand:
        users = queries.people_of(ctx, rows)
        for item, a in zip(items, rows, strict=True):
            u = users.get(a.target_id)
            item["target"] = subject(u) if u else {"objectId": a.target_id}
    if "assignmentPolicy" in expand:
        policies = queries.policies_of(ctx, rows)
        for item, a in zip(items, rows, strict=True):
            policy = policies.get(a.policy_id or "")
            item["assignmentPolicy"] = (
                {
                    "id": policy.id,
                    "displayName": policy.display_name,
                    "description": policy.description,
                }
                if policy
                else None
            )
