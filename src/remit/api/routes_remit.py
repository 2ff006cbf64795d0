"""remit's own endpoints, outside the Graph namespace: health and authorization explain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from remit.api.state import app_state, identity, operation
from remit.authz.roles import role_name
from remit.authz.tasks import Task, phrase
from remit.errors import Invalid
from remit.roles.queries import explain_approval_for, explain_for
from remit.tokens import Identity

router = APIRouter(prefix="/remit", tags=["remit"])


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    app_state(request).db.ping()
    return {"status": "ok"}


@router.get("/explain")
def explain(
    request: Request,
    task: str | None = Query(
        None,
        description="a task name, e.g. catalog:update (required unless request is given)",
        max_length=64,
    ),
    user: str | None = Query(
        None, description="userPrincipalName or id; default: the caller", max_length=320
    ),
    catalog: str | None = Query(None, description="catalog id", max_length=64),
    group: str | None = Query(
        None,
        description="group id: may the user change its members or owners (with the task "
        "directory:groups:manage), or add it to the catalog as a resource (with "
        "catalog:resources:manage and a catalog)",
        max_length=64,
    ),
    request_id: str | None = Query(
        None,
        alias="request",
        description="assignment request id: may the user approve or deny it now, and why "
        "(without task, catalog or group)",
        max_length=64,
    ),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    if request_id is not None and (task or catalog or group):
        raise Invalid("a request is asked about alone: no task, catalog or group", target="request")
    wanted = task or ""
    if request_id is None and not wanted:
        raise Invalid("task is required (or request)", target="task")
    with operation(request, ident, write=False) as ctx:
        if request_id is not None:
            approval = explain_approval_for(
                ctx, user=user or ctx.actor.user_id, request_id=request_id
            )
            return {
                "allowed": approval.allowed,
                "requestId": approval.request_id,
                "stage": approval.stage,
                "summary": approval.summary,
                "reasons": list(approval.reasons),
            }
        result = explain_for(
            ctx, user=user or ctx.actor.user_id, task=wanted, catalog_id=catalog, group_id=group
        )
        return {
            "allowed": result.allowed,
            "task": result.task.value,
            "taskDescription": phrase(result.task),
            "catalogId": result.catalog_id,
            "groupId": result.group_id,
            "reasons": list(result.reasons),
            "grants": [
                {
                    "role": role_name(g.role_id),
                    "roleId": g.role_id,
                    "scope": g.scope,
                    "source": g.source,
                    "assignmentId": g.assignment_id,
                    "viaPrincipalId": g.via_principal_id,
                }
                for g in result.grants
            ],
        }


@router.get("/tasks")
def tasks(ident: Identity = Depends(identity)) -> dict[str, Any]:
    return {"value": [t.value for t in Task]}
