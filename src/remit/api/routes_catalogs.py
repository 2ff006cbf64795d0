"""Catalogs, their resources/roles/scopes, and resource requests (graph-api §A.3.1 and §A.3.2)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.api import fast_reads, shapes
from remit.api.bodies import CatalogCreate, CatalogUpdate, ResourceRequestCreate
from remit.api.collection import (
    QueryOptions,
    collection,
    entity,
    query_options,
    single_options,
)
from remit.api.routes_packages import PACKAGE_EXPANDS, PACKAGE_FIELDS, render_packages
from remit.api.state import identity, operation
from remit.authz.decide import can
from remit.authz.tasks import Task
from remit.authz.visibility import catalog_filter
from remit.catalogs import operations as ops
from remit.catalogs import resources as res
from remit.context import Ctx
from remit.errors import Invalid, NotFound
from remit.listing import F
from remit.models.catalogs import (
    Catalog,
    CatalogResource,
    ResourceRequest,
    ResourceRole,
    ResourceScope,
)
from remit.models.packages import AccessPackage
from remit.packages.operations import visible_packages
from remit.tokens import Identity

EM = "/v1.0/identityGovernance/entitlementManagement"
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=EM, tags=["catalogs"], dependencies=[Depends(identity)])

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


def _render_catalogs(ctx: Ctx, q: QueryOptions):  # type: ignore[no-untyped-def]
    def render(session: Session, rows: list[Catalog]) -> list[dict[str, Any]]:
        items = [shapes.catalog(c) for c in rows]
        if "accessPackages" in q.expand and rows:
            packages = session.execute(
                visible_packages(ctx).where(AccessPackage.catalog_id.in_([c.id for c in rows]))
            ).scalars()
            by_catalog: dict[str, list[dict[str, Any]]] = {c.id: [] for c in rows}
            for p in packages:
                by_catalog[p.catalog_id].append(shapes.access_package(p))
            for item in items:
                item["accessPackages"] = by_catalog[item["id"]]
        return items

    return render


@router.get("/catalogs")
def list_catalogs(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return collection(
            request,
            ctx.session,
            ops.visible_catalogs(ctx),
            key=Catalog.id,
            fields=CATALOG_FIELDS,
            q=q,
            render=_render_catalogs(ctx, q),
            context="identityGovernance/entitlementManagement/catalogs",
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
        return entity(
            request, "identityGovernance/entitlementManagement/catalogs", shapes.catalog(catalog)
        )


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


def _render_resources(q: QueryOptions):  # type: ignore[no-untyped-def]
    def render(session: Session, rows: list[CatalogResource]) -> list[dict[str, Any]]:
        items = [shapes.resource(r) for r in rows]
        ids = [r.id for r in rows]
        if "roles" in q.expand and ids:
            roles: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            for role in session.execute(
                select(ResourceRole)
                .where(ResourceRole.resource_id.in_(ids))
                .order_by(ResourceRole.display_name)
            ).scalars():
                roles[role.resource_id].append(shapes.resource_role(role))
            for item in items:
                item["roles"] = roles[item["id"]]
        if "scopes" in q.expand and ids:
            scopes: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            for scope in session.execute(
                select(ResourceScope).where(ResourceScope.resource_id.in_(ids))
            ).scalars():
                scopes[scope.resource_id].append(shapes.resource_scope(scope))
            for item in items:
                item["scopes"] = scopes[item["id"]]
        return items

    return render


def _render_with_resource(shape: Any, q: QueryOptions):  # type: ignore[no-untyped-def]
    def render(session: Session, rows: list[Any]) -> list[dict[str, Any]]:
        items = [shape(r) for r in rows]
        if "resource" in q.expand and rows:
            found = {
                r.id: shapes.resource(r)
                for r in session.execute(
                    select(CatalogResource).where(
                        CatalogResource.id.in_({row.resource_id for row in rows})
                    )
                ).scalars()
            }
            for item, row in zip(items, rows, strict=True):
                item["resource"] = found.get(row.resource_id)
        return items

    return render


@router.get("/catalogs/{catalog_id}/resources")
def list_resources(
    request: Request,
    catalog_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        catalog = ops.get_catalog(ctx, catalog_id)
        stmt = select(CatalogResource).where(CatalogResource.catalog_id == catalog.id)
        return collection(
            request,
            ctx.session,
            stmt,
            key=CatalogResource.id,
            fields=RESOURCE_FIELDS,
            q=q,
            render=_render_resources(q),
            expandable=("roles", "scopes"),
            context=f"identityGovernance/entitlementManagement/catalogs('{catalog.id}')/resources",
        )


def _catalog_resource(ctx: Ctx, catalog_id: str, resource_id: str) -> CatalogResource:
    catalog = ops.get_catalog(ctx, catalog_id)
    found = ctx.session.get(CatalogResource, resource_id)
    if found is None or found.catalog_id != catalog.id:
        raise NotFound(f"resource {resource_id} was not found in this catalog")
    return found


@router.get("/catalogs/{catalog_id}/resources/{resource_id}")
def get_resource(
    request: Request,
    catalog_id: str,
    resource_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = _catalog_resource(ctx, catalog_id, resource_id)
        item = _render_resources(q)(ctx.session, [found])[0]
        return entity(
            request, "identityGovernance/entitlementManagement/catalogs/resources", item, q
        )


@router.get("/catalogs/{catalog_id}/resources/{resource_id}/roles")
def list_resource_roles_of(
    request: Request,
    catalog_id: str,
    resource_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = _catalog_resource(ctx, catalog_id, resource_id)
        stmt = select(ResourceRole).where(ResourceRole.resource_id == found.id)
        return collection(
            request,
            ctx.session,
            stmt,
            key=ResourceRole.id,
            fields=ROLE_FIELDS,
            q=q,
            render=_render_with_resource(shapes.resource_role, q),
            expandable=("resource",),
            context="identityGovernance/entitlementManagement/catalogs/resources/roles",
        )


@router.get("/catalogs/{catalog_id}/resources/{resource_id}/scopes")
def list_resource_scopes_of(
    request: Request,
    catalog_id: str,
    resource_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = _catalog_resource(ctx, catalog_id, resource_id)
        stmt = select(ResourceScope).where(ResourceScope.resource_id == found.id)
        return collection(
            request,
            ctx.session,
            stmt,
            key=ResourceScope.id,
            fields=SCOPE_FIELDS,
            q=q,
            render=_render_with_resource(shapes.resource_scope, q),
            expandable=("resource",),
            context="identityGovernance/entitlementManagement/catalogs/resources/scopes",
        )


@router.get("/catalogs/{catalog_id}/resourceRoles")
def list_catalog_resource_roles(
    request: Request,
    catalog_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        catalog = ops.get_catalog(ctx, catalog_id)
        stmt = (
            select(ResourceRole)
            .join(CatalogResource, CatalogResource.id == ResourceRole.resource_id)
            .where(CatalogResource.catalog_id == catalog.id)
        )
        return collection(
            request,
            ctx.session,
            stmt,
            key=ResourceRole.id,
            fields=ROLE_FIELDS,
            q=q,
            render=_render_with_resource(shapes.resource_role, q),
            expandable=("resource",),
            context="identityGovernance/entitlementManagement/catalogs/resourceRoles",
        )


@router.get("/catalogs/{catalog_id}/resourceScopes")
def list_catalog_resource_scopes(
    request: Request,
    catalog_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        catalog = ops.get_catalog(ctx, catalog_id)
        stmt = (
            select(ResourceScope)
            .join(CatalogResource, CatalogResource.id == ResourceScope.resource_id)
            .where(CatalogResource.catalog_id == catalog.id)
        )
        return collection(
            request,
            ctx.session,
            stmt,
            key=ResourceScope.id,
            fields=SCOPE_FIELDS,
            q=q,
            render=_render_with_resource(shapes.resource_scope, q),
            expandable=("resource",),
            context="identityGovernance/entitlementManagement/catalogs/resourceScopes",
        )


@router.get("/catalogs/{catalog_id}/accessPackages")
def list_catalog_packages(
    request: Request,
    catalog_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        catalog = ops.get_catalog(ctx, catalog_id)
        stmt = visible_packages(ctx).where(AccessPackage.catalog_id == catalog.id)
        return collection(
            request,
            ctx.session,
            stmt,
            key=AccessPackage.id,
            fields=PACKAGE_FIELDS,
            q=q,
            render=render_packages(ctx, q),
            expandable=PACKAGE_EXPANDS,
            context="identityGovernance/entitlementManagement/catalogs/accessPackages",
        )


# ---------------------------------------------------------------- resource requests


@router.post("/resourceRequests", status_code=201)
def create_resource_request(
    request: Request, body: ResourceRequestCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    kind = body.requestType.lower()
    with operation(request, ident, write=True) as ctx:
        if kind == "adminadd":
            created = res.add_resource(
                ctx,
                catalog_id=body.catalog.id,
                origin_system_name=body.resource.originSystem,
                origin_id=body.resource.originId,
            )
        elif kind == "adminremove":
            created = res.remove_resource(
                ctx,
                catalog_id=body.catalog.id,
                resource_id=body.resource.id,
                origin_system_name=body.resource.originSystem,
                origin_id=body.resource.originId,
            )
        else:
            raise Invalid("requestType must be adminAdd or adminRemove", target="requestType")
        item = _render_requests({"resource": {}, "catalog": {}})(ctx.session, [created])[0]
        return entity(request, "identityGovernance/entitlementManagement/resourceRequests", item)


def _render_requests(expand: dict[str, dict[str, str]]):  # type: ignore[no-untyped-def]
    """Resource requests, with their catalog and resource batch-loaded for the page."""

    def render(session: Session, rows: list[ResourceRequest]) -> list[dict[str, Any]]:
        items = [shapes.resource_request(r) for r in rows]
        catalogs: dict[str, Catalog] = {}
        resources: dict[str, CatalogResource] = {}
        if "catalog" in expand and rows:
            ids = {r.catalog_id for r in rows}
            catalogs = {
                c.id: c for c in session.scalars(select(Catalog).where(Catalog.id.in_(ids)))
            }
        if "resource" in expand and rows:
            ids = {r.resource_id for r in rows if r.resource_id}
            resources = {
                r.id: r
                for r in session.scalars(select(CatalogResource).where(CatalogResource.id.in_(ids)))
            }
        for item, row in zip(items, rows, strict=True):
            if "catalog" in expand:
                catalog = catalogs.get(row.catalog_id)
                item["catalog"] = shapes.catalog(catalog) if catalog else {"id": row.catalog_id}
            if "resource" in expand:
                # A removed resource is gone from the catalog; the request still names it.
                found = resources.get(row.resource_id or "")
                item["resource"] = (
                    shapes.resource(found)
                    if found
                    else {
                        "id": row.resource_id,
                        "originId": row.origin_id,
                        "originSystem": row.origin_system,
                        "displayName": row.display_name,
                    }
                )
        return items

    return render


def _visible_requests(ctx: Ctx) -> Any:
    return select(ResourceRequest).where(
        catalog_filter(ctx.actor, Task.CATALOG_READ, ResourceRequest.catalog_id)
    )


@router.get("/resourceRequests")
def list_resource_requests(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return collection(
            request,
            ctx.session,
            _visible_requests(ctx),
            key=ResourceRequest.id,
            fields=REQUEST_FIELDS,
            q=q,
            render=_render_requests(q.expand),
            expandable=("resource", "catalog"),
            context="identityGovernance/entitlementManagement/resourceRequests",
        )


@router.get("/resourceRequests/{request_id}")
def get_resource_request(
    request: Request,
    request_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = ctx.session.get(ResourceRequest, request_id)
        if found is None or not can(ctx.actor, Task.CATALOG_READ, found.catalog_id):
            raise NotFound(f"resource request {request_id} was not found")
        item = _render_requests(q.expand)(ctx.session, [found])[0]
        return entity(request, "identityGovernance/entitlementManagement/resourceRequests", item, q)
