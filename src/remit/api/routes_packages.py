"""Access packages, their resource role scopes and incompatibilities (graph-api §A.3.3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.api import shapes
from remit.api.bodies import AccessPackageCreate, AccessPackageUpdate, Ref, ResourceRoleScopeCreate
from remit.api.collection import (
    QueryOptions,
    check_expand,
    collection,
    entity,
    query_options,
    single_options,
)
from remit.api.odata import parse_expand
from remit.api.routes_directory import GROUP_FIELDS
from remit.api.state import identity, operation
from remit.context import Ctx
from remit.lifecycle import package_roles
from remit.listing import F
from remit.models.catalogs import Catalog, ResourceRole, ResourceScope
from remit.models.directory import Group
from remit.models.packages import (
    AccessPackage,
    IncompatibleGroup,
    IncompatiblePackage,
    ResourceRoleScope,
)
from remit.packages import operations as ops
from remit.tokens import Identity

EM = "/v1.0/identityGovernance/entitlementManagement"
CONTEXT = "identityGovernance/entitlementManagement/accessPackages"
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=EM, tags=["accessPackages"], dependencies=[Depends(identity)])

PACKAGE_FIELDS = {
    "id": F(AccessPackage.id),
    "displayName": F(AccessPackage.display_name),
    "description": F(AccessPackage.description),
    "isHidden": F(AccessPackage.is_hidden),
    "catalog/id": F(AccessPackage.catalog_id),
    "catalogId": F(AccessPackage.catalog_id),
    "createdDateTime": F(AccessPackage.created_at),
    "modifiedDateTime": F(AccessPackage.modified_at),
}
PACKAGE_EXPANDS = (
    "catalog",
    "resourceRoleScopes",
    "incompatibleAccessPackages",
    "incompatibleGroups",
    "accessPackagesIncompatibleWith",
)
RRS_FIELDS = {
    "role/id": F(ResourceRoleScope.role_id),
    "scope/id": F(ResourceRoleScope.scope_id),
    "createdDateTime": F(ResourceRoleScope.created_at),
}


def render_rrs(
    session: Session, rows: list[ResourceRoleScope], expand: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    items = [shapes.resource_role_scope(r) for r in rows]
    if "role" in expand and rows:
        roles = {
            r.id: r
            for r in session.execute(
                select(ResourceRole).where(ResourceRole.id.in_({r.role_id for r in rows}))
            ).scalars()
        }
        for item, row in zip(items, rows, strict=True):
            item["role"] = shapes.resource_role(roles[row.role_id])
    if "scope" in expand and rows:
        scopes = {
            s.id: s
            for s in session.execute(
                select(ResourceScope).where(ResourceScope.id.in_({r.scope_id for r in rows}))
            ).scalars()
        }
        for item, row in zip(items, rows, strict=True):
            item["scope"] = shapes.resource_scope(scopes[row.scope_id])
    return items


def _expand_catalog(session: Session, rows: list[AccessPackage], items: list[Any]) -> None:
    catalogs = {
        c.id: shapes.catalog(c)
        for c in session.execute(
            select(Catalog).where(Catalog.id.in_({p.catalog_id for p in rows}))
        ).scalars()
    }
    for item, row in zip(items, rows, strict=True):
        item["catalog"] = catalogs[row.catalog_id]


def _expand_rrs(
    session: Session, ids: list[str], items: list[Any], options: dict[str, str]
) -> None:
    nested = parse_expand(options.get("$expand"))
    rrs_rows = list(
        session.execute(
            select(ResourceRoleScope).where(ResourceRoleScope.access_package_id.in_(ids))
        ).scalars()
    )
    by_package: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for rrs, shaped in zip(rrs_rows, render_rrs(session, rrs_rows, nested), strict=True):
        by_package[rrs.access_package_id].append(shaped)
    for item in items:
        item["resourceRoleScopes"] = by_package[item["id"]]


def _expand_links(ctx: Ctx, ids: list[str], items: list[Any], nav: str, reverse: bool) -> None:
    link_from, link_to = IncompatiblePackage.access_package_id, IncompatiblePackage.incompatible_id
    if reverse:
        link_from, link_to = link_to, link_from
    visible = ops.visible_packages(ctx).with_only_columns(AccessPackage.id)
    pairs = ctx.session.execute(
        select(link_from, AccessPackage)
        .join(AccessPackage, AccessPackage.id == link_to)
        .where(link_from.in_(ids), AccessPackage.id.in_(visible))
    ).all()
    linked: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for owner, other in pairs:
        linked[owner].append(shapes.access_package(other))
    for item in items:
        item[nav] = linked[item["id"]]


def _expand_groups(session: Session, ids: list[str], items: list[Any]) -> None:
    pairs = session.execute(
        select(IncompatibleGroup.access_package_id, Group)
        .join(Group, Group.id == IncompatibleGroup.group_id)
        .where(IncompatibleGroup.access_package_id.in_(ids))
    ).all()
    groups: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for owner, group in pairs:
        groups[owner].append(shapes.group(group))
    for item in items:
        item["incompatibleGroups"] = groups[item["id"]]


def render_packages(ctx: Ctx, q: QueryOptions):  # type: ignore[no-untyped-def]
    """Batch-loads each requested navigation for the whole page (no N+1)."""

    def render(session: Session, rows: list[AccessPackage]) -> list[dict[str, Any]]:
        items = [shapes.access_package(p) for p in rows]
        ids = [p.id for p in rows]
        if not ids:
            return items
        if "catalog" in q.expand:
            _expand_catalog(session, rows, items)
        if "resourceRoleScopes" in q.expand:
            _expand_rrs(session, ids, items, q.expand["resourceRoleScopes"])
        if "incompatibleAccessPackages" in q.expand:
            _expand_links(ctx, ids, items, "incompatibleAccessPackages", reverse=False)
        if "accessPackagesIncompatibleWith" in q.expand:
            _expand_links(ctx, ids, items, "accessPackagesIncompatibleWith", reverse=True)
        if "incompatibleGroups" in q.expand:
            _expand_groups(session, ids, items)
        return items

    return render


@router.get("/accessPackages")
def list_packages(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return collection(
            request,
            ctx.session,
            ops.visible_packages(ctx),
            key=AccessPackage.id,
            fields=PACKAGE_FIELDS,
            q=q,
            render=render_packages(ctx, q),
            context=CONTEXT,
            expandable=PACKAGE_EXPANDS,
        )


@router.post("/accessPackages", status_code=201)
def create_package(
    request: Request, body: AccessPackageCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=True) as ctx:
        package = ops.create_package(
            ctx,
            display_name=body.displayName,
            description=body.description,
            is_hidden=body.isHidden,
            catalog_id=body.catalog.id if body.catalog else None,
        )
        return entity(request, CONTEXT, shapes.access_package(package))


@router.get("/accessPackages/{package_id}")
def get_package(
    request: Request,
    package_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        package = ops.get_package(ctx, package_id)
        check_expand(q, PACKAGE_EXPANDS)
        return entity(request, CONTEXT, render_packages(ctx, q)(ctx.session, [package])[0], q)


@router.patch("/accessPackages/{package_id}", status_code=204)
def update_package(
    request: Request,
    package_id: str,
    body: AccessPackageUpdate,
    ident: Identity = Depends(identity),
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.update_package(ctx, package_id, body.changes())
    return Response(status_code=204)


@router.delete("/accessPackages/{package_id}", status_code=204)
def delete_package(
    request: Request, package_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.delete_package(ctx, package_id)
    return Response(status_code=204)


@router.get("/accessPackages/{package_id}/catalog")
def get_package_catalog(
    request: Request, package_id: str, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        package = ops.get_package(ctx, package_id)
        catalog = ctx.session.get(Catalog, package.catalog_id)
        assert catalog is not None  # noqa: S101 - foreign key
        return entity(
            request, "identityGovernance/entitlementManagement/catalogs", shapes.catalog(catalog)
        )


# ---------------------------------------------------------------- resource role scopes


@router.get("/accessPackages/{package_id}/resourceRoleScopes")
def list_rrs(
    request: Request,
    package_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        package = ops.get_package(ctx, package_id)
        stmt = select(ResourceRoleScope).where(ResourceRoleScope.access_package_id == package.id)
        return collection(
            request,
            ctx.session,
            stmt,
            key=ResourceRoleScope.role_id,
            fields=RRS_FIELDS,
            q=q,
            render=lambda session, rows: render_rrs(session, rows, q.expand),
            expandable=("role", "scope"),
            context=f"{CONTEXT}/resourceRoleScopes",
        )


@router.post("/accessPackages/{package_id}/resourceRoleScopes", status_code=201)
def add_rrs(
    request: Request,
    package_id: str,
    body: ResourceRoleScopeCreate,
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=True) as ctx:
        scope = body.scope
        created = package_roles.add_resource_role_scope(
            ctx,
            package_id,
            role_id=body.role.id,
            role_origin_id=body.role.originId,
            resource_id=body.role.resource.id if body.role.resource else None,
            scope_id=scope.id if scope else None,
            scope_origin_id=scope.originId if scope else None,
        )
        item = render_rrs(ctx.session, [created], {"role": {}, "scope": {}})[0]
        return entity(request, f"{CONTEXT}/resourceRoleScopes", item)


@router.get("/accessPackages/{package_id}/resourceRoleScopes/{rrs_id}")
def get_rrs(
    request: Request,
    package_id: str,
    rrs_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = ops.get_resource_role_scope(ctx, package_id, rrs_id)
        check_expand(q, ("role", "scope"))
        return entity(
            request,
            f"{CONTEXT}/resourceRoleScopes",
            render_rrs(ctx.session, [found], q.expand)[0],
            q,
        )


@router.delete("/accessPackages/{package_id}/resourceRoleScopes/{rrs_id}", status_code=204)
def delete_rrs(
    request: Request, package_id: str, rrs_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        package_roles.remove_resource_role_scope(ctx, package_id, rrs_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- incompatibilities


def _package_list(request: Request, ctx: Ctx, stmt: Any, q: QueryOptions, nav: str) -> Any:
    return collection(
        request,
        ctx.session,
        stmt,
        key=AccessPackage.id,
        fields=PACKAGE_FIELDS,
        q=q,
        render=render_packages(ctx, q),
        context=f"{CONTEXT}/{nav}",
        expandable=PACKAGE_EXPANDS,
    )


@router.get("/accessPackages/{package_id}/incompatibleAccessPackages")
def list_incompatible_packages(
    request: Request,
    package_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        stmt = ops.incompatible_packages(ctx, package_id)
        return _package_list(request, ctx, stmt, q, "incompatibleAccessPackages")  # type: ignore[no-any-return]


@router.get("/accessPackages/{package_id}/accessPackagesIncompatibleWith")
def list_packages_incompatible_with(
    request: Request,
    package_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        stmt = ops.packages_incompatible_with(ctx, package_id)
        return _package_list(request, ctx, stmt, q, "accessPackagesIncompatibleWith")  # type: ignore[no-any-return]


@router.post("/accessPackages/{package_id}/incompatibleAccessPackages/$ref", status_code=204)
def add_incompatible_package(
    request: Request, package_id: str, body: Ref, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.add_incompatible_package(ctx, package_id, body.object_id("accessPackages"))
    return Response(status_code=204)


@router.delete(
    "/accessPackages/{package_id}/incompatibleAccessPackages/{other_id}/$ref", status_code=204
)
def remove_incompatible_package(
    request: Request, package_id: str, other_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.remove_incompatible_package(ctx, package_id, other_id)
    return Response(status_code=204)


@router.get("/accessPackages/{package_id}/incompatibleGroups")
def list_incompatible_groups(
    request: Request,
    package_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return collection(
            request,
            ctx.session,
            ops.incompatible_groups(ctx, package_id),
            key=Group.id,
            fields=GROUP_FIELDS,
            q=q,
            render=lambda _s, rows: [shapes.group(g) for g in rows],
            context=f"{CONTEXT}/incompatibleGroups",
        )


@router.post("/accessPackages/{package_id}/incompatibleGroups/$ref", status_code=204)
def add_incompatible_group(
    request: Request, package_id: str, body: Ref, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.add_incompatible_group(ctx, package_id, body.object_id("groups"))
    return Response(status_code=204)


@router.delete("/accessPackages/{package_id}/incompatibleGroups/{group_id}/$ref", status_code=204)
def remove_incompatible_group(
    request: Request, package_id: str, group_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.remove_incompatible_group(ctx, package_id, group_id)
    return Response(status_code=204)
