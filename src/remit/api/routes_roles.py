"""Role management for entitlement management (graph-api §A.3.10)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.api import shapes
from remit.api.bodies import RoleAssignmentCreate
from remit.api.collection import (
    QueryOptions,
    check_expand,
    collection,
    context_url,
    entity,
    query_options,
    single_options,
)
from remit.api.odata import apply_select
from remit.api.state import identity, operation
from remit.authz.roles import EM_ROLES
from remit.errors import Invalid, NotFound
from remit.listing import F
from remit.models.authz import RoleAssignment
from remit.models.directory import Group, User
from remit.roles import operations as ops
from remit.tokens import Identity

PREFIX = "/v1.0/roleManagement/entitlementManagement"
CONTEXT = "roleManagement/entitlementManagement/roleAssignments"
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=PREFIX, tags=["roleManagement"], dependencies=[Depends(identity)])

ASSIGNMENT_FIELDS = {
    "id": F(RoleAssignment.id),
    "principalId": F(RoleAssignment.principal_id),
    "roleDefinitionId": F(RoleAssignment.role_definition_id),
    "appScopeId": F(RoleAssignment.app_scope_id),
}


@router.get("/roleDefinitions")
def list_role_definitions(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False):
        pass  # any signed-in, enabled user may read the built-in definitions
    if q.filter:
        raise Invalid("$filter is not supported on roleDefinitions", target="$filter")
    items = [apply_select(shapes.role_definition(r), q.select) for r in EM_ROLES.values()]
    return {
        "@odata.context": context_url(
            request, "roleManagement/entitlementManagement/roleDefinitions"
        ),
        "value": items,
    }


@router.get("/roleDefinitions/{role_id}")
def get_role_definition(
    request: Request,
    role_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False):
        pass
    role = EM_ROLES.get(role_id)
    if role is None:
        raise NotFound(f"role definition {role_id} was not found")
    return entity(
        request,
        "roleManagement/entitlementManagement/roleDefinitions",
        shapes.role_definition(role),
        q,
    )


def _render(q: QueryOptions):  # type: ignore[no-untyped-def]
    def render(session: Session, rows: list[RoleAssignment]) -> list[dict[str, Any]]:
        items = [shapes.role_assignment(a) for a in rows]
        if "principal" in q.expand and rows:
            ids = {a.principal_id for a in rows}
            found: dict[str, dict[str, Any]] = {
                u.id: shapes.user(u)
                for u in session.execute(select(User).where(User.id.in_(ids))).scalars()
            }
            found.update(
                {
                    g.id: shapes.group(g)
                    for g in session.execute(select(Group).where(Group.id.in_(ids))).scalars()
                }
            )
            for item, row in zip(items, rows, strict=True):
                item["principal"] = found.get(row.principal_id)
        if "roleDefinition" in q.expand:
            for item, row in zip(items, rows, strict=True):
                item["roleDefinition"] = shapes.em_role_definition(row.role_definition_id)
        return items

    return render


@router.get("/roleAssignments")
def list_role_assignments(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return collection(
            request,
            ctx.session,
            ops.visible_role_assignments(ctx),
            key=RoleAssignment.id,
            fields=ASSIGNMENT_FIELDS,
            q=q,
            render=_render(q),
            context=CONTEXT,
            expandable=("principal", "roleDefinition"),
        )


@router.post("/roleAssignments", status_code=201)
def create_role_assignment(
    request: Request, body: RoleAssignmentCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    if body.directoryScopeId is not None and body.appScopeId is not None:
        raise Invalid("give appScopeId or directoryScopeId, not both", target="appScopeId")
    scope = body.appScopeId if body.appScopeId is not None else body.directoryScopeId
    if scope is None:
        raise Invalid("appScopeId is required", target="appScopeId")
    with operation(request, ident, write=True) as ctx:
        created = ops.create_role_assignment(
            ctx,
            principal_id=body.principalId,
            role_definition_id=body.roleDefinitionId,
            app_scope_id=scope,
        )
        return entity(request, CONTEXT, shapes.role_assignment(created))


@router.get("/roleAssignments/{assignment_id}")
def get_role_assignment(
    request: Request,
    assignment_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = ops.get_role_assignment(ctx, assignment_id)
        check_expand(q, ("principal", "roleDefinition"))
        return entity(request, CONTEXT, _render(q)(ctx.session, [found])[0], q)


@router.delete("/roleAssignments/{assignment_id}", status_code=204)
def delete_role_assignment(
    request: Request, assignment_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.delete_role_assignment(ctx, assignment_id)
    return Response(status_code=204)
