"""Assignments (graph-api §A.3.6): read-only; every change goes through assignmentRequests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Response

from remit.api import lifecycle_shapes as shapes
from remit.api.calls import Call, Paged, Plain, Single
from remit.api.state import identity
from remit.context import Ctx
from remit.lifecycle import operations as ops
from remit.lifecycle import queries
from remit.listing import ListOptions, Page
from remit.models.lifecycle import Assignment

EM = "/v1.0/identityGovernance/entitlementManagement"
CONTEXT = "identityGovernance/entitlementManagement/assignments"
router = APIRouter(prefix=EM, tags=["assignments"], dependencies=[Depends(identity)])

EXPANDS = ("accessPackage", "target", "assignmentPolicy")


def render_assignments(
    expand: set[str],
) -> Callable[[Ctx, list[Assignment]], list[dict[str, Any]]]:
    def render(ctx: Ctx, rows: list[Assignment]) -> list[dict[str, Any]]:
        items = [shapes.assignment(a, ctx.now) for a in rows]
        shapes.expand_assignments(ctx, rows, items, expand)
        return items

    return render


def _page(
    call: Call,
    query: Callable[[Ctx, ListOptions], Page[Assignment]],
    parent: Callable[[Ctx], object] | None = None,
) -> dict[str, Any]:
    """A page of assignments, each with what ``$expand`` names."""
    render = render_assignments(set(call.q.expand))
    return call.page(query, render, context=CONTEXT, expandable=EXPANDS, parent=parent)


@router.get("/assignments")
def list_assignments(call: Paged) -> dict[str, Any]:
    return _page(call, queries.assignments)


@router.get("/assignments/filterByCurrentUser(on='{on}')")
def assignments_for_me(on: str, call: Paged) -> dict[str, Any]:
    return _page(call, lambda ctx, options: queries.assignments_for_current_user(ctx, on, options))


@router.get(
    "/assignments/additionalAccess(accessPackageId='{package_id}',"
    "incompatibleAccessPackageId='{incompatible_id}')"
)
def additional_access(package_id: str, incompatible_id: str, call: Paged) -> dict[str, Any]:
    return _page(
        call,
        lambda ctx, options: queries.additional_access(ctx, package_id, incompatible_id, options),
        parent=lambda ctx: queries.package_pair(ctx, package_id, incompatible_id),
    )


@router.get("/assignments/{assignment_id}")
def get_assignment(assignment_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        CONTEXT,
        lambda ctx: queries.assignment(ctx, assignment_id),
        render_assignments(set(call.q.expand)),
        expandable=EXPANDS,
    )


@router.post("/assignments/{assignment_id}/reprocess", status_code=202)
def reprocess_assignment(assignment_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.reprocess_assignment(ctx, assignment_id), status=202)
