"""Role management for entitlement management (graph-api §A.3.10)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from remit.api import shapes
from remit.api.bodies import RoleAssignmentCreate
from remit.api.calls import Paged, Plain, Single, shaped
from remit.api.collection import Navigation, context_url, rendering
from remit.api.odata import apply_select
from remit.api.state import identity
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


def _principal(row: RoleAssignment, found: dict[str, User | Group]) -> dict[str, Any] | None:
    principal = found.get(row.principal_id)
    if principal is None:
        return None
    return shapes.user(principal) if isinstance(principal, User) else shapes.group(principal)


# Graph JSON for role assignments, with ``$expand`` (principal, roleDefinition) read once for
# the whole page.
_render = rendering(
    shapes.role_assignment,
    {
        "principal": Navigation(queries.principals, _principal),
        # From the built-in definitions: nothing to read.
        "roleDefinition": Navigation(
            lambda _ctx, _rows: None,
            lambda row, _: shapes.em_role_definition(row.role_definition_id),
        ),
    },
)


@router.get("/roleAssignments")
def list_role_assignments(call: Paged) -> dict[str, Any]:
    return call.page(
        queries.role_assignments, _render(call.q.expand), context=CONTEXT, expandable=EXPANDS
    )


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
        _render(call.q.expand),
        expandable=EXPANDS,
    )


@router.delete("/roleAssignments/{assignment_id}", status_code=204)
def delete_role_assignment(assignment_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.delete_role_assignment(ctx, assignment_id))
