"""The lifecycle's audit events: each about one request or one assignment, filed under its
catalog and its target user (spec §8.1 names the activities)."""

from __future__ import annotations

from typing import Any

from remit.context import Ctx
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.vocabulary import Activity

REQUEST = "AccessPackageAssignmentRequest"
ASSIGNMENT = "AccessPackageAssignment"


def about(
    ctx: Ctx,
    activity: Activity,
    row: AssignmentRequest | Assignment,
    operation_type: str,
    *,
    name: str | None = None,
    **fields: Any,
) -> None:
    """``name``: the package's; ``fields``: what else ``Ctx.audit`` takes (before, after,
    details, category)."""
    ctx.audit(
        activity,
        operation_type=operation_type,
        target_type=ASSIGNMENT if isinstance(row, Assignment) else REQUEST,
        target_id=row.id,
        target_name=name,
        catalog_id=row.catalog_id,
        subject_id=row.target_id,
        **fields,
    )
