"""Reading entitlement-management roles: the built-in definitions, the explicit assignments the
actor may see (spec §1.2, §A.3.10), one at a time or a page of them, and why a user may or may
not do a task (``explain_for``: ``remit explain`` and ``/remit/explain``), or approve a request
(``explain_approval_for``: ``--request``, ``?request=``).

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries).
Each function takes the actor's ``Ctx`` and applies its visibility itself: an assignment or a
catalog the actor may not see is ``NotFound``, never ``Forbidden``. Asking why *someone else* may
act is the one refusal (``Forbidden``): that person is known, only their rights are not the
asker's to read.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, or_, select

from remit import listing, validation
from remit.authz.actor import TENANT, Actor, load_actor
from remit.authz.approval_reasons import ApprovalExplanation, explain_approval
from remit.authz.decide import Explanation, can, explain
from remit.authz.groups import explain_group_change, explain_group_onboarding
from remit.authz.relations import may_see_request
from remit.authz.roles import EM_ROLES, EmRole
from remit.authz.tasks import Task
from remit.authz.visibility import catalogs_with_task
from remit.context import Ctx
from remit.directory.queries import find_user, get_group, principals_by_id
from remit.errors import Forbidden, Invalid, NotFound
from remit.listing import F, ListOptions, Page
from remit.models.authz import RoleAssignment
from remit.models.catalogs import Catalog
from remit.models.directory import Group, User
from remit.models.lifecycle import AssignmentRequest

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
    if can(ctx.actor, Task.TENANT_ROLES_READ):
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
    return principals_by_id(ctx.session, {a.principal_id for a in assignments})


# ---------------------------------------------------------------- why a task is allowed


def role_catalog(ctx: Ctx, catalog_id: str) -> Catalog:
    """The catalog a role is held or asked about on; one the actor may not read is
    ``NotFound``, like one that does not exist."""
    catalog = ctx.session.get(Catalog, catalog_id) if validation.usable_id(catalog_id) else None
    if catalog is None or not can(ctx.actor, Task.CATALOG_READ, catalog_id):
        raise NotFound(f"catalog {catalog_id} was not found")
    return catalog


def _asked_about(ctx: Ctx, user: str, *, may_ask_others: bool) -> User | None:
    """The user an explanation is about, or None for the actor themself (named by name or id).

    Asking about someone else needs the tenant role-reading right, or ``may_ask_others`` (the
    right the question's catalog gives); else ``Forbidden``."""
    if user.lower() in (ctx.actor.name.lower(), ctx.actor.user_id):
        return None
    target = find_user(ctx, user)
    if (
        target.id != ctx.actor.user_id
        and not can(ctx.actor, Task.TENANT_ROLES_READ)
        and not may_ask_others
    ):
        raise Forbidden("you may explain only your own rights here")
    return target


def explain_for(
    ctx: Ctx, *, user: str, task: str, catalog_id: str | None, group_id: str | None = None
) -> Explanation:
    """Why ``user`` may or may not do ``task`` (on ``catalog_id``), with names resolved.

    With ``group_id`` the question is whether ``user`` may change that group's members or
    owners (``task`` must then be ``directory:groups:manage``): the group rule of
    ``authz.groups``, which also weighs the roles the group holds; or, with the task
    ``catalog:resources:manage`` and ``catalog_id``, whether ``user`` may add the group to
    that catalog as a resource (spec §2.2, and the same roles).

    Anyone may ask about themself; asking about others needs the tenant role-reading right, or
    the right to manage roles on the named catalog.
    """
    try:
        wanted = Task(task)
    except ValueError as exc:
        raise Invalid(
            f"unknown task {task!r}; see `remit explain --help` for the list", target="task"
        ) from exc
    group = None
    if group_id is not None:
        if (wanted, catalog_id is None) not in (
            (Task.GROUPS_MANAGE, True),
            (Task.CATALOG_RESOURCES_MANAGE, False),
        ):
            raise Invalid(
                f"a group is named only with the task {Task.GROUPS_MANAGE.value} and no "
                f"catalog, or {Task.CATALOG_RESOURCES_MANAGE.value} and a catalog",
                target="group",
            )
        group = get_group(ctx, group_id)
    catalog = role_catalog(ctx, catalog_id) if catalog_id is not None else None
    manages_roles = catalog is not None and can(ctx.actor, Task.CATALOG_ROLES_MANAGE, catalog.id)
    target = _asked_about(ctx, user, may_ask_others=manages_roles)
    subject = ctx.actor if target is None else load_actor(ctx.session, target.id, now=ctx.now)
    # Rows unpack as tuples (Result.tuples() is deprecated in SQLAlchemy 2.1).
    names = dict(
        ctx.session.execute(
            select(Group.id, Group.display_name).where(Group.id.in_(subject.group_ids))
        ).all()
    )
    names.update(
        ctx.session.execute(
            select(Catalog.id, Catalog.display_name).where(
                Catalog.id.in_({g.scope for g in subject.grants if g.scope != TENANT})
            )
        ).all()
    )
    if group is not None and catalog is not None:
        return explain_group_onboarding(
            ctx.session, subject, group, catalog, ctx.now, viewer=ctx.actor, names=names
        )
    if group is not None:
        return explain_group_change(
            ctx.session, subject, group, ctx.now, viewer=ctx.actor, names=names
        )
    return explain(subject, wanted, catalog_id, names)


def explain_approval_for(ctx: Ctx, *, user: str, request_id: str) -> ApprovalExplanation:
    """Why ``user`` may or may not approve (or deny) the request now, in words: the relationship
    rules of ``authz.relations`` (the approvers named on the open stage, escalation, nobody
    decides their own request), through ``authz.approval_reasons``.

    The request must be one the actor may see (else ``NotFound``). Anyone may ask about
    themself; asking about others needs the tenant role-reading right, or the right to read the
    requests of the request's catalog.
    """
    found = (
        ctx.session.get(AssignmentRequest, request_id) if validation.usable_id(request_id) else None
    )
    if found is None or not may_see_request(ctx.session, ctx.actor, found):
        raise NotFound(f"assignment request {request_id} was not found")
    target = _asked_about(
        ctx, user, may_ask_others=can(ctx.actor, Task.REQUEST_READ, found.catalog_id)
    )
    subject: Actor = (
        ctx.actor if target is None else load_actor(ctx.session, target.id, now=ctx.now)
    )
    person = target if target is not None else ctx.session.get(User, ctx.actor.user_id)
    name = person.display_name if person is not None else subject.name
    return explain_approval(ctx.session, subject, name, found)
