"""Access packages, their resource role scopes and incompatibilities (graph-api §A.3.3)."""

from __future__ import annotations

from itertools import islice
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Response

from remit.api import shapes
from remit.api.bodies import AccessPackageCreate, AccessPackageUpdate, Ref, ResourceRoleScopeCreate
from remit.api.calls import Call, Paged, Plain, Single, shaped
from remit.api.collection import Navigation, Render, rendering
from remit.api.odata import parse_expand
from remit.api.state import identity
from remit.context import Ctx
from remit.lifecycle import package_roles
from remit.models.packages import AccessPackage
from remit.packages import operations as ops
from remit.packages import queries as packages

T = TypeVar("T")
Expand = dict[str, dict[str, str]]

EM = "/v1.0/identityGovernance/entitlementManagement"
CONTEXT = "identityGovernance/entitlementManagement/accessPackages"
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=EM, tags=["accessPackages"], dependencies=[Depends(identity)])

PACKAGE_EXPANDS = (
    "catalog",
    "resourceRoleScopes",
    "incompatibleAccessPackages",
    "incompatibleGroups",
    "accessPackagesIncompatibleWith",
)


# Resource role scopes, with their roles and scopes batch-loaded for the page.
render_rrs = rendering(
    shapes.resource_role_scope,
    {
        "role": Navigation(
            packages.roles_of, lambda row, found: shapes.resource_role(found[row.role_id])
        ),
        "scope": Navigation(
            packages.scopes_of, lambda row, found: shapes.resource_scope(found[row.scope_id])
        ),
    },
)


def _role_scopes(
    ctx: Ctx, rows: list[AccessPackage], options: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    by_package = packages.role_scopes_of(ctx, rows)
    # One render for the whole page (its roles and scopes in one round trip each), dealt out
    # again in the page's order.
    every = [rrs for row in rows for rrs in by_package[row.id]]
    shaped = iter(render_rrs(parse_expand(options.get("$expand")))(ctx, every))
    return {row.id: list(islice(shaped, len(by_package[row.id]))) for row in rows}


def render_packages(expand: Expand) -> Render[AccessPackage]:
    """Batch-loads each requested navigation for the whole page (no N+1)."""
    return rendering(
        shapes.access_package,
        {
            "catalog": Navigation(
                packages.catalogs_of, lambda row, found: shapes.catalog(found[row.catalog_id])
            ),
            "resourceRoleScopes": Navigation(
                lambda ctx, rows: _role_scopes(ctx, rows, expand["resourceRoleScopes"]),
                lambda row, found: found[row.id],
            ),
            "incompatibleAccessPackages": Navigation.many(
                lambda ctx, rows: packages.incompatible_of(ctx, rows, reverse=False),
                shapes.access_package,
            ),
            "accessPackagesIncompatibleWith": Navigation.many(
                lambda ctx, rows: packages.incompatible_of(ctx, rows, reverse=True),
                shapes.access_package,
            ),
            "incompatibleGroups": Navigation.many(packages.incompatible_groups_of, shapes.group),
        },
    )(expand)


@router.get("/accessPackages")
def list_packages(call: Paged) -> dict[str, Any]:
    return call.page(
        packages.packages,
        render_packages(call.q.expand),
        context=CONTEXT,
        expandable=PACKAGE_EXPANDS,
    )


@router.post("/accessPackages", status_code=201)
def create_package(body: AccessPackageCreate, call: Plain) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
        package = ops.create_package(
            ctx,
            display_name=body.displayName,
            description=body.description,
            is_hidden=body.isHidden,
            catalog_id=body.catalog.id if body.catalog else None,
        )
        return call.entity(CONTEXT, shapes.access_package(package))


@router.get("/accessPackages/{package_id}")
def get_package(package_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        CONTEXT,
        lambda ctx: packages.get_package(ctx, package_id),
        render_packages(call.q.expand),
        expandable=PACKAGE_EXPANDS,
    )


@router.patch("/accessPackages/{package_id}", status_code=204)
def update_package(package_id: str, body: AccessPackageUpdate, call: Plain) -> Response:
    return call.done(lambda ctx: ops.update_package(ctx, package_id, body.changes()))


@router.delete("/accessPackages/{package_id}", status_code=204)
def delete_package(package_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.delete_package(ctx, package_id))


@router.get("/accessPackages/{package_id}/catalog")
def get_package_catalog(package_id: str, call: Plain) -> dict[str, Any]:
    return call.one(
        "identityGovernance/entitlementManagement/catalogs",
        lambda ctx: packages.package_catalog(ctx, package_id),
        shaped(shapes.catalog),
    )


# ---------------------------------------------------------------- resource role scopes

RRS = f"{CONTEXT}/resourceRoleScopes"
RRS_EXPANDS = ("role", "scope")


@router.get("/accessPackages/{package_id}/resourceRoleScopes")
def list_rrs(package_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, options: packages.role_scopes(ctx, package_id, options),
        render_rrs(call.q.expand),
        context=RRS,
        expandable=RRS_EXPANDS,
        parent=lambda ctx: packages.get_package(ctx, package_id),
    )


@router.post("/accessPackages/{package_id}/resourceRoleScopes", status_code=201)
def add_rrs(package_id: str, body: ResourceRoleScopeCreate, call: Plain) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
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
        return call.entity(RRS, render_rrs({"role", "scope"})(ctx, [created])[0])


@router.get("/accessPackages/{package_id}/resourceRoleScopes/{rrs_id}")
def get_rrs(package_id: str, rrs_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        RRS,
        lambda ctx: packages.get_resource_role_scope(ctx, package_id, rrs_id),
        render_rrs(call.q.expand),
        expandable=RRS_EXPANDS,
    )


@router.delete("/accessPackages/{package_id}/resourceRoleScopes/{rrs_id}", status_code=204)
def delete_rrs(package_id: str, rrs_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: package_roles.remove_resource_role_scope(ctx, package_id, rrs_id))


# ---------------------------------------------------------------- incompatibilities


def _incompatible(call: Call, package_id: str, *, reverse: bool) -> dict[str, Any]:
    nav = "accessPackagesIncompatibleWith" if reverse else "incompatibleAccessPackages"
    return call.page(
        lambda ctx, options: packages.incompatible_packages(
            ctx, package_id, options, reverse=reverse
        ),
        render_packages(call.q.expand),
        context=f"{CONTEXT}/{nav}",
        expandable=PACKAGE_EXPANDS,
        parent=lambda ctx: packages.get_package(ctx, package_id),
    )


@router.get("/accessPackages/{package_id}/incompatibleAccessPackages")
def list_incompatible_packages(package_id: str, call: Paged) -> dict[str, Any]:
    return _incompatible(call, package_id, reverse=False)


@router.get("/accessPackages/{package_id}/accessPackagesIncompatibleWith")
def list_packages_incompatible_with(package_id: str, call: Paged) -> dict[str, Any]:
    return _incompatible(call, package_id, reverse=True)


@router.post("/accessPackages/{package_id}/incompatibleAccessPackages/$ref", status_code=204)
def add_incompatible_package(package_id: str, body: Ref, call: Plain) -> Response:
    return call.done(
        lambda ctx: ops.add_incompatible_package(ctx, package_id, body.object_id("accessPackages"))
    )


@router.delete(
    "/accessPackages/{package_id}/incompatibleAccessPackages/{other_id}/$ref", status_code=204
)
def remove_incompatible_package(package_id: str, other_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.remove_incompatible_package(ctx, package_id, other_id))


@router.get("/accessPackages/{package_id}/incompatibleGroups")
def list_incompatible_groups(package_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, options: packages.incompatible_groups(ctx, package_id, options),
        shaped(shapes.group),
        context=f"{CONTEXT}/incompatibleGroups",
        parent=lambda ctx: packages.get_package(ctx, package_id),
    )


@router.post("/accessPackages/{package_id}/incompatibleGroups/$ref", status_code=204)
def add_incompatible_group(package_id: str, body: Ref, call: Plain) -> Response:
    return call.done(
        lambda ctx: ops.add_incompatible_group(ctx, package_id, body.object_id("groups"))
    )


@router.delete("/accessPackages/{package_id}/incompatibleGroups/{group_id}/$ref", status_code=204)
def remove_incompatible_group(package_id: str, group_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.remove_incompatible_group(ctx, package_id, group_id))
