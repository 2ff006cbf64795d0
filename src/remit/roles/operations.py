"""Entitlement-management role assignments: create and delete (spec §1.3, §A.3.10); reading
them is ``roles.queries``.

No amplification: the catalog-creator role (tenant scope) is an administrator's to give; catalog
roles are given by that catalog's owners or an administrator, and only on that catalog.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from remit import validation
from remit.authz.actor import CATALOG_SCOPE_PREFIX, TENANT, load_actor
from remit.authz.decide import Explanation, authorize, can, explain
from remit.authz.groups import explain_group_change, explain_group_onboarding
from remit.authz.roles import CATALOG_OWNER, EM_ROLES, EmRole, assigning_task
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.directory.operations import find_user, get_group, principal_type
from remit.errors import Conflict, Forbidden, Invalid, NotFound
from remit.models.authz import RoleAssignment
from remit.models.catalogs import Catalog
from remit.models.directory import Group
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


def _visible_catalog(ctx: Ctx, catalog_id: str) -> Catalog:
    catalog = ctx.session.get(Catalog, catalog_id) if validation.usable_id(catalog_id) else None
    if catalog is None or not can(ctx.actor, Task.CATALOG_READ, catalog_id):
        raise NotFound(f"catalog {catalog_id} was not found")
    return catalog


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
    catalog = _visible_catalog(ctx, catalog_id) if catalog_id else None
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
    ctx.audit(
        "Create role assignment",
        operation_type="Assign",
        target_type="RoleAssignment",
        target_id=assignment.id,
        target_name=role.portal_name,
        catalog_id=assignment.catalog_id,
        after={
            "principalId": principal_id,
            "principalType": ptype,
            "roleDefinitionId": role.id,
            "appScopeId": scope,
        },
        category="RoleManagement",
    )
    return assignment


def delete_role_assignment(ctx: Ctx, assignment_id: str) -> None:
    assignment = queries.role_assignment(ctx, assignment_id)
    role = _role(assignment.role_definition_id)
    authorize(ctx.actor, assigning_task(role), assignment.catalog_id)
    ctx.session.delete(assignment)
    ctx.audit(
        "Delete role assignment",
        operation_type="Unassign",
        target_type="RoleAssignment",
        target_id=assignment.id,
        target_name=role.portal_name,
        catalog_id=assignment.catalog_id,
        before={
            "principalId": assignment.principal_id,
            "roleDefinitionId": role.id,
            "appScopeId": assignment.app_scope_id,
        },
        category="RoleManagement",
    )


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
    catalog = _visible_catalog(ctx, catalog_id) if catalog_id is not None else None
    target = (
        find_user(ctx, user)
        if user.lower() not in (ctx.actor.name.lower(), ctx.actor.user_id)
        else None
    )
    if (
        target is not None
        and target.id != ctx.actor.user_id
        and not (
            can(ctx.actor, Task.TENANT_ROLES_READ)
            or (catalog_id is not None and can(ctx.actor, Task.CATALOG_ROLES_MANAGE, catalog_id))
        )
    ):
        raise Forbidden("you may explain only your own rights here")
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
