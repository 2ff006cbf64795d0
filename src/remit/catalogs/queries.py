"""Reading catalogs and what they hold: every list and detail read, with its visibility filter.

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries).
A catalog is readable with ``CATALOG_READ`` on it; its resources, their roles and scopes, and
its resource requests are readable with the catalog. Anything the actor may not read is
``NotFound``, exactly like what does not exist. The helpers that fill in a navigation
(``roles_of``, ``resources_of``, ...) take objects already read here: they can only widen a
page the actor was allowed to see.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, or_, select

from remit import listing, validation
from remit.authz.decide import can
from remit.authz.tasks import Task
from remit.authz.visibility import catalog_filter
from remit.context import Ctx
from remit.db import by_id
from remit.directory.queries import application_id_of
from remit.errors import NotFound
from remit.listing import F, ListOptions, Page
from remit.lookup import by_parent
from remit.models.catalogs import (
    Catalog,
    CatalogResource,
    ResourceRequest,
    ResourceRole,
    ResourceScope,
)

# What each list may be filtered and ordered on (Graph's property names).
CATALOG_FIELDS = {
    "id": F(Catalog.id),
    "displayName": F(Catalog.display_name),
    "description": F(Catalog.description),
    "state": F(Catalog.state, enum=True),
    "catalogType": F(Catalog.catalog_type, enum=True),
    "isExternallyVisible": F(Catalog.is_externally_visible),
    "createdDateTime": F(Catalog.created_at),
    "modifiedDateTime": F(Catalog.modified_at),
}
RESOURCE_FIELDS = {
    "id": F(CatalogResource.id),
    "displayName": F(CatalogResource.display_name),
    "originId": F(CatalogResource.origin_id),
    "originSystem": F(CatalogResource.origin_system, enum=True),
}
ROLE_FIELDS = {
    "id": F(ResourceRole.id),
    "displayName": F(ResourceRole.display_name),
    "originId": F(ResourceRole.origin_id),
    "originSystem": F(ResourceRole.origin_system, enum=True),
    "resource/id": F(ResourceRole.resource_id),
}
SCOPE_FIELDS = {
    "id": F(ResourceScope.id),
    "displayName": F(ResourceScope.display_name),
    "originId": F(ResourceScope.origin_id),
    "originSystem": F(ResourceScope.origin_system, enum=True),
    "isRootScope": F(ResourceScope.is_root_scope),
    "resource/id": F(ResourceScope.resource_id),
}
REQUEST_FIELDS = {
    "id": F(ResourceRequest.id),
    "requestType": F(ResourceRequest.request_type, enum=True),
    "state": F(ResourceRequest.state, enum=True),
    "catalog/id": F(ResourceRequest.catalog_id),
    "createdDateTime": F(ResourceRequest.created_at),
}


# ---------------------------------------------------------------- catalogs


def visible_catalogs(ctx: Ctx) -> Select[Catalog]:
    return select(Catalog).where(catalog_filter(ctx.actor, Task.CATALOG_READ, Catalog.id))


def get_catalog(ctx: Ctx, catalog_id: str) -> Catalog:
    """The catalog, or NotFound when it does not exist *or* the actor may not see it."""
    if not validation.usable_id(catalog_id) or not can(ctx.actor, Task.CATALOG_READ, catalog_id):
        raise NotFound(f"catalog {catalog_id!r} was not found")
    catalog = ctx.session.get(Catalog, catalog_id)
    if catalog is None:
        raise NotFound(f"catalog {catalog_id} was not found")
    return catalog


def catalogs(ctx: Ctx, options: ListOptions) -> Page[Catalog]:
    """A page of the catalogs the actor may read, by id."""
    return listing.page(
        ctx.session, visible_catalogs(ctx), key=Catalog.id, fields=CATALOG_FIELDS, options=options
    )


def all_catalogs(ctx: Ctx) -> list[Catalog]:
    """Every catalog the actor may read, by name (a listing for a person, not a page)."""
    stmt = visible_catalogs(ctx).order_by(Catalog.name_key)
    return list(ctx.session.execute(stmt).scalars())


def find_catalog(ctx: Ctx, name_or_id: str) -> Catalog:
    """A catalog the actor can see, by display name (case-insensitive) or id; any other is
    ``NotFound`` (no existence leaks)."""
    found = ctx.session.execute(
        visible_catalogs(ctx).where(
            or_(Catalog.name_key == name_or_id.lower(), Catalog.id == name_or_id)
        )
    ).scalar()
    if found is None:
        raise NotFound(f"no catalog {name_or_id!r}")
    return found


# ---------------------------------------------------------------- resources, roles, scopes


def resources(ctx: Ctx, catalog_id: str, options: ListOptions) -> Page[CatalogResource]:
    """A page of the resources of a catalog the actor may read."""
    catalog = get_catalog(ctx, catalog_id)
    stmt = select(CatalogResource).where(CatalogResource.catalog_id == catalog.id)
    return listing.page(
        ctx.session, stmt, key=CatalogResource.id, fields=RESOURCE_FIELDS, options=options
    )


def get_resource(ctx: Ctx, catalog_id: str, resource_id: str) -> CatalogResource:
    """A resource of a catalog the actor may read; a resource of another catalog is NotFound."""
    catalog = get_catalog(ctx, catalog_id)
    usable = validation.usable_id(resource_id)
    found = ctx.session.get(CatalogResource, resource_id) if usable else None
    if found is None or found.catalog_id != catalog.id:
        raise NotFound(f"resource {resource_id} was not found in this catalog")
    return found


def resource_roles(
    ctx: Ctx, catalog_id: str, resource_id: str, options: ListOptions
) -> Page[ResourceRole]:
    """A page of the roles of one resource of a catalog the actor may read."""
    resource = get_resource(ctx, catalog_id, resource_id)
    stmt = select(ResourceRole).where(ResourceRole.resource_id == resource.id)
    return listing.page(ctx.session, stmt, key=ResourceRole.id, fields=ROLE_FIELDS, options=options)


def resource_scopes(
    ctx: Ctx, catalog_id: str, resource_id: str, options: ListOptions
) -> Page[ResourceScope]:
    """A page of the scopes of one resource of a catalog the actor may read."""
    resource = get_resource(ctx, catalog_id, resource_id)
    stmt = select(ResourceScope).where(ResourceScope.resource_id == resource.id)
    return listing.page(
        ctx.session, stmt, key=ResourceScope.id, fields=SCOPE_FIELDS, options=options
    )


def catalog_resource_roles(ctx: Ctx, catalog_id: str, options: ListOptions) -> Page[ResourceRole]:
    """A page of the roles of every resource of a catalog the actor may read."""
    catalog = get_catalog(ctx, catalog_id)
    stmt = (
        select(ResourceRole)
        .join(CatalogResource, CatalogResource.id == ResourceRole.resource_id)
        .where(CatalogResource.catalog_id == catalog.id)
    )
    return listing.page(ctx.session, stmt, key=ResourceRole.id, fields=ROLE_FIELDS, options=options)


def catalog_resource_scopes(ctx: Ctx, catalog_id: str, options: ListOptions) -> Page[ResourceScope]:
    """A page of the scopes of every resource of a catalog the actor may read."""
    catalog = get_catalog(ctx, catalog_id)
    stmt = (
        select(ResourceScope)
        .join(CatalogResource, CatalogResource.id == ResourceScope.resource_id)
        .where(CatalogResource.catalog_id == catalog.id)
    )
    return listing.page(
        ctx.session, stmt, key=ResourceScope.id, fields=SCOPE_FIELDS, options=options
    )


def roles_of(ctx: Ctx, found: Sequence[CatalogResource]) -> dict[str, list[ResourceRole]]:
    """The roles of each of these resources (read here), by resource id, by name."""
    stmt = select(ResourceRole).order_by(ResourceRole.display_name)
    return by_parent(ctx.session, stmt, ResourceRole.resource_id, [r.id for r in found])


def scopes_of(ctx: Ctx, found: Sequence[CatalogResource]) -> dict[str, list[ResourceScope]]:
    """The scopes of each of these resources (read here), by resource id."""
    stmt = select(ResourceScope)
    return by_parent(ctx.session, stmt, ResourceScope.resource_id, [r.id for r in found])


def resources_of(
    ctx: Ctx, rows: Sequence[ResourceRole | ResourceScope | ResourceRequest]
) -> dict[str, CatalogResource]:
    """The resources these roles, scopes or requests (read here) name, by id, for one page in
    one round trip; a removed resource is absent (its requests still name it)."""
    return by_id(ctx.session, CatalogResource, (row.resource_id for row in rows))


def application_origin(ctx: Ctx, name_or_id: str) -> str:
    """The id of the application a person names, by display name or id, to onboard it; a name
    that matches none is returned as given, for the onboarding to refuse in its own words.
    Whether the actor may onboard it is the onboarding's decision (``resources.add_resource``);
    the lookup is the directory's name resolution."""
    return application_id_of(ctx.session, name_or_id) or name_or_id


# ---------------------------------------------------------------- resource requests


def visible_requests(ctx: Ctx) -> Select[ResourceRequest]:
    """Resource requests are readable with their catalog."""
    return select(ResourceRequest).where(
        catalog_filter(ctx.actor, Task.CATALOG_READ, ResourceRequest.catalog_id)
    )


def resource_requests(ctx: Ctx, options: ListOptions) -> Page[ResourceRequest]:
    """A page of the resource requests of the catalogs the actor may read."""
    return listing.page(
        ctx.session,
        visible_requests(ctx),
        key=ResourceRequest.id,
        fields=REQUEST_FIELDS,
        options=options,
    )


def get_resource_request(ctx: Ctx, request_id: str) -> ResourceRequest:
    """One resource request of a catalog the actor may read; any other is NotFound."""
    found = (
        ctx.session.get(ResourceRequest, request_id) if validation.usable_id(request_id) else None
    )
    if found is None or not can(ctx.actor, Task.CATALOG_READ, found.catalog_id):
        raise NotFound(f"resource request {request_id} was not found")
    return found


def request_catalogs(ctx: Ctx, requests: Sequence[ResourceRequest]) -> dict[str, Catalog]:
    """The catalogs of these resource requests (read here), by id, in one round trip."""
    return by_id(ctx.session, Catalog, (r.catalog_id for r in requests))
