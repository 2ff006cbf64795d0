"""Assignments (graph-api §A.3.6): read-only; every change goes through assignmentRequests."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from remit.api import lifecycle_shapes as shapes
from remit.api.collection import (
    QueryOptions,
    check_expand,
    collection,
    entity,
    query_options,
    single_options,
)
from remit.api.state import identity, operation
from remit.context import Ctx
from remit.lifecycle import operations as ops
from remit.listing import F
from remit.models.lifecycle import Assignment
from remit.tokens import Identity

EM = "/v1.0/identityGovernance/entitlementManagement"
CONTEXT = "identityGovernance/entitlementManagement/assignments"
router = APIRouter(prefix=EM, tags=["assignments"], dependencies=[Depends(identity)])

A = Assignment
ASSIGNMENT_FIELDS = {
    "id": F(A.id),
    "state": F(A.state),
    "status": F(A.status),
    "expiredDateTime": F(A.expired_at),
    "accessPackage/id": F(A.access_package_id),
    "assignmentPolicy/id": F(A.policy_id),
    "target/objectId": F(A.target_id),
    "target/id": F(A.target_id),
    "schedule/startDateTime": F(A.start_at),
    "schedule/expiration/endDateTime": F(A.expires_at),
}
EXPANDS = ("accessPackage", "target", "assignmentPolicy")


def render_assignments(ctx: Ctx, q: QueryOptions):  # type: ignore[no-untyped-def]
    def render(session: Session, rows: list[Assignment]) -> list[dict[str, Any]]:
        items = [shapes.assignment(a, ctx.now) for a in rows]
        shapes.expand_assignments(session, rows, items, set(q.expand))
        return items

    return render


def _list(request: Request, ctx: Ctx, stmt: Any, q: QueryOptions) -> dict[str, Any]:
    return collection(
        request,
        ctx.session,
        stmt,
        key=A.id,
        fields=ASSIGNMENT_FIELDS,
        q=q,
        render=render_assignments(ctx, q),
        context=CONTEXT,
        expandable=EXPANDS,
    )


@router.get("/assignments")
def list_assignments(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return _list(request, ctx, ops.visible_assignments(ctx), q)


@router.get("/assignments/filterByCurrentUser(on='{on}')")
def assignments_for_me(
    request: Request,
    on: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return _list(request, ctx, ops.assignments_for_current_user(ctx, on), q)


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
    with operation(request, ident, write=False) as ctx:
        return _list(request, ctx, ops.additional_access(ctx, package_id, incompatible_id), q)


@router.get("/assignments/{assignment_id}")
def get_assignment(
    request: Request,
    assignment_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = ops.get_assignment(ctx, assignment_id)
        check_expand(q, EXPANDS)
        item = shapes.assignment(found, ctx.now)
        shapes.expand_assignments(ctx.session, [found], [item], set(q.expand))
        return entity(request, CONTEXT, item, q)


@router.post("/assignments/{assignment_id}/reprocess", status_code=202)
def reprocess_assignment(
    request: Request, assignment_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.reprocess_assignment(ctx, assignment_id)
    return Response(status_code=202)
