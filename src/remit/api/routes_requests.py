"""Assignment requests and approvals (graph-api §A.3.5, §A.3.7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response

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


def _pick(source: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = source.get(name)
        if value not in (None, ""):
            return value
    return None


def _nested_id(source: dict[str, Any], name: str, key: str = "id") -> Any:
    value = source.get(name)
    return value.get(key) if isinstance(value, dict) else None


def parse_request_body(body: Any) -> dict[str, Any]:
    """The lenient reading of graph-api §A.3.5: ``assignment`` or ``accessPackageAssignment``,
    camelCase or snake_case ids (the SDK's additional_data), or typed navigations."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    raw = body.get("assignment") or body.get("accessPackageAssignment") or {}
    if not isinstance(raw, dict):
        raise Invalid("assignment must be an object", target="assignment")
    target: dict[str, Any] = raw["target"] if isinstance(raw.get("target"), dict) else {}
    answers = body.get("answers")
    if answers is not None and not isinstance(answers, list):
        raise Invalid("answers must be a list", target="answers")
    schedule = body.get("schedule")
    if schedule is not None and not isinstance(schedule, dict):
        raise Invalid("schedule must be an object", target="schedule")
    justification = body.get("justification")
    if justification is not None and not isinstance(justification, str):
        raise Invalid("justification must be a string", target="justification")
    found = {
        "kind": body.get("requestType"),
        "package_id": _pick(raw, "accessPackageId", "access_package_id")
        or _nested_id(raw, "accessPackage"),
        "policy_id": _pick(raw, "assignmentPolicyId", "assignment_policy_id")
        or _nested_id(raw, "assignmentPolicy"),
        "target_id": _pick(raw, "targetId", "target_id") or target.get("objectId") or None,
        "target_email": target.get("email") or None,
        "assignment_id": raw.get("id"),
        "justification": justification,
        "answers": answers,
        "schedule": schedule,
    }
    for key in ("package_id", "policy_id", "target_id", "target_email", "assignment_id"):
        value = found[key]
        if value is not None and (not isinstance(value, str) or len(value) > 320):
            raise Invalid(f"{key} must be a string", target=key)
    return found


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
    body: dict[str, Any] = Body(...),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    fields = parse_request_body(body)
    with operation(request, ident, write=True) as ctx:
        created = requests.submit(ctx, **fields)
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
    body: dict[str, Any] = Body(...),
    ident: Identity = Depends(identity),
) -> Response:
    result = body.get("reviewResult")
    justification = body.get("justification")
    if not isinstance(result, str):
        raise Invalid("reviewResult (Approve or Deny) is required", target="reviewResult")
    if justification is not None and (
        not isinstance(justification, str) or len(justification) > 4000
    ):
        raise Invalid(
            "justification must be a string of at most 4,000 characters", target="justification"
        )
    with operation(request, ident, write=True) as ctx:
        ops.decide_stage(ctx, approval_id, stage_id, result=result, justification=justification)
    return Response(status_code=204)
