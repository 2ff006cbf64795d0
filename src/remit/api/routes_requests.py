"""Assignment requests and approvals (graph-api §A.3.5, §A.3.7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from remit.api import lifecycle_shapes as shapes
from remit.api.bodies import AssignmentRequestCreate, StageDecision
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
from remit.errors import Invalid
from remit.lifecycle import operations as ops
from remit.lifecycle import queries, requests
from remit.models.lifecycle import AssignmentRequest
from remit.tokens import Identity

EM = "/v1.0/identityGovernance/entitlementManagement"
CONTEXT = "identityGovernance/entitlementManagement/assignmentRequests"
APPROVALS = "identityGovernance/entitlementManagement/accessPackageAssignmentApprovals"
router = APIRouter(prefix=EM, tags=["assignmentRequests"], dependencies=[Depends(identity)])

REQUEST_EXPANDS = ("accessPackage", "assignment", "requestor", "target")


def shape(ctx: Ctx, r: AssignmentRequest) -> dict[str, Any]:
    """The request, with its delivery error for those who may read it (remit's addition)."""
    item = shapes.request(r)
    error = queries.delivery_error(ctx, r)
    if error:
        item["deliveryError"] = error
    return item


def render_requests(
    expand: set[str],
) -> Callable[[Ctx, list[AssignmentRequest]], list[dict[str, Any]]]:
    def render(ctx: Ctx, rows: list[AssignmentRequest]) -> list[dict[str, Any]]:
        items = [shape(ctx, r) for r in rows]
        shapes.expand_requests(ctx, rows, items, expand)
        return items

    return render


@router.get("/assignmentRequests")
def list_requests(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        queries.requests,
        render_requests(set(q.expand)),
        context=CONTEXT,
        expandable=REQUEST_EXPANDS,
    )


@router.post("/assignmentRequests", status_code=201)
def create_request(
    request: Request,
    response: Response,
    body: AssignmentRequestCreate,
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    wanted = body.assignment
    with operation(request, ident, write=True) as ctx:
        created = requests.submit(
            ctx,
            kind=body.requestType,
            package_id=wanted.accessPackageId,
            policy_id=wanted.assignmentPolicyId,
            target_id=wanted.target.objectId,
            target_email=wanted.target.email,
            assignment_id=wanted.id,
            justification=body.justification,
            answers=body.answers,
            schedule=body.schedule,
        )
        item = shape(ctx, created)
        shapes.expand_requests(ctx, [created], [item], {"accessPackage", "assignment"})
    response.headers["Location"] = f"{EM}/assignmentRequests/{created.id}"
    return entity(request, CONTEXT, item)


@router.get("/assignmentRequests/filterByCurrentUser(on='{on}')")
def requests_for_me(
    request: Request,
    on: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: queries.requests_for_current_user(ctx, on, options),
        render_requests(set(q.expand)),
        context=CONTEXT,
        expandable=REQUEST_EXPANDS,
    )


@router.get("/assignmentRequests/{request_id}")
def get_request(
    request: Request,
    request_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = queries.request(ctx, request_id)
        check_expand(q, REQUEST_EXPANDS)
        item = shape(ctx, found)
        shapes.expand_requests(ctx, [found], [item], set(q.expand))
        return entity(request, CONTEXT, item, q)


@router.delete("/assignmentRequests/{request_id}", status_code=204)
def delete_request(
    request: Request, request_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        requests.delete_record(ctx, request_id)
    return Response(status_code=204)


@router.post("/assignmentRequests/{request_id}/cancel", status_code=204)
def cancel_request(
    request: Request, request_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        requests.cancel(ctx, request_id)
    return Response(status_code=204)


@router.post("/assignmentRequests/{request_id}/reprocess", status_code=202)
def reprocess_request(
    request: Request, request_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        requests.reprocess_request(ctx, request_id)
    return Response(status_code=202)


# ------------------------------------------------------------------------------- approvals


@router.get("/accessPackageAssignmentApprovals/filterByCurrentUser(on='{on}')")
def approvals_for_me(
    request: Request,
    on: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    if on != "approver":
        raise Invalid("on must be 'approver'", target="on")
    return listed(
        request,
        ident,
        q,
        queries.approvals_for_current_user,
        lambda _ctx, found: [shapes.approval(a) for a in found],
        context=APPROVALS,
    )


@router.get("/accessPackageAssignmentApprovals/{approval_id}")
def get_approval(
    request: Request, approval_id: str, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return entity(request, APPROVALS, shapes.approval(queries.approval(ctx, approval_id)))


@router.get("/accessPackageAssignmentApprovals/{approval_id}/stages")
def list_stages(
    request: Request, approval_id: str, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        stages = [shapes.approval_stage(v) for v in queries.approval(ctx, approval_id).stages]
    return {"@odata.context": f"{APPROVALS}('{approval_id}')/stages", "value": stages}


@router.get("/accessPackageAssignmentApprovals/{approval_id}/stages/{stage_id}")
def get_stage(
    request: Request, approval_id: str, stage_id: str, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        stage = shapes.approval_stage(queries.approval_stage(ctx, approval_id, stage_id))
    return entity(request, f"{APPROVALS}/stages", stage)


@router.patch("/accessPackageAssignmentApprovals/{approval_id}/stages/{stage_id}", status_code=204)
def decide_stage(
    request: Request,
    approval_id: str,
    stage_id: str,
    body: StageDecision,
    ident: Identity = Depends(identity),
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.decide_stage(
            ctx, approval_id, stage_id, result=body.reviewResult, justification=body.justification
        )
    return Response(status_code=204)
