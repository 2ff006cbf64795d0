"""Assignments (graph-api §A.3.6): read-only; every change goes through assignmentRequests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from remit.api import lifecycle_shapes as shapes
from remit.api.collection import (
    QueryOptions,
    check_expand,
    entity,
    listed,
    query_options,
    single_options,
)
from remit.api.state import identity, operation
from remit.context import Ctx
from remit.lifecycle import operations as ops
from remit.lifecycle import queries
from remit.models.lifecycle import Assignment
from remit.tokens import Identity

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


@router.get("/assignments")
def list_assignments(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        queries.assignments,
        render_assignments(set(q.expand)),
        context=CONTEXT,
        expandable=EXPANDS,
    )


@router.get("/assignments/filterByCurrentUser(on='{on}')")
def assignments_for_me(
    request: Request,
    on: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: queries.assignments_for_current_user(ctx, on, options),
        render_assignments(set(q.expand)),
        context=CONTEXT,
        expandable=EXPANDS,
    )


@router.get(
    "/assignments/additionalAccess(accessPackageId='{package_id}',"
    "incompatibleAccessPackageId='{incompatible_id}')"
)
def additional_access(
    request: Request,
    package_id: str,
    incompatible_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: queries.additional_access(ctx, package_id, incompatible_id, options),
        render_assignments(set(q.expand)),
        context=CONTEXT,
        expandable=EXPANDS,
        parent=lambda ctx: queries.package_pair(ctx, package_id, incompatible_id),
    )


@router.get("/assignments/{assignment_id}")
def get_assignment(
    request: Request,
    assignment_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = queries.assignment(ctx, assignment_id)
        check_expand(q, EXPANDS)
        item = shapes.assignment(found, ctx.now)
        shapes.expand_assignments(ctx, [found], [item], set(q.expand))
        return entity(request, CONTEXT, item, q)


@router.post("/assignments/{assignment_id}/reprocess", status_code=202)
def reprocess_assignment(
    request: Request, assignment_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.reprocess_assignment(ctx, assignment_id)
    return Response(status_code=202)
