"""Onboarding and removing catalog resources (spec §2): ``resourceRequests`` adminAdd/adminRemove.

A request needs the catalog task (owner or admin) *and* the right on the directory object
(:mod:`remit.authz.resources`). A group also needs the right to assign every role it holds,
directly or through nesting: the catalog's access packages change its members, and that is the
rule for changing them (:func:`remit.authz.groups.authorize_group_onboarding`, decision 0022).
Removal needs no more than §2.2: it is refused while a package uses the resource, so it changes
no membership. On success the resource is copied into the catalog with its
roles and a root scope, and the request is recorded as ``delivered``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import InstrumentedAttribute

from remit import validation
from remit.authz import relations
from remit.authz.decide import authorize
from remit.authz.groups import authorize_group_onboarding
from remit.authz.resources import (
    ResourceKind,
    group_kind,
    has_resource_right,
    resource_right_refusal,
)
from remit.authz.tasks import Task
from remit.catalogs.queries import get_catalog
from remit.context import Ctx
from remit.errors import Conflict, Forbidden, Invalid, NotFound
from remit.models.catalogs import CatalogResource, ResourceRequest, ResourceRole, ResourceScope
from remit.models.directory import (
    Application,
    AppRole,
    Group,
    Site,
    SiteRole,
)
from remit.models.packages import ResourceRoleScope
from remit.models.vocabulary import Activity, RequestState, RequestType

ORIGIN_SYSTEMS = {
    "aadgroup": "AadGroup",
    "aadapplication": "AadApplication",
    "sharepointonline": "SharePointOnline",
}
DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class _Origin:
    """The directory object behind a resource, with what §2.2 needs to know about it."""

    system: str
    id: str
    display_name: str
    description: str | None
    kind: ResourceKind
    roles: tuple[tuple[str, str], ...]  # (originId, displayName)


def origin_system(value: str | None) -> str:
    system = ORIGIN_SYSTEMS.get((value or "").lower())
    if system is None:
        raise Invalid(
            "originSystem must be AadGroup, AadApplication or SharePointOnline",
            target="resource.originSystem",
        )
    return system


def _lookup(ctx: Ctx, system: str, origin_id: str) -> tuple[_Origin, bool]:
    """The directory object and whether the actor owns (or administers) it."""
    uid = ctx.actor.user_id
    if system == "AadGroup":
        group = ctx.session.get(Group, origin_id)
        if group is None:
            raise NotFound(f"group {origin_id} was not found", target="resource.originId")
        if group.on_premises_sync_enabled:
            raise Invalid("groups synchronised from on-premises cannot be managed here")
        kind = group_kind(group)
        roles: tuple[tuple[str, str], ...] = (("Owner_" + group.id, "Owner"),)
        if not group.membership_rule:  # dynamic groups: Owner only (spec §2.1)
            roles = (("Member_" + group.id, "Member"), *roles)
        owner = relations.owns_group(ctx.session, group.id, uid, ctx.now)
        return _Origin(system, group.id, group.display_name, group.description, kind, roles), owner
    if system == "AadApplication":
        app = ctx.session.get(Application, origin_id)
        if app is None:
            raise NotFound(f"application {origin_id} was not found", target="resource.originId")
        roles = _roles(ctx, AppRole, AppRole.application_id, app.id) or (
            (DEFAULT_ACCESS_ROLE_ID, "Default Access"),
        )
        owner = relations.owns_application(ctx.session, app.id, uid)
        origin = _Origin(
            system, app.id, app.display_name, app.description, ResourceKind.APPLICATION, roles
        )
        return origin, owner
    site = (
        ctx.session.get(Site, origin_id)
        or ctx.session.execute(select(Site).where(Site.web_url == origin_id)).scalar_one_or_none()
    )
    if site is None:
        raise NotFound(f"site {origin_id} was not found", target="resource.originId")
    roles = _roles(ctx, SiteRole, SiteRole.site_id, site.id)
    admin = relations.administers_site(ctx.session, site.id, uid)
    origin = _Origin(system, site.id, site.display_name, site.description, ResourceKind.SITE, roles)
    return origin, admin


def _roles(
    ctx: Ctx,
    model: type[AppRole | SiteRole],
    parent: InstrumentedAttribute[str],
    parent_id: str,
) -> tuple[tuple[str, str], ...]:
    """(originId, displayName) of an application's or a site's roles, by name."""
    rows = ctx.session.execute(
        select(model.id, model.display_name).where(parent == parent_id).order_by(model.display_name)
    ).all()
    return tuple((role_id, name) for role_id, name in rows)


def _check_right(ctx: Ctx, origin: _Origin, owner: bool) -> None:
    if not has_resource_right(ctx.actor, origin.kind, is_owner=owner):
        raise Forbidden(
            resource_right_refusal(origin.kind, origin.display_name), code="CallerNotResourceOwner"
        )


def add_resource(
    ctx: Ctx,
    *,
    catalog_id: str,
    origin_system_name: str | None,
    origin_id: str | None,
) -> ResourceRequest:
    catalog = get_catalog(ctx, catalog_id)
    authorize(ctx.actor, Task.CATALOG_RESOURCES_MANAGE, catalog.id)
    system = origin_system(origin_system_name)
    if not origin_id:
        raise Invalid("resource.originId is required", target="resource.originId")
    if not validation.usable_id(origin_id):
        raise NotFound(f"{origin_id!r} was not found", target="resource.originId")
    origin, owner = _lookup(ctx, system, origin_id)
    _check_right(ctx, origin, owner)
    # The group is in the session since _lookup: no round trip.
    if system == "AadGroup" and (group := ctx.session.get(Group, origin.id)) is not None:
        authorize_group_onboarding(ctx.session, ctx.actor, group, catalog.display_name, ctx.now)
    if ctx.session.execute(
        select(CatalogResource.id).where(
            CatalogResource.catalog_id == catalog.id,
            CatalogResource.origin_system == system,
            CatalogResource.origin_id == origin.id,
        )
    ).first():
        raise Conflict(f"{origin.display_name} is already in catalog {catalog.display_name}")
    resource = CatalogResource(
        catalog_id=catalog.id,
        origin_system=system,
        origin_id=origin.id,
        display_name=origin.display_name,
        description=origin.description,
        created_at=ctx.now,
        modified_at=ctx.now,
    )
    ctx.session.add(resource)
    ctx.session.flush()
    for role_origin, role_name in origin.roles:
        ctx.session.add(
            ResourceRole(
                resource_id=resource.id,
                origin_system=system,
                origin_id=role_origin,
                display_name=role_name,
            )
        )
    ctx.session.add(
        ResourceScope(
            resource_id=resource.id,
            origin_system=system,
            origin_id=origin.id,
            display_name="Root",
            description="Root scope",
            is_root_scope=True,
        )
    )
    roles = [name for _, name in origin.roles]
    return _record(
        ctx,
        RequestType.ADMIN_ADD,
        resource,
        Activity.ADD_RESOURCE_TO_CATALOG,
        operation_type="Add",
        after={"originSystem": system, "originId": origin.id, "roles": roles},
    )


def remove_resource(
    ctx: Ctx,
    *,
    catalog_id: str,
    resource_id: str | None,
    origin_system_name: str | None,
    origin_id: str | None,
) -> ResourceRequest:
    catalog = get_catalog(ctx, catalog_id)
    authorize(ctx.actor, Task.CATALOG_RESOURCES_MANAGE, catalog.id)
    query = select(CatalogResource).where(CatalogResource.catalog_id == catalog.id)
    if not all(validation.usable_id(i) for i in (resource_id, origin_id) if i):
        raise NotFound("the resource is not in this catalog", target="resource")
    if resource_id:
        query = query.where(CatalogResource.id == resource_id)
    elif origin_id:
        query = query.where(
            CatalogResource.origin_system == origin_system(origin_system_name),
            CatalogResource.origin_id == origin_id,
        )
    else:
        raise Invalid("name the resource by resource.id or resource.originId", target="resource")
    resource = ctx.session.execute(query).scalar_one_or_none()
    if resource is None:
        raise NotFound("the resource is not in this catalog", target="resource")
    try:
        origin, owner = _lookup(ctx, resource.origin_system, resource.origin_id)
    except NotFound:
        pass  # the directory object is gone: the catalog owner may clean up what is left
    else:
        _check_right(ctx, origin, owner)
    in_use = ctx.session.execute(
        select(
            exists().where(
                ResourceRoleScope.role_id.in_(
                    select(ResourceRole.id).where(ResourceRole.resource_id == resource.id)
                )
            )
        )
    ).scalar()
    if in_use:
        raise Conflict(
            f"{resource.display_name} is used by an access package; remove it from the "
            "package first"
        )
    ctx.session.delete(resource)
    return _record(
        ctx,
        RequestType.ADMIN_REMOVE,
        resource,
        Activity.REMOVE_RESOURCE_FROM_CATALOG,
        operation_type="Delete",
        before={"originSystem": resource.origin_system, "originId": resource.origin_id},
    )


def _record(
    ctx: Ctx,
    request_type: RequestType,
    resource: CatalogResource,
    activity: Activity,
    **event: Any,
) -> ResourceRequest:
    """The delivered resource request that records a change of ``resource`` in its catalog,
    and the change's audit event (``event``: the operation type, before/after values)."""
    request = ResourceRequest(
        request_type=request_type,
        state=RequestState.DELIVERED,
        catalog_id=resource.catalog_id,
        resource_id=resource.id,
        origin_system=resource.origin_system,
        origin_id=resource.origin_id,
        display_name=resource.display_name,
        requestor_id=ctx.actor.user_id,
        created_at=ctx.now,
    )
    ctx.session.add(request)
    ctx.session.flush()
    ctx.audit(
        activity,
        target_type="AccessPackageResource",
        target_id=resource.id,
        target_name=resource.display_name,
        catalog_id=resource.catalog_id,
        **event,
    )
    return request
