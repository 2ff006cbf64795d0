"""Catalogs, their resources/roles/scopes, and resource requests (graph-api §A.3.1 and §A.3.2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Response

from remit.api import fast_reads, shapes
from remit.api.bodies import CatalogCreate, CatalogUpdate, ResourceRequestCreate
from remit.api.calls import Paged, Plain, Single
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


def _render_catalogs(ctx: Ctx, rows: list[Catalog], expand: Expand) -> list[dict[str, Any]]:
    items = [shapes.catalog(c) for c in rows]
    if "accessPackages" in expand and rows:
        by_catalog = packages.packages_in(ctx, rows)
        for item, row in zip(items, rows, strict=True):
            item["accessPackages"] = [shapes.access_package(p) for p in by_catalog[row.id]]
    return items


@router.get("/catalogs")
def list_catalogs(call: Paged) -> dict[str, Any]:
    return call.page(
        catalogs.catalogs,
        lambda ctx, rows: _render_catalogs(ctx, rows, call.q.expand),
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
def list_resources(catalog_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, options: catalogs.resources(ctx, catalog_id, options),
        lambda ctx, rows: _render_resources(ctx, rows, call.q.expand),
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
        lambda ctx, rows: _render_resources(ctx, rows, call.q.expand),
    )


@router.get("/catalogs/{catalog_id}/resources/{resource_id}/roles")
def list_resource_roles_of(catalog_id: str, resource_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, options: catalogs.resource_roles(ctx, catalog_id, resource_id, options),
        lambda ctx, rows: _render_roles(ctx, rows, call.q.expand),
        expandable=("resource",),
        context=f"{CATALOGS}/resources/roles",
        parent=_in_resource(catalog_id, resource_id),
    )


@router.get("/catalogs/{catalog_id}/resources/{resource_id}/scopes")
def list_resource_scopes_of(catalog_id: str, resource_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, options: catalogs.resource_scopes(ctx, catalog_id, resource_id, options),
        lambda ctx, rows: _render_scopes(ctx, rows, call.q.expand),
        expandable=("resource",),
        context=f"{CATALOGS}/resources/scopes",
        parent=_in_resource(catalog_id, resource_id),
    )


def _catalog_list(
    segment: str,
    name: str,
    query: Callable[[Ctx, str, ListOptions], Page[T]],
    render: Callable[[Ctx, list[T], Expand], list[dict[str, Any]]],
    expandable: Sequence[str],
) -> None:
    """``GET catalogs/{id}/<segment>``: the catalog is read first (one the caller may not see is
    a 404 before any 400), then a page of what it holds."""

    @router.get(f"/catalogs/{{catalog_id}}/{segment}", name=name)
    def list_in_catalog(catalog_id: str, call: Paged) -> dict[str, Any]:
        return call.page(
            lambda ctx, options: query(ctx, catalog_id, options),
            lambda ctx, rows: render(ctx, rows, call.q.expand),
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
        item = _render_requests(ctx, [created], {"resource": {}, "catalog": {}})[0]
        return call.entity(REQUESTS, item)


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
def list_resource_requests(call: Paged) -> dict[str, Any]:
    return call.page(
        catalogs.resource_requests,
        lambda ctx, rows: _render_requests(ctx, rows, call.q.expand),
        context=REQUESTS,
        expandable=("resource", "catalog"),
    )


@router.get("/resourceRequests/{request_id}")
def get_resource_request(request_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        REQUESTS,
        lambda ctx: catalogs.get_resource_request(ctx, request_id),
        lambda ctx, rows: _render_requests(ctx, rows, call.q.expand),
    )
