"""Catalogs, their resources/roles/scopes, and resource requests (graph-api §A.3.1 and §A.3.2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Response

from remit.api import fast_reads, shapes
from remit.api.bodies import CatalogCreate, CatalogUpdate, ResourceRequestCreate
from remit.api.calls import Paged, Plain, Single
from remit.api.collection import Navigation, Render, rendering
from remit.api.routes_packages import PACKAGE_EXPANDS, Expand, render_packages
from remit.api.state import identity
from remit.catalogs import operations as ops
from remit.catalogs import queries as catalogs
from remit.catalogs import resources as res
from remit.context import Ctx
from remit.errors import Invalid
from remit.listing import ListOptions, Page
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
    {
        "accessPackages": Navigation(
            packages.packages_in,
            lambda row, found: [shapes.access_package(p) for p in found[row.id]],
        )
    },
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
        "roles": Navigation(
            catalogs.roles_of, lambda row, found: [shapes.resource_role(r) for r in found[row.id]]
        ),
        "scopes": Navigation(
            catalogs.scopes_of,
            lambda row, found: [shapes.resource_scope(s) for s in found[row.id]],
        ),
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


def _in_resource(catalog_id: str, resource_id: str) -> Callable[[Ctx], object]:
    return lambda ctx: catalogs.get_resource(ctx, catalog_id, resource_id)


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


@router.get("/catalogs/{catalog_id}/resources/{resource_id}/roles")
def list_resource_roles_of(catalog_id: str, resource_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, options: catalogs.resource_roles(ctx, catalog_id, resource_id, options),
        _render_roles(call.q.expand),
        expandable=("resource",),
        context=f"{CATALOGS}/resources/roles",
        parent=_in_resource(catalog_id, resource_id),
    )


@router.get("/catalogs/{catalog_id}/resources/{resource_id}/scopes")
def list_resource_scopes_of(catalog_id: str, resource_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, options: catalogs.resource_scopes(ctx, catalog_id, resource_id, options),
        _render_scopes(call.q.expand),
        expandable=("resource",),
        context=f"{CATALOGS}/resources/scopes",
        parent=_in_resource(catalog_id, resource_id),
    )


def _catalog_list(
    segment: str,
    name: str,
    query: Callable[[Ctx, str, ListOptions], Page[T]],
    render: Callable[[Expand], Render[T]],
    expandable: Sequence[str],
) -> None:
    """``GET catalogs/{id}/<segment>``: the catalog is read first (one the caller may not see is
    a 404 before any 400), then a page of what it holds."""

    @router.get(f"/catalogs/{{catalog_id}}/{segment}", name=name)
    def list_in_catalog(catalog_id: str, call: Paged) -> dict[str, Any]:
        return call.page(
            lambda ctx, options: query(ctx, catalog_id, options),
            render(call.q.expand),
            expandable=expandable,
            context=f"{CATALOGS}/{segment}",
            parent=_in_catalog(catalog_id),
        )


_catalog_list(
    "resourceRoles",
    "list_catalog_resource_roles",
    catalogs.catalog_resource_roles,
    _render_roles,
    ("resource",),
)
_catalog_list(
    "resourceScopes",
    "list_catalog_resource_scopes",
    catalogs.catalog_resource_scopes,
    _render_scopes,
    ("resource",),
)
_catalog_list(
    "accessPackages",
    "list_catalog_packages",
    packages.catalog_packages,
    render_packages,
    PACKAGE_EXPANDS,
)


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
