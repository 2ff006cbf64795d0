"""Reading entitlement-management roles: the built-in definitions, and the explicit assignments
the actor may see (spec §1.2, §A.3.10), one at a time or a page of them.

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries).
Each function takes the actor's ``Ctx`` and applies its visibility itself: an assignment the
actor may not see is ``NotFound``, never ``Forbidden``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, or_, select

from remit import listing, validation
from remit.authz.actor import TENANT
from remit.authz.roles import EM_ROLES, EmRole
from remit.authz.tasks import Task
from remit.authz.visibility import catalogs_with_task
from remit.context import Ctx
from remit.errors import NotFound
from remit.listing import F, ListOptions, Page
from remit.models.authz import RoleAssignment
from remit.models.directory import Group, User

# What a list may be filtered and ordered on (Graph's unifiedRoleAssignment property names).
ASSIGNMENT_FIELDS = {
    "id": F(RoleAssignment.id),
    "principalId": F(RoleAssignment.principal_id),
    "roleDefinitionId": F(RoleAssignment.role_definition_id),
    "appScopeId": F(RoleAssignment.app_scope_id),
}


# ---------------------------------------------------------------- role definitions


def role_definitions(ctx: Ctx) -> list[EmRole]:
    """The built-in definitions, in their documented order. They describe the product, not the
    tenant: any signed-in, enabled user (an actor at all) may read them."""
    del ctx  # nothing about the actor narrows them
    return list(EM_ROLES.values())


def role_definition(ctx: Ctx, role_id: str) -> EmRole:
    """One built-in definition by id; any other id is ``NotFound``."""
    del ctx
    role = EM_ROLES.get(role_id)
    if role is None:
        raise NotFound(f"role definition {role_id} was not found")
    return role


# ---------------------------------------------------------------- role assignments


def visible_role_assignments(ctx: Ctx) -> Select[RoleAssignment]:
    """Only explicit assignments (spec §1.2), narrowed to what the actor may see: its own, the
    tenant's with the tenant role-reading right, and those on the catalogs it may read."""
    clauses = [RoleAssignment.principal_id == ctx.actor.user_id]
    if Task.TENANT_ROLES_READ in ctx.actor.tenant_tasks:
        clauses.append(RoleAssignment.app_scope_id == TENANT)
    readable = catalogs_with_task(ctx.actor, Task.CATALOG_READ)
    if readable is None:
        clauses.append(RoleAssignment.catalog_id.is_not(None))
    else:
        clauses.append(RoleAssignment.catalog_id.in_(readable))
    return select(RoleAssignment).where(or_(*clauses))


def role_assignments(ctx: Ctx, options: ListOptions) -> Page[RoleAssignment]:
    """A page of the assignments the actor may see, by id."""
    return listing.page(
        ctx.session,
        visible_role_assignments(ctx),
        key=RoleAssignment.id,
        fields=ASSIGNMENT_FIELDS,
        options=options,
    )


def all_role_assignments(ctx: Ctx) -> list[RoleAssignment]:
    """Every assignment the actor may see, in the order they were made (the CLI's table)."""
    stmt = visible_role_assignments(ctx).order_by(RoleAssignment.created_at, RoleAssignment.id)
    return list(ctx.session.execute(stmt).scalars())


def role_assignment(ctx: Ctx, assignment_id: str) -> RoleAssignment:
    """One assignment the actor may see; any other id (one with a control character names
    none) is ``NotFound``."""
    found = (
        ctx.session.execute(
            visible_role_assignments(ctx).where(RoleAssignment.id == assignment_id)
        ).scalar_one_or_none()
        if validation.usable_id(assignment_id)
        else None
    )
    if found is None:
        raise NotFound(f"role assignment {assignment_id} was not found")
    return found


def principals(ctx: Ctx, assignments: Sequence[RoleAssignment]) -> dict[str, User | Group]:
    """The users and groups that hold ``assignments`` (already visible to the actor), by id, in
    two statements whatever their number (``$expand=principal``). A principal deleted since is
    absent."""
    ids = {a.principal_id for a in assignments}
    if not ids:
        return {}
    found: dict[str, User | Group] = {
        u.id: u for u in ctx.session.execute(select(User).where(User.id.in_(ids))).scalars()
    }
    found.update(
        {g.id: g for g in ctx.session.execute(select(Group).where(Group.id.in_(ids))).scalars()}
    )
    return found
