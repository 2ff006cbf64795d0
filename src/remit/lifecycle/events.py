"""The lifecycle's audit events: one about a request, or about an assignment, each filed under
its catalog and its target user (spec §8.1 names the activities)."""

from __future__ import annotations

from typing import Any

from remit.context import Ctx
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.vocabulary import Activity

REQUEST = "AccessPackageAssignmentRequest"
ASSIGNMENT = "AccessPackageAssignment"


def about_request(
    ctx: Ctx,
    activity: Activity,
    request: AssignmentRequest,
    operation_type: str,
    *,
    name: str | None = None,
    **fields: Any,
) -> None:
    """``fields``: what else ``Ctx.audit`` takes (before, after, details, category)."""
    ctx.audit(
        activity,
        operation_type=operation_type,
        target_type=REQUEST,
        target_id=request.id,
        target_name=name,
        catalog_id=request.catalog_id,
        subject_id=request.target_id,
        **fields,
    )


def about_assignment(
    ctx: Ctx,
    activity: Activity,
    assignment: Assignment,
    operation_type: str,
    *,
    name: str | None = None,
    **fields: Any,
) -> None:
    ctx.audit(
        activity,
        operation_type=operation_type,
        target_type=ASSIGNMENT,
        target_id=assignment.id,
        target_name=name,
        catalog_id=assignment.catalog_id,
        subject_id=assignment.target_id,
        **fields,
    )
