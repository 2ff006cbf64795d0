"""Catalogs, their resources/roles/scopes, and resource requests (graph-api §A.3.1 and §A.3.2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Response

from remit.api import fast_reads, shapes
from remit.api.bodies import CatalogCreate, CatalogUpdate, ResourceRequestCreate
from remit.api.calls import Paged, Plain, Single, parameters, with_path
from remit.api.collection import Navigation, Render, rendering
from remit.api.routes_packages import PACKAGE_EXPANDS, Expand, render_packages
from remit.api.state import identity
from remit.catalogs import operations as ops
from remit.catalogs import queries as catalogs
from remit.catalogs import resources as res
from remit.context import Ctx
from remit.errors import Invalid
from remit.listing import Page
from remit.models.catalogs import (
    Catalog,
    CatalogResource,
    ResourceRequest,
    ResourceRole,
    ResourceScope,
)
from remit.models.vocabulary import RequestType
from remit.packages import queries as packages

EM = "/v1.0/identityGovernance/entitlementManagement"
CATALOGS = "identityGovernance/entitlementManagement/catalogs"
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=EM, tags=["catalogs"], dependencies=[Depends(identity)])
T = TypeVar("T")


_render_catalogs = rendering(
    shapes.catalog,
    {"accessPackages": Navigation.many(packages.packages_in, shapes.access_package)},
)


@router.get("/catalogs")
def list_catalogs(call: Paged) -> dict[str, Any]:
    return call.page(
        catalogs.catalogs,
        _render_catalogs(call.q.expand),
        context=CATALOGS,
        expandable=("accessPackages",),
    )


@router.post("/catalogs", status_code=201)
def create_catalog(body: CatalogCreate, call: Plain) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
        catalog = ops.create_catalog(
            ctx,
            display_name=body.displayName,
            description=body.description,
            state=body.state,
            is_externally_visible=body.isExternallyVisible,
        )
        return call.entity(CATALOGS, shapes.catalog(catalog))


router.get("/catalogs/{catalog_id}", **fast_reads.SINGLE_READ)(fast_reads.get_catalog)


@router.patch("/catalogs/{catalog_id}", status_code=204)
def update_catalog(catalog_id: str, body: CatalogUpdate, call: Plain) -> Response:
    return call.done(lambda ctx: ops.update_catalog(ctx, catalog_id, body.changes()))


@router.delete("/catalogs/{catalog_id}", status_code=204)
def delete_catalog(catalog_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.delete_catalog(ctx, catalog_id))


# ---------------------------------------------------------------- resources


_render_resources = rendering(
    shapes.resource,
    {
        "roles": Navigation.many(catalogs.roles_of, shapes.resource_role),
        "scopes": Navigation.many(catalogs.scopes_of, shapes.resource_scope),
    },
)


def _resource(row: ResourceRole | ResourceScope, found: dict[str, CatalogResource]) -> Any:
    resource = found.get(row.resource_id)
    return shapes.resource(resource) if resource else None


# A role's or a scope's resource.
OF_RESOURCE: dict[str, Navigation[Any, Any]] = {
    "resource": Navigation(catalogs.resources_of, _resource),
}


_render_roles = rendering(shapes.resource_role, OF_RESOURCE)
_render_scopes = rendering(shapes.resource_scope, OF_RESOURCE)


def _in_catalog(catalog_id: str) -> Callable[[Ctx], object]:
    return lambda ctx: catalogs.get_catalog(ctx, catalog_id)


@router.get("/catalogs/{catalog_id}/resources")
def list_resources(catalog_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, options: catalogs.resources(ctx, catalog_id, options),
        _render_resources(call.q.expand),
        expandable=("roles", "scopes"),
        # The catalog was found by this id, so it is the catalog's own.
        context=f"{CATALOGS}('{catalog_id}')/resources",
        parent=_in_catalog(catalog_id),
    )


@router.get("/catalogs/{catalog_id}/resources/{resource_id}")
def get_resource(catalog_id: str, resource_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        f"{CATALOGS}/resources",
        lambda ctx: catalogs.get_resource(ctx, catalog_id, resource_id),
        _render_resources(call.q.expand),
    )


def _catalog_list(
    segment: str,
    name: str,
    query: Callable[..., Page[T]],
    parent: Callable[..., object],
    render: Callable[[Expand], Render[T]],
    expandable: Sequence[str],
) -> None:
    """``GET catalogs/{catalog_id}/<segment>``: what a catalog (or one of its resources, when
    ``segment`` names one) holds. ``parent`` reads that object first (one the caller may not see
    is a 404 before any 400); ``query`` and ``parent`` take the path's ids in order."""
    path = f"/catalogs/{{catalog_id}}/{segment}"
    names = parameters(path)

    def list_in_catalog(call: Paged, **ids: str) -> dict[str, Any]:
        found = [ids[n] for n in names]
        return call.page(
            lambda ctx, options: query(ctx, *found, options),
            render(call.q.expand),
            expandable=expandable,
            context=f"{CATALOGS}/{'/'.join(p for p in segment.split('/') if '{' not in p)}",
            parent=lambda ctx: parent(ctx, *found),
        )

    router.get(path, name=name)(with_path(list_in_catalog, *names))


for _segment, _name, _query, _parent, _render, _expandable in (
    (
        "resources/{resource_id}/roles",
        "list_resource_roles_of",
        catalogs.resource_roles,
        catalogs.get_resource,
        _render_roles,
        ("resource",),
    ),
    (
        "resources/{resource_id}/scopes",
        "list_resource_scopes_of",
        catalogs.resource_scopes,
        catalogs.get_resource,
        _render_scopes,
        ("resource",),
    ),
    (
        "resourceRoles",
        "list_catalog_resource_roles",
        catalogs.catalog_resource_roles,
        catalogs.get_catalog,
        _render_roles,
        ("resource",),
    ),
    (
        "resourceScopes",
        "list_catalog_resource_scopes",
        catalogs.catalog_resource_scopes,
        catalogs.get_catalog,
        _render_scopes,
        ("resource",),
    ),
    (
        "accessPackages",
        "list_catalog_packages",
        packages.catalog_packages,
        catalogs.get_catalog,
        render_packages,
        PACKAGE_EXPANDS,
    ),
):
    _catalog_list(_segment, _name, _query, _parent, _render, _expandable)


# ---------------------------------------------------------------- resource requests

REQUESTS = "identityGovernance/entitlementManagement/resourceRequests"


@router.post("/resourceRequests", status_code=201)
def create_resource_request(body: ResourceRequestCreate, call: Plain) -> dict[str, Any]:
    kind = body.requestType.lower()
    with call.unit(write=True) as ctx:
        if kind == RequestType.ADMIN_ADD.lower():
            created = res.add_resource(
                ctx,
                catalog_id=body.catalog.id,
                origin_system_name=body.resource.originSystem,
                origin_id=body.resource.originId,
            )
        elif kind == RequestType.ADMIN_REMOVE.lower():
            created = res.remove_resource(
                ctx,
                catalog_id=body.catalog.id,
                resource_id=body.resource.id,
                origin_system_name=body.resource.originSystem,
                origin_id=body.resource.originId,
            )
        else:
            raise Invalid("requestType must be adminAdd or adminRemove", target="requestType")
        item = _render_requests({"resource", "catalog"})(ctx, [created])[0]
        return call.entity(REQUESTS, item)


def _request_resource(row: ResourceRequest, found: dict[str, CatalogResource]) -> Any:
    # A removed resource is gone from the catalog; the request still names it.
    resource = found.get(row.resource_id or "")
    if resource:
        return shapes.resource(resource)
    return {
        "id": row.resource_id,
        "originId": row.origin_id,
        "originSystem": row.origin_system,
        "displayName": row.display_name,
    }


def _request_catalog(row: ResourceRequest, found: dict[str, Catalog]) -> Any:
    catalog = found.get(row.catalog_id)
    return shapes.catalog(catalog) if catalog else {"id": row.catalog_id}


# Resource requests, with their catalog and resource batch-loaded for the page.
_render_requests = rendering(
    shapes.resource_request,
    {
        "catalog": Navigation(catalogs.request_catalogs, _request_catalog),
        "resource": Navigation(catalogs.resources_of, _request_resource),
    },
)


@router.get("/resourceRequests")
def list_resource_requests(call: Paged) -> dict[str, Any]:
    return call.page(
        catalogs.resource_requests,
        _render_requests(call.q.expand),
        context=REQUESTS,
        expandable=("resource", "catalog"),
    )


@router.get("/resourceRequests/{request_id}")
def get_resource_request(request_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        REQUESTS,
        lambda ctx: catalogs.get_resource_request(ctx, request_id),
        _render_requests(call.q.expand),
    )
