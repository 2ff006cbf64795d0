"""Graph JSON for requests, assignments, subjects and approvals (graph-api §A.4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.api import shapes
from remit.api.shapes import iso
from remit.lifecycle import assignments
from remit.lifecycle.schedule import assignment_schedule
from remit.models.directory import User
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy

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
        "state": "expired" if lapsed else a.state,
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


def _by_id(session: Session, model: Any, ids: set[str | None]) -> dict[str, Any]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {o.id: o for o in session.execute(select(model).where(model.id.in_(wanted))).scalars()}


def expand_requests(
    session: Session, rows: list[AssignmentRequest], items: list[dict[str, Any]], expand: set[str]
) -> None:
    if "accessPackage" in expand:
        packages = _by_id(session, AccessPackage, {r.access_package_id for r in rows})
        for item, r in zip(items, rows, strict=True):
            p = packages.get(r.access_package_id)
            item["accessPackage"] = shapes.access_package(p) if p else None
    if "requestor" in expand or "target" in expand:
        users = _by_id(session, User, {r.requestor_id for r in rows} | {r.target_id for r in rows})
        for item, r in zip(items, rows, strict=True):
            if "requestor" in expand:
                who = users.get(r.requestor_id or "")
                item["requestor"] = subject(who) if who else None
            if "target" in expand:
                who = users.get(r.target_id or "")
                item["target"] = subject(who) if who else {"email": r.target_email}
    if "assignment" in expand:
        found = _by_id(session, Assignment, {r.assignment_id for r in rows})
        for item, r in zip(items, rows, strict=True):
            a = found.get(r.assignment_id or "")
            item["assignment"] = {"id": a.id, "state": a.state, "status": a.status} if a else None


def expand_assignments(
    session: Session,
    rows: list[Assignment],
    items: list[dict[str, Any]],
    expand: set[str],
) -> None:
    if "accessPackage" in expand:
        packages = _by_id(session, AccessPackage, {a.access_package_id for a in rows})
        for item, a in zip(items, rows, strict=True):
            p = packages.get(a.access_package_id)
            item["accessPackage"] = shapes.access_package(p) if p else None
    if "target" in expand:
        users = _by_id(session, User, {a.target_id for a in rows})
        for item, a in zip(items, rows, strict=True):
            u = users.get(a.target_id)
            item["target"] = subject(u) if u else {"objectId": a.target_id}
    if "assignmentPolicy" in expand:
        policies = _by_id(session, AssignmentPolicy, {a.policy_id for a in rows})
        for item, a in zip(items, rows, strict=True):
            p = policies.get(a.policy_id or "")
            item["assignmentPolicy"] = (
                {"id": p.id, "displayName": p.display_name, "description": p.description}
                if p
                else None
            )
