"""Access package use cases (spec §4, without policies and requests).

Reads are in ``queries``: every change starts by reading the package under its read rule (one
the actor may not read is ``NotFound``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from remit import validation
from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.catalogs.operations import GENERAL_CATALOG_ID
from remit.catalogs.queries import get_catalog
from remit.context import Ctx
from remit.errors import Conflict, Invalid, NotFound
from remit.models.catalogs import CatalogResource, ResourceRole, ResourceScope
from remit.models.directory import Group
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.packages import (
    AccessPackage,
    IncompatibleGroup,
    IncompatiblePackage,
    ResourceRoleScope,
)
from remit.models.vocabulary import Activity
from remit.packages.queries import get_package

TARGET = "AccessPackage"


def audit(ctx: Ctx, package: AccessPackage, activity: Activity, **event: Any) -> None:
    """One audit event about ``package`` (its catalog's, so that the catalog's readers see it);
    ``event`` carries the operation type and the before/after values."""
    ctx.audit(
        activity,
        target_type=TARGET,
        target_id=package.id,
        target_name=package.display_name,
        catalog_id=package.catalog_id,
        **event,
    )


def create_package(
    ctx: Ctx,
    *,
    display_name: str,
    catalog_id: str | None = None,
    description: str | None = None,
    is_hidden: bool = False,
) -> AccessPackage:
    catalog = get_catalog(ctx, catalog_id or GENERAL_CATALOG_ID)
    authorize(ctx.actor, Task.PACKAGE_CREATE, catalog.id)
    package = AccessPackage(
        catalog_id=catalog.id,
        display_name=validation.display_name(display_name),
        description=validation.optional_text(description, "description"),
        is_hidden=is_hidden,
        created_at=ctx.now,
        modified_at=ctx.now,
        created_by=ctx.actor.user_id,
    )
    ctx.session.add(package)
    ctx.session.flush()
    audit(ctx, package, Activity.CREATE_PACKAGE, operation_type="Add", after=snapshot(package))
    return package


EDITABLE = {"displayName", "description", "isHidden", "catalog", "catalogId"}


def update_package(ctx: Ctx, package_id: str, changes: dict[str, Any]) -> AccessPackage:
    package = get_package(ctx, package_id)
    # Authorize before validating: any PATCH other than hiding alone (even an empty one, which
    # changes nothing) needs the edit right, so a reader never gets a 2xx or a validation hint.
    if set(changes) != {"isHidden"}:
        authorize(ctx.actor, Task.PACKAGE_UPDATE, package.catalog_id)
    if "isHidden" in changes:
        authorize(ctx.actor, Task.PACKAGE_HIDE, package.catalog_id)
    validation.only_editable(changes, EDITABLE)
    wanted_catalog = changes.get("catalogId") or (changes.get("catalog") or {}).get("id")
    if wanted_catalog is not None and wanted_catalog != package.catalog_id:
        raise Invalid("an access package cannot move to another catalog", target="catalog")
    if "isHidden" in changes and not isinstance(changes["isHidden"], bool):
        raise Invalid("isHidden must be true or false", target="isHidden")
    before = snapshot(package)
    if "displayName" in changes:
        package.display_name = validation.display_name(changes["displayName"])
    if "description" in changes:
        package.description = validation.optional_text(changes["description"], "description")
    if "isHidden" in changes:
        package.is_hidden = changes["isHidden"]
    after = snapshot(package)
    if after != before:
        package.modified_at = ctx.now
        audit(
            ctx,
            package,
            Activity.UPDATE_PACKAGE,
            operation_type="Update",
            before=before,
            after=after,
        )
    return package


def delete_package(ctx: Ctx, package_id: str) -> None:
    package = get_package(ctx, package_id)
    authorize(ctx.actor, Task.PACKAGE_DELETE, package.catalog_id)
    # Spec §4.5: only without active assignments (of any user, even a disabled one), and, our
    # addition, without open requests, which would otherwise vanish under their approvers.
    active = ctx.session.execute(
        select(Assignment.id)
        .where(Assignment.access_package_id == package.id, Assignment.active_key.is_not(None))
        .limit(1)
    ).first()
    if active is not None:
        raise Conflict(
            "the access package has active assignments; remove them first",
            code="AccessPackageHasActiveAssignments",
        )
    pending = ctx.session.execute(
        select(AssignmentRequest.id)
        .where(
            AssignmentRequest.access_package_id == package.id,
            AssignmentRequest.open_key.is_not(None),
        )
        .limit(1)
    ).first()
    if pending is not None:
        raise Conflict(
            "the access package has open requests; cancel them first",
            code="AccessPackageHasOpenRequests",
        )
    ctx.session.delete(package)
    audit(ctx, package, Activity.DELETE_PACKAGE, operation_type="Delete", before=snapshot(package))


def snapshot(package: AccessPackage) -> dict[str, Any]:
    return {
        "displayName": package.display_name,
        "description": package.description,
        "isHidden": package.is_hidden,
        "catalogId": package.catalog_id,
    }


# ---------------------------------------------------------------- resource role scopes


def rrs_id(rrs: ResourceRoleScope) -> str:
    return f"{rrs.role_id}_{rrs.scope_id}"


def catalog_role(
    ctx: Ctx,
    catalog_id: str,
    role_id: str | None,
    origin_id: str | None,
    resource_id: str | None,
) -> ResourceRole:
    if not all(validation.usable_id(i) for i in (role_id, origin_id, resource_id) if i):
        raise Invalid("the role is not a resource role of this package's catalog", target="role")
    query = (
        select(ResourceRole)
        .join(CatalogResource, CatalogResource.id == ResourceRole.resource_id)
        .where(CatalogResource.catalog_id == catalog_id)
    )
    if role_id:
        query = query.where(ResourceRole.id == role_id)
    elif origin_id:
        query = query.where(ResourceRole.origin_id == origin_id)
        if resource_id:
            query = query.where(ResourceRole.resource_id == resource_id)
    else:
        raise Invalid("role.id or role.originId is required", target="role")
    roles = ctx.session.execute(query).scalars().all()
    if len(roles) != 1:
        raise Invalid(
            "the role is not a resource role of this package's catalog"
            if not roles
            else "the role is ambiguous: name its resource",
            target="role",
        )
    return roles[0]


def role_scope(
    ctx: Ctx, role: ResourceRole, scope_id: str | None, origin_id: str | None
) -> ResourceScope:
    if not all(validation.usable_id(i) for i in (scope_id, origin_id) if i):
        raise Invalid("the scope does not belong to the role's resource", target="scope")
    query = select(ResourceScope).where(ResourceScope.resource_id == role.resource_id)
    if scope_id:
        query = query.where(ResourceScope.id == scope_id)
    elif origin_id:
        query = query.where(ResourceScope.origin_id == origin_id)
    else:
        query = query.where(ResourceScope.is_root_scope.is_(True))
    scope = ctx.session.execute(query).scalars().first()
    if scope is None:
        raise Invalid("the scope does not belong to the role's resource", target="scope")
    return scope


# ---------------------------------------------------------------- separation of duties


def _marking(ctx: Ctx, package_id: str) -> AccessPackage:
    """A package whose incompatibilities the actor may change."""
    package = get_package(ctx, package_id)
    authorize(ctx.actor, Task.PACKAGE_INCOMPATIBLE_MANAGE, package.catalog_id)
    return package


def _unmark(
    ctx: Ctx,
    link_type: type[IncompatiblePackage | IncompatibleGroup],
    key: tuple[str, str],
    missing: str,
) -> None:
    """Delete the incompatibility ``key`` (package id, the other's id); ``NotFound`` if there
    is none (an id with a control character names none)."""
    link = ctx.session.get(link_type, key) if validation.usable_id(key[1]) else None
    if link is None:
        raise NotFound(missing)
    ctx.session.delete(link)


def add_incompatible_package(ctx: Ctx, package_id: str, other_id: str) -> None:
    package = _marking(ctx, package_id)
    other = get_package(ctx, other_id)
    if other.id == package.id:
        raise Invalid("an access package cannot be incompatible with itself")
    if ctx.session.get(IncompatiblePackage, (package.id, other.id)) is not None:
        raise Conflict("the access packages are already marked incompatible")
    ctx.session.add(IncompatiblePackage(access_package_id=package.id, incompatible_id=other.id))
    after = {"incompatibleAccessPackageId": other.id}
    audit(ctx, package, Activity.ADD_INCOMPATIBLE_PACKAGE, operation_type="Add", after=after)


def remove_incompatible_package(ctx: Ctx, package_id: str, other_id: str) -> None:
    package = _marking(ctx, package_id)
    missing = "the access packages are not marked incompatible"
    _unmark(ctx, IncompatiblePackage, (package.id, other_id), missing)
    before = {"incompatibleAccessPackageId": other_id}
    audit(
        ctx, package, Activity.REMOVE_INCOMPATIBLE_PACKAGE, operation_type="Delete", before=before
    )


def add_incompatible_group(ctx: Ctx, package_id: str, group_id: str) -> None:
    package = _marking(ctx, package_id)
    if not validation.usable_id(group_id) or ctx.session.get(Group, group_id) is None:
        raise NotFound(f"group {group_id!r} was not found")
    if ctx.session.get(IncompatibleGroup, (package.id, group_id)) is not None:
        raise Conflict("the group is already marked incompatible")
    ctx.session.add(IncompatibleGroup(access_package_id=package.id, group_id=group_id))
    after = {"incompatibleGroupId": group_id}
    audit(ctx, package, Activity.ADD_INCOMPATIBLE_GROUP, operation_type="Add", after=after)


def remove_incompatible_group(ctx: Ctx, package_id: str, group_id: str) -> None:
    package = _marking(ctx, package_id)
    _unmark(ctx, IncompatibleGroup, (package.id, group_id), "the group is not marked incompatible")
    before = {"incompatibleGroupId": group_id}
    audit(ctx, package, Activity.REMOVE_INCOMPATIBLE_GROUP, operation_type="Delete", before=before)
