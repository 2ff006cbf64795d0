"""Adding a resource role to an access package, or removing one: a lifecycle use case, because
the change reaches every active assignee in the same transaction (spec §4.2).
"""

from __future__ import annotations

from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.errors import Conflict
from remit.lifecycle import assignments, delivery
from remit.models.packages import ResourceRoleScope
from remit.models.vocabulary import Activity
from remit.packages import operations as packages
from remit.packages import queries as package_queries


def add_resource_role_scope(
    ctx: Ctx,
    package_id: str,
    *,
    role_id: str | None = None,
    role_origin_id: str | None = None,
    resource_id: str | None = None,
    scope_id: str | None = None,
    scope_origin_id: str | None = None,
) -> ResourceRoleScope:
    package = package_queries.get_package(ctx, package_id)
    authorize(ctx.actor, Task.PACKAGE_RESOURCE_ROLES_MANAGE, package.catalog_id)
    role = packages.catalog_role(ctx, package.catalog_id, role_id, role_origin_id, resource_id)
    scope = packages.role_scope(ctx, role, scope_id, scope_origin_id)
    if ctx.session.get(ResourceRoleScope, (package.id, role.id, scope.id)) is not None:
        raise Conflict("the package already holds this resource role")
    rrs = ResourceRoleScope(
        access_package_id=package.id, role_id=role.id, scope_id=scope.id, created_at=ctx.now
    )
    ctx.session.add(rrs)
    package.modified_at = ctx.now
    ctx.session.flush()
    assignments.package_roles_changed(ctx, package.id)
    packages.audit(
        ctx,
        package,
        Activity.ADD_RESOURCE_ROLE,
        operation_type="Add",
        after={
            "roleId": role.id,
            "role": role.display_name,
            "roleOriginId": role.origin_id,
            "scopeId": scope.id,
        },
    )
    return rrs


def remove_resource_role_scope(ctx: Ctx, package_id: str, rrs: str) -> None:
    found = package_queries.get_resource_role_scope(ctx, package_id, rrs)
    package = package_queries.get_package(ctx, package_id)
    authorize(ctx.actor, Task.PACKAGE_RESOURCE_ROLES_MANAGE, package.catalog_id)
    before = delivery.package_roles(ctx.session, [package.id])[package.id]
    ctx.session.delete(found)
    package.modified_at = ctx.now
    ctx.session.flush()
    after = delivery.package_roles(ctx.session, [package.id])[package.id]
    assignments.package_roles_changed(ctx, package.id, [r for r in before if r not in after])
    packages.audit(
        ctx,
        package,
        Activity.REMOVE_RESOURCE_ROLE,
        operation_type="Delete",
        before={"roleId": found.role_id, "scopeId": found.scope_id},
    )
