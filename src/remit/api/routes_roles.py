"""Role management for entitlement management (graph-api §A.3.10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Response

from remit.api import shapes
from remit.api.bodies import RoleAssignmentCreate
from remit.api.calls import Paged, Plain, Single, shaped
from remit.api.collection import QueryOptions, context_url
from remit.api.odata import apply_select
from remit.api.state import identity
from remit.context import Ctx
from remit.errors import Invalid
from remit.models.authz import RoleAssignment
from remit.models.directory import Group, User
from remit.roles import operations as ops
from remit.roles import queries

PREFIX = "/v1.0/roleManagement/entitlementManagement"
CONTEXT = "roleManagement/entitlementManagement/roleAssignments"
DEFINITIONS = "roleManagement/entitlementManagement/roleDefinitions"
EXPANDS = ("principal", "roleDefinition")
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=PREFIX, tags=["roleManagement"], dependencies=[Depends(identity)])


@router.get("/roleDefinitions")
def list_role_definitions(call: Paged) -> dict[str, Any]:
    with call.unit(write=False) as ctx:
        roles = queries.role_definitions(ctx)
    if call.q.filter:
        raise Invalid("$filter is not supported on roleDefinitions", target="$filter")
    items = [apply_select(shapes.role_definition(r), call.q.select) for r in roles]
    return {"@odata.context": context_url(call.request, DEFINITIONS), "value": items}


@router.get("/roleDefinitions/{role_id}")
def get_role_definition(role_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        DEFINITIONS,
        lambda ctx: queries.role_definition(ctx, role_id),
        shaped(shapes.role_definition),
    )


def _render(q: QueryOptions) -> Callable[[Ctx, list[RoleAssignment]], list[dict[str, Any]]]:
    """Graph JSON for role assignments, with ``$expand`` (principal, roleDefinition) read once
    for the whole page."""

    def render(ctx: Ctx, rows: list[RoleAssignment]) -> list[dict[str, Any]]:
        items = [shapes.role_assignment(a) for a in rows]
        if "principal" in q.expand and rows:
            found = queries.principals(ctx, rows)
            for item, row in zip(items, rows, strict=True):
                principal = found.get(row.principal_id)
                item["principal"] = _principal(principal) if principal is not None else None
        if "roleDefinition" in q.expand:
            for item, row in zip(items, rows, strict=True):
                item["roleDefinition"] = shapes.em_role_definition(row.role_definition_id)
        return items

    return render


def _principal(principal: User | Group) -> dict[str, Any]:
    return shapes.user(principal) if isinstance(principal, User) else shapes.group(principal)


@router.get("/roleAssignments")
def list_role_assignments(call: Paged) -> dict[str, Any]:
    return call.page(queries.role_assignments, _render(call.q), context=CONTEXT, expandable=EXPANDS)


@router.post("/roleAssignments", status_code=201)
def create_role_assignment(body: RoleAssignmentCreate, call: Plain) -> dict[str, Any]:
    if body.directoryScopeId is not None and body.appScopeId is not None:
        raise Invalid("give appScopeId or directoryScopeId, not both", target="appScopeId")
    scope = body.appScopeId if body.appScopeId is not None else body.directoryScopeId
    if scope is None:
        raise Invalid("appScopeId is required", target="appScopeId")
    with call.unit(write=True) as ctx:
        created = ops.create_role_assignment(
            ctx,
            principal_id=body.principalId,
            role_definition_id=body.roleDefinitionId,
            app_scope_id=scope,
        )
        return call.entity(CONTEXT, shapes.role_assignment(created))


@router.get("/roleAssignments/{assignment_id}")
def get_role_assignment(assignment_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        CONTEXT,
        lambda ctx: queries.role_assignment(ctx, assignment_id),
        _render(call.q),
        expandable=EXPANDS,
    )


@router.delete("/roleAssignments/{assignment_id}", status_code=204)
def delete_role_assignment(assignment_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.delete_role_assignment(ctx, assignment_id))
