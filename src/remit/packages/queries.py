"""Reading access packages: one package, a page of them, their resource role scopes and the
packages and groups they are incompatible with, with the packages' visibility filter.

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries).
A package is readable with ``PACKAGE_READ`` on its catalog; one the actor may not read is
``NotFound``, exactly like one that does not exist. What hangs off a package (its resource role
scopes, its incompatibilities) is readable with the package. The helpers that fill in a
navigation (``catalogs_of``, ``role_scopes_of``, ...) take objects already read here; those that
reach other packages (``incompatible_of``) keep to the packages the actor may read.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from remit import listing, validation
from remit.authz.actor import Actor
from remit.authz.decide import can
from remit.authz.tasks import Task
from remit.authz.visibility import catalog_filter
from remit.catalogs.queries import get_catalog
from remit.context import Ctx
from remit.db import Reader, by_id
from remit.directory.queries import GROUP_FIELDS
from remit.errors import NotFound
from remit.listing import F, ListOptions, Page
from remit.lookup import by_parent
from remit.models.catalogs import Catalog, ResourceRole, ResourceScope
from remit.models.directory import Group
from remit.models.packages import (
    AccessPackage,
    IncompatibleGroup,
    IncompatiblePackage,
    ResourceRoleScope,
)

# What each list may be filtered and ordered on (Graph's property names).
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
RRS_FIELDS = {
    "role/id": F(ResourceRoleScope.role_id),
    "scope/id": F(ResourceRoleScope.scope_id),
    "createdDateTime": F(ResourceRoleScope.created_at),
}


# ---------------------------------------------------------------- packages


def visible_packages(ctx: Ctx) -> Select[AccessPackage]:
    return _readable_by(ctx.actor)


def _readable_by(actor: Actor) -> Select[AccessPackage]:
    return select(AccessPackage).where(
        catalog_filter(actor, Task.PACKAGE_READ, AccessPackage.catalog_id)
    )


def get_package(ctx: Ctx, package_id: str) -> AccessPackage:
    """The package, or NotFound when it does not exist *or* the actor may not see it."""
    found = validation.usable_id(package_id)
    package = ctx.session.get(AccessPackage, package_id) if found else None
    if package is None or not can(ctx.actor, Task.PACKAGE_READ, package.catalog_id):
        raise NotFound(f"access package {package_id} was not found")
    return package


def _page(ctx: Ctx, stmt: Select[AccessPackage], options: ListOptions) -> Page[AccessPackage]:
    return listing.page(
        ctx.session, stmt, key=AccessPackage.id, fields=PACKAGE_FIELDS, options=options
    )


def packages(ctx: Ctx, options: ListOptions) -> Page[AccessPackage]:
    """A page of the packages the actor may read, by id."""
    return _page(ctx, visible_packages(ctx), options)


def all_packages(ctx: Ctx) -> list[AccessPackage]:
    """Every package the actor may read (a listing for a person, not a page)."""
    return list(ctx.session.execute(visible_packages(ctx)).scalars())


def catalog_packages(ctx: Ctx, catalog_id: str, options: ListOptions) -> Page[AccessPackage]:
    """A page of the packages the actor may read in a catalog it may read."""
    catalog = get_catalog(ctx, catalog_id)
    return _page(ctx, visible_packages(ctx).where(AccessPackage.catalog_id == catalog.id), options)


def package_catalog(ctx: Ctx, package_id: str) -> Catalog:
    """The catalog of a package the actor may read (shown with the package)."""
    package = get_package(ctx, package_id)
    catalog = ctx.session.get(Catalog, package.catalog_id)
    assert catalog is not None  # noqa: S101 - foreign key
    return catalog


def packages_in(ctx: Ctx, found: Sequence[Catalog]) -> dict[str, list[AccessPackage]]:
    """The packages the actor may read in each of these catalogs, by catalog id."""
    stmt = visible_packages(ctx)
    return by_parent(ctx.session, stmt, AccessPackage.catalog_id, [c.id for c in found])


def packages_in_catalog_on(reader: Reader, actor: Actor, catalog_id: str) -> list[AccessPackage]:
    """The packages the actor may read in one catalog, on the hot catalog read's bare
    connection (docs/decisions/0005): an ORM session joins its transaction only for this."""
    stmt = _readable_by(actor).where(AccessPackage.catalog_id == catalog_id)
    if isinstance(reader, Session):
        return list(reader.execute(stmt).scalars())
    with Session(bind=reader) as session:
        return list(session.execute(stmt).scalars())


def catalogs_of(ctx: Ctx, found: Sequence[AccessPackage]) -> dict[str, Catalog]:
    """The catalogs of these packages (read here), by id, in one round trip."""
    return by_id(ctx.session, Catalog, (p.catalog_id for p in found))


# ---------------------------------------------------------------- resource role scopes


def role_scopes(ctx: Ctx, package_id: str, options: ListOptions) -> Page[ResourceRoleScope]:
    """A page of the resource role scopes of a package the actor may read."""
    package = get_package(ctx, package_id)
    stmt = select(ResourceRoleScope).where(ResourceRoleScope.access_package_id == package.id)
    return listing.page(
        ctx.session, stmt, key=ResourceRoleScope.role_id, fields=RRS_FIELDS, options=options
    )


def get_resource_role_scope(ctx: Ctx, package_id: str, rrs: str) -> ResourceRoleScope:
    """One resource role scope (``{roleId}_{scopeId}``) of a package the actor may read."""
    package = get_package(ctx, package_id)
    role_id, _, scope_id = rrs.partition("_")
    found = (
        ctx.session.get(ResourceRoleScope, (package.id, role_id, scope_id))
        if validation.usable_id(rrs)
        else None
    )
    if found is None:
        raise NotFound(f"resource role scope {rrs} was not found")
    return found


def role_scopes_of(ctx: Ctx, found: Sequence[AccessPackage]) -> dict[str, list[ResourceRoleScope]]:
    """The resource role scopes of each of these packages (read here), by package id."""
    stmt = select(ResourceRoleScope)
    column = ResourceRoleScope.access_package_id
    return by_parent(ctx.session, stmt, column, [p.id for p in found])


def roles_of(ctx: Ctx, found: Sequence[ResourceRoleScope]) -> dict[str, ResourceRole]:
    """The roles of these resource role scopes (read here), by id, in one round trip."""
    return by_id(ctx.session, ResourceRole, (r.role_id for r in found))


def scopes_of(ctx: Ctx, found: Sequence[ResourceRoleScope]) -> dict[str, ResourceScope]:
    """The scopes of these resource role scopes (read here), by id, in one round trip."""
    return by_id(ctx.session, ResourceScope, (r.scope_id for r in found))


# ---------------------------------------------------------------- separation of duties


def _linked(reverse: bool) -> tuple[InstrumentedAttribute[str], InstrumentedAttribute[str]]:
    """The link table's (from, to) columns: ``incompatibleAccessPackages`` go from a package to
    those it names, ``accessPackagesIncompatibleWith`` from the named back to the naming."""
    link_from, link_to = IncompatiblePackage.access_package_id, IncompatiblePackage.incompatible_id
    return (link_to, link_from) if reverse else (link_from, link_to)


def incompatible_packages(
    ctx: Ctx, package_id: str, options: ListOptions, *, reverse: bool = False
) -> Page[AccessPackage]:
    """A page of the packages the actor may read that a package it may read is incompatible
    with (``reverse``: that are incompatible with it)."""
    package = get_package(ctx, package_id)
    link_from, link_to = _linked(reverse)
    linked = select(link_to).where(link_from == package.id)
    return _page(ctx, visible_packages(ctx).where(AccessPackage.id.in_(linked)), options)


def incompatible_of(
    ctx: Ctx, found: Sequence[AccessPackage], *, reverse: bool = False
) -> dict[str, list[AccessPackage]]:
    """For each of these packages (read here), the packages the actor may read that it is
    incompatible with (``reverse``: that are incompatible with it), by package id."""
    by_package: dict[str, list[AccessPackage]] = {p.id: [] for p in found}
    if not by_package:
        return by_package
    link_from, link_to = _linked(reverse)
    visible = visible_packages(ctx).with_only_columns(AccessPackage.id)
    pairs = ctx.session.execute(
        select(link_from, AccessPackage)
        .join(AccessPackage, AccessPackage.id == link_to)
        .where(link_from.in_(by_package), AccessPackage.id.in_(visible))
    )
    for owner, other in pairs:
        by_package[owner].append(other)
    return by_package


def incompatible_groups(ctx: Ctx, package_id: str, options: ListOptions) -> Page[Group]:
    """A page of the groups a package the actor may read is incompatible with."""
    package = get_package(ctx, package_id)
    stmt = select(Group).where(
        Group.id.in_(
            select(IncompatibleGroup.group_id).where(
                IncompatibleGroup.access_package_id == package.id
            )
        )
    )
    return listing.page(ctx.session, stmt, key=Group.id, fields=GROUP_FIELDS, options=options)


def incompatible_groups_of(ctx: Ctx, found: Sequence[AccessPackage]) -> dict[str, list[Group]]:
    """For each of these packages (read here), the groups it is incompatible with."""
    by_package: dict[str, list[Group]] = {p.id: [] for p in found}
    if by_package:
        pairs = ctx.session.execute(
            select(IncompatibleGroup.access_package_id, Group)
            .join(Group, Group.id == IncompatibleGroup.group_id)
            .where(IncompatibleGroup.access_package_id.in_(by_package))
        )
        for owner, group in pairs:
            by_package[owner].append(group)
    return by_package
