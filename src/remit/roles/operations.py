"""Entitlement-management role assignments: create and delete (spec §1.3, §A.3.10); reading
them is ``roles.queries``.

No amplification: the catalog-creator role (tenant scope) is an administrator's to give; catalog
roles are given by that catalog's owners or an administrator, and only on that catalog.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from remit import validation
from remit.authz.actor import CATALOG_SCOPE_PREFIX, TENANT
from remit.authz.decide import authorize
from remit.authz.roles import CATALOG_OWNER, EM_ROLES, EmRole, assigning_task
from remit.context import Ctx
from remit.directory.operations import principal_type
from remit.errors import Conflict, Invalid
from remit.models.authz import RoleAssignment
from remit.models.catalogs import Catalog
from remit.models.vocabulary import Activity
from remit.roles import queries


def scope_catalog_id(app_scope_id: str) -> str | None:
    """``/`` → None; ``/AccessPackageCatalog/{id}`` → id; anything else is invalid."""
    if app_scope_id == TENANT:
        return None
    if app_scope_id.startswith(CATALOG_SCOPE_PREFIX):
        catalog_id = app_scope_id[len(CATALOG_SCOPE_PREFIX) :]
        if catalog_id and "/" not in catalog_id:
            return catalog_id
    raise Invalid(
        "appScopeId must be '/' or '/AccessPackageCatalog/{catalogId}'", target="appScopeId"
    )


def _role(role_definition_id: str) -> EmRole:
    role = EM_ROLES.get(role_definition_id)
    if role is None:
        raise Invalid(
            f"{role_definition_id!r} is not an entitlement-management role definition",
            target="roleDefinitionId",
        )
    return role


def create_role_assignment(
    ctx: Ctx, *, principal_id: str, role_definition_id: str, app_scope_id: str
) -> RoleAssignment:
    role = _role(role_definition_id)
    catalog_id = scope_catalog_id(app_scope_id)
    if role.catalog_scoped != (catalog_id is not None):
        where = (
            "a catalog (/AccessPackageCatalog/{id})" if role.catalog_scoped else "the tenant (/)"
        )
        raise Invalid(f"{role.portal_name} is assigned on {where}", target="appScopeId")
    catalog = queries.role_catalog(ctx, catalog_id) if catalog_id else None
    authorize(ctx.actor, assigning_task(role), catalog_id)
    if not validation.usable_id(principal_id):
        raise Invalid(f"no user or group has id {principal_id!r}", target="principalId")
    ptype = principal_type(ctx, principal_id)
    return _insert(ctx, principal_id, ptype, role, catalog, app_scope_id)


def grant_first_owner(ctx: Ctx, catalog: Catalog) -> RoleAssignment:
    """The creator of a catalog becomes its first owner, as an explicit assignment."""
    return _insert(
        ctx,
        ctx.actor.user_id,
        "user",
        CATALOG_OWNER,
        catalog,
        f"{CATALOG_SCOPE_PREFIX}{catalog.id}",
    )


def _insert(
    ctx: Ctx, principal_id: str, ptype: str, role: EmRole, catalog: Catalog | None, scope: str
) -> RoleAssignment:
    assignment = RoleAssignment(
        principal_id=principal_id,
        principal_type=ptype,
        role_definition_id=role.id,
        app_scope_id=scope,
        catalog_id=catalog.id if catalog else None,
        created_at=ctx.now,
        created_by=ctx.actor.user_id,
    )
    ctx.session.add(assignment)
    try:
        with ctx.session.begin_nested():
            ctx.session.flush()
    except IntegrityError as exc:
        raise Conflict("the principal already holds this role on this scope") from exc
    after = {
        "principalId": principal_id,
        "principalType": ptype,
        "roleDefinitionId": role.id,
        "appScopeId": scope,
    }
    _audit(ctx, Activity.CREATE_ROLE_ASSIGNMENT, "Assign", assignment, role, after=after)
    return assignment


def delete_role_assignment(ctx: Ctx, assignment_id: str) -> None:
    assignment = queries.role_assignment(ctx, assignment_id)
    role = _role(assignment.role_definition_id)
    authorize(ctx.actor, assigning_task(role), assignment.catalog_id)
    ctx.session.delete(assignment)
    before = {
        "principalId": assignment.principal_id,
        "roleDefinitionId": role.id,
        "appScopeId": assignment.app_scope_id,
    }
    _audit(ctx, Activity.DELETE_ROLE_ASSIGNMENT, "Unassign", assignment, role, before=before)


def _audit(
    ctx: Ctx,
    activity: Activity,
    operation_type: str,
    assignment: RoleAssignment,
    role: EmRole,
    **event: Any,
) -> None:
    """One RoleManagement event about ``assignment`` (its catalog's, if it has one)."""
    ctx.audit(
        activity,
        operation_type=operation_type,
        target_type="RoleAssignment",
        target_id=assignment.id,
        target_name=role.portal_name,
        catalog_id=assignment.catalog_id,
        category="RoleManagement",
        **event,
    )
