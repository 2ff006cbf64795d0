"""Assignment requests and approvals (graph-api §A.3.5, §A.3.7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Response

from remit.api import lifecycle_shapes as shapes
from remit.api.bodies import AssignmentRequestCreate, StageDecision
from remit.api.calls import Call, Paged, Plain, Single
from remit.api.state import identity
from remit.context import Ctx
from remit.errors import Invalid
from remit.lifecycle import operations as ops
from remit.lifecycle import queries, requests
from remit.listing import ListOptions, Page
from remit.models.lifecycle import AssignmentRequest

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


def _page(
    call: Call, query: Callable[[Ctx, ListOptions], Page[AssignmentRequest]]
) -> dict[str, Any]:
    """A page of requests, each with what ``$expand`` names."""
    render = render_requests(set(call.q.expand))
    return call.page(query, render, context=CONTEXT, expandable=REQUEST_EXPANDS)


@router.get("/assignmentRequests")
def list_requests(call: Paged) -> dict[str, Any]:
    return _page(call, queries.requests)


@router.post("/assignmentRequests", status_code=201)
def create_request(
    response: Response, body: AssignmentRequestCreate, call: Plain
) -> dict[str, Any]:
    wanted = body.assignment
    with call.unit(write=True) as ctx:
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
    return call.entity(CONTEXT, item)


@router.get("/assignmentRequests/filterByCurrentUser(on='{on}')")
def requests_for_me(on: str, call: Paged) -> dict[str, Any]:
    return _page(call, lambda ctx, options: queries.requests_for_current_user(ctx, on, options))


@router.get("/assignmentRequests/{request_id}")
def get_request(request_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        CONTEXT,
        lambda ctx: queries.request(ctx, request_id),
        render_requests(set(call.q.expand)),
        expandable=REQUEST_EXPANDS,
    )


@router.delete("/assignmentRequests/{request_id}", status_code=204)
def delete_request(request_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: requests.delete_record(ctx, request_id))


@router.post("/assignmentRequests/{request_id}/cancel", status_code=204)
def cancel_request(request_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: requests.cancel(ctx, request_id))


@router.post("/assignmentRequests/{request_id}/reprocess", status_code=202)
def reprocess_request(request_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: requests.reprocess_request(ctx, request_id), status=202)


# ------------------------------------------------------------------------------- approvals


def _approvals(_ctx: Ctx, found: list[queries.Approval]) -> list[dict[str, Any]]:
    return [shapes.approval(a) for a in found]


@router.get("/accessPackageAssignmentApprovals/filterByCurrentUser(on='{on}')")
def approvals_for_me(on: str, call: Paged) -> dict[str, Any]:
    if on != "approver":
        raise Invalid("on must be 'approver'", target="on")
    return call.page(queries.approvals_for_current_user, _approvals, context=APPROVALS)


@router.get("/accessPackageAssignmentApprovals/{approval_id}")
def get_approval(approval_id: str, call: Plain) -> dict[str, Any]:
    return call.one(APPROVALS, lambda ctx: queries.approval(ctx, approval_id), _approvals)


@router.get("/accessPackageAssignmentApprovals/{approval_id}/stages")
def list_stages(approval_id: str, call: Plain) -> dict[str, Any]:
    with call.unit(write=False) as ctx:
        stages = [shapes.approval_stage(v) for v in queries.approval(ctx, approval_id).stages]
    return {"@odata.context": f"{APPROVALS}('{approval_id}')/stages", "value": stages}


@router.get("/accessPackageAssignmentApprovals/{approval_id}/stages/{stage_id}")
def get_stage(approval_id: str, stage_id: str, call: Plain) -> dict[str, Any]:
    return call.one(
        f"{APPROVALS}/stages",
        lambda ctx: queries.approval_stage(ctx, approval_id, stage_id),
        lambda _ctx, found: [shapes.approval_stage(v) for v in found],
    )


@router.patch("/accessPackageAssignmentApprovals/{approval_id}/stages/{stage_id}", status_code=204)
def decide_stage(approval_id: str, stage_id: str, body: StageDecision, call: Plain) -> Response:
    return call.done(
        lambda ctx: ops.decide_stage(
            ctx, approval_id, stage_id, result=body.reviewResult, justification=body.justification
        )
    )
