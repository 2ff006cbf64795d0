"""Catalogs, their resources/roles/scopes, and resource requests (graph-api §A.3.1 and §A.3.2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from remit.api import fast_reads, shapes
from remit.api.bodies import CatalogCreate, CatalogUpdate, ResourceRequestCreate
from remit.api.collection import (
    QueryOptions,
    entity,
    listed,
    query_options,
    single_options,
)
from remit.api.routes_packages import PACKAGE_EXPANDS, Expand, render_packages
from remit.api.state import identity, operation
from remit.catalogs import operations as ops
from remit.catalogs import queries as catalogs
from remit.catalogs import resources as res
from remit.context import Ctx
from remit.errors import Invalid
from remit.models.catalogs import (
    Catalog,
    CatalogResource,
    ResourceRequest,
    ResourceRole,
    ResourceScope,
)
from remit.models.vocabulary import RequestType
from remit.packages import queries as packages
from remit.tokens import Identity

EM = "/v1.0/identityGovernance/entitlementManagement"
CATALOGS = "identityGovernance/entitlementManagement/catalogs"
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=EM, tags=["catalogs"], dependencies=[Depends(identity)])


def _render_catalogs(ctx: Ctx, rows: list[Catalog], expand: Expand) -> list[dict[str, Any]]:
    items = [shapes.catalog(c) for c in rows]
    if "accessPackages" in expand and rows:
        by_catalog = packages.packages_in(ctx, rows)
        for item, row in zip(items, rows, strict=True):
            item["accessPackages"] = [shapes.access_package(p) for p in by_catalog[row.id]]
    return items


@router.get("/catalogs")
def list_catalogs(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        catalogs.catalogs,
        lambda ctx, rows: _render_catalogs(ctx, rows, q.expand),
        context=CATALOGS,
        expandable=("accessPackages",),
    )


@router.post("/catalogs", status_code=201)
def create_catalog(
    request: Request, body: CatalogCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=True) as ctx:
        catalog = ops.create_catalog(
            ctx,
            display_name=body.displayName,
            description=body.description,
            state=body.state,
            is_externally_visible=body.isExternallyVisible,
        )
        return entity(request, CATALOGS, shapes.catalog(catalog))


router.get("/catalogs/{catalog_id}", **fast_reads.SINGLE_READ)(fast_reads.get_catalog)


@router.patch("/catalogs/{catalog_id}", status_code=204)
def update_catalog(
    request: Request, catalog_id: str, body: CatalogUpdate, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.update_catalog(ctx, catalog_id, body.changes())
    return Response(status_code=204)


@router.delete("/catalogs/{catalog_id}", status_code=204)
def delete_catalog(
    request: Request, catalog_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.delete_catalog(ctx, catalog_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- resources


def _render_resources(
    ctx: Ctx, rows: list[CatalogResource], expand: Expand
) -> list[dict[str, Any]]:
    items = [shapes.resource(r) for r in rows]
    if "roles" in expand and rows:
        roles = catalogs.roles_of(ctx, rows)
        for item, row in zip(items, rows, strict=True):
            item["roles"] = [shapes.resource_role(r) for r in roles[row.id]]
    if "scopes" in expand and rows:
        scopes = catalogs.scopes_of(ctx, rows)
        for item, row in zip(items, rows, strict=True):
            item["scopes"] = [shapes.resource_scope(s) for s in scopes[row.id]]
    return items


def _render_roles(ctx: Ctx, rows: list[ResourceRole], expand: Expand) -> list[dict[str, Any]]:
    return _with_resource(ctx, rows, [shapes.resource_role(r) for r in rows], expand)


def _render_scopes(ctx: Ctx, rows: list[ResourceScope], expand: Expand) -> list[dict[str, Any]]:
    return _with_resource(ctx, rows, [shapes.resource_scope(s) for s in rows], expand)


def _with_resource(
    ctx: Ctx,
    rows: Sequence[ResourceRole | ResourceScope],
    items: list[dict[str, Any]],
    expand: Expand,
) -> list[dict[str, Any]]:
    if "resource" in expand and rows:
        found = catalogs.resources_of(ctx, rows)
        for item, row in zip(items, rows, strict=True):
            resource = found.get(row.resource_id)
            item["resource"] = shapes.resource(resource) if resource else None
    return items


def _in_catalog(catalog_id: str) -> Callable[[Ctx], object]:
    return lambda ctx: catalogs.get_catalog(ctx, catalog_id)


def _in_resource(catalog_id: str, resource_id: str) -> Callable[[Ctx], object]:
    return lambda ctx: catalogs.get_resource(ctx, catalog_id, resource_id)


@router.get("/catalogs/{catalog_id}/resources")
def list_resources(
    request: Request,
    catalog_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: catalogs.resources(ctx, catalog_id, options),
        lambda ctx, rows: _render_resources(ctx, rows, q.expand),
        expandable=("roles", "scopes"),
        # The catalog was found by this id, so it is the catalog's own.
        context=f"{CATALOGS}('{catalog_id}')/resources",
        parent=_in_catalog(catalog_id),
    )


@router.get("/catalogs/{catalog_id}/resources/{resource_id}")
def get_resource(
    request: Request,
    catalog_id: str,
    resource_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = catalogs.get_resource(ctx, catalog_id, resource_id)
        item = _render_resources(ctx, [found], q.expand)[0]
        return entity(request, f"{CATALOGS}/resources", item, q)


@router.get("/catalogs/{catalog_id}/resources/{resource_id}/roles")
def list_resource_roles_of(
    request: Request,
    catalog_id: str,
    resource_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: catalogs.resource_roles(ctx, catalog_id, resource_id, options),
        lambda ctx, rows: _render_roles(ctx, rows, q.expand),
        expandable=("resource",),
        context=f"{CATALOGS}/resources/roles",
        parent=_in_resource(catalog_id, resource_id),
    )


@router.get("/catalogs/{catalog_id}/resources/{resource_id}/scopes")
def list_resource_scopes_of(
    request: Request,
    catalog_id: str,
    resource_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: catalogs.resource_scopes(ctx, catalog_id, resource_id, options),
        lambda ctx, rows: _render_scopes(ctx, rows, q.expand),
        expandable=("resource",),
        context=f"{CATALOGS}/resources/scopes",
        parent=_in_resource(catalog_id, resource_id),
    )


@router.get("/catalogs/{catalog_id}/resourceRoles")
def list_catalog_resource_roles(
    request: Request,
    catalog_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: catalogs.catalog_resource_roles(ctx, catalog_id, options),
        lambda ctx, rows: _render_roles(ctx, rows, q.expand),
        expandable=("resource",),
        context=f"{CATALOGS}/resourceRoles",
        parent=_in_catalog(catalog_id),
    )


@router.get("/catalogs/{catalog_id}/resourceScopes")
def list_catalog_resource_scopes(
    request: Request,
    catalog_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: catalogs.catalog_resource_scopes(ctx, catalog_id, options),
        lambda ctx, rows: _render_scopes(ctx, rows, q.expand),
        expandable=("resource",),
        context=f"{CATALOGS}/resourceScopes",
        parent=_in_catalog(catalog_id),
    )


@router.get("/catalogs/{catalog_id}/accessPackages")
def list_catalog_packages(
    request: Request,
    catalog_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: packages.catalog_packages(ctx, catalog_id, options),
        lambda ctx, rows: render_packages(ctx, rows, q.expand),
        expandable=PACKAGE_EXPANDS,
        context=f"{CATALOGS}/accessPackages",
        parent=_in_catalog(catalog_id),
    )


# ---------------------------------------------------------------- resource requests

REQUESTS = "identityGovernance/entitlementManagement/resourceRequests"


@router.post("/resourceRequests", status_code=201)
def create_resource_request(
    request: Request, body: ResourceRequestCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    kind = body.requestType.lower()
    with operation(request, ident, write=True) as ctx:
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
        item = _render_requests(ctx, [created], {"resource": {}, "catalog": {}})[0]
        return entity(request, REQUESTS, item)


def _render_requests(ctx: Ctx, rows: list[ResourceRequest], expand: Expand) -> list[dict[str, Any]]:
    """Resource requests, with their catalog and resource batch-loaded for the page."""
    items = [shapes.resource_request(r) for r in rows]
    found_catalogs = catalogs.request_catalogs(ctx, rows) if "catalog" in expand else {}
    found_resources = catalogs.resources_of(ctx, rows) if "resource" in expand else {}
    for item, row in zip(items, rows, strict=True):
        if "catalog" in expand:
            catalog = found_catalogs.get(row.catalog_id)
            item["catalog"] = shapes.catalog(catalog) if catalog else {"id": row.catalog_id}
        if "resource" in expand:
            # A removed resource is gone from the catalog; the request still names it.
            resource = found_resources.get(row.resource_id or "")
            item["resource"] = (
                shapes.resource(resource)
                if resource
                else {
                    "id": row.resource_id,
                    "originId": row.origin_id,
                    "originSystem": row.origin_system,
                    "displayName": row.display_name,
                }
            )
    return items


@router.get("/resourceRequests")
def list_resource_requests(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        catalogs.resource_requests,
        lambda ctx, rows: _render_requests(ctx, rows, q.expand),
        context=REQUESTS,
        expandable=("resource", "catalog"),
    )


@router.get("/resourceRequests/{request_id}")
def get_resource_request(
    request: Request,
    request_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = catalogs.get_resource_request(ctx, request_id)
        item = _render_requests(ctx, [found], q.expand)[0]
        return entity(request, REQUESTS, item, q)
