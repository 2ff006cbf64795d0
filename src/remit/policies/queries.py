"""Reading assignment policies: the ones the actor may see (spec §5; graph-api §A.3.4), one at a
time or a page of them, and the requestor's view (getApplicablePolicyRequirements,
filterByCurrentUser(on='allowedRequestor'), §A.3.3).

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries).
A policy is read with ``package:read`` on its catalog, as its access package is; one the actor may
not read is ``NotFound``, never ``Forbidden``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, false, select

from remit import listing, validation
from remit.authz.decide import can
from remit.authz.tasks import Task
from remit.authz.visibility import catalog_filter
from remit.context import Ctx
from remit.db import by_id
from remit.errors import NotFound
from remit.listing import F, ListOptions, Page
from remit.models.catalogs import Catalog
from remit.models.directory import User
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy
from remit.packages.queries import PACKAGE_FIELDS
from remit.policies import scope

# What a list may be filtered and ordered on (Graph's accessPackageAssignmentPolicy names).
POLICY_FIELDS = {
    "id": F(AssignmentPolicy.id),
    "displayName": F(AssignmentPolicy.display_name),
    "description": F(AssignmentPolicy.description),
    "accessPackage/id": F(AssignmentPolicy.access_package_id),
    "catalog/id": F(AssignmentPolicy.catalog_id),
    "createdDateTime": F(AssignmentPolicy.created_at),
    "modifiedDateTime": F(AssignmentPolicy.modified_at),
}


# ---------------------------------------------------------------- the catalogs' view


def visible_policies(ctx: Ctx) -> Select[AssignmentPolicy]:
    """The policies of the catalogs on which the actor may read access packages."""
    return select(AssignmentPolicy).where(
        catalog_filter(ctx.actor, Task.PACKAGE_READ, AssignmentPolicy.catalog_id)
    )


def policies(ctx: Ctx, options: ListOptions) -> Page[AssignmentPolicy]:
    """A page of the policies the actor may see, by id."""
    return _page(ctx, visible_policies(ctx), options)


def package_policies(
    ctx: Ctx, package: AccessPackage, options: ListOptions
) -> Page[AssignmentPolicy]:
    """A page of the policies the actor may see of ``package``, one read through
    ``packages.queries.get_package`` (so one the actor may read)."""
    stmt = visible_policies(ctx).where(AssignmentPolicy.access_package_id == package.id)
    return _page(ctx, stmt, options)


def _page(ctx: Ctx, stmt: Select[AssignmentPolicy], options: ListOptions) -> Page[AssignmentPolicy]:
    return listing.page(
        ctx.session, stmt, key=AssignmentPolicy.id, fields=POLICY_FIELDS, options=options
    )


def policy(ctx: Ctx, policy_id: str, *, for_update: bool = False) -> AssignmentPolicy:
    """The policy, or ``NotFound`` when it does not exist or is outside the actor's catalogs.

    ``for_update`` locks its row, for a change that must see the policy as it stays until commit.
    """
    found = (
        ctx.session.get(AssignmentPolicy, policy_id, with_for_update=for_update or None)
        if validation.usable_id(policy_id)
        else None
    )
    if found is None or not can(ctx.actor, Task.PACKAGE_READ, found.catalog_id):
        raise NotFound(f"assignment policy {policy_id} was not found")
    return found


def policy_packages(ctx: Ctx, rows: Sequence[AssignmentPolicy]) -> dict[str, AccessPackage]:
    """The access packages of ``rows`` (policies the actor may see, so packages it may read), by
    id, in one statement (``$expand=accessPackage``)."""
    return by_id(ctx.session, AccessPackage, (r.access_package_id for r in rows))


def policy_catalogs(ctx: Ctx, rows: Sequence[AssignmentPolicy]) -> dict[str, Catalog]:
    """The catalogs of ``rows`` (policies the actor may see), by id, in one statement
    (``$expand=catalog``)."""
    return by_id(ctx.session, Catalog, (r.catalog_id for r in rows))


# ---------------------------------------------------------------- the requestor's view


def applicable_policies(ctx: Ctx, package_id: str) -> list[AssignmentPolicy]:
    """The policies through which the caller may request the package for themself now
    (getApplicablePolicyRequirements), in the top priority category only, oldest first.

    A package is found when the caller may request it (hidden or not, spec §4.4) or may read it
    through its catalog (then the list may be empty); otherwise it does not exist for them.
    """
    package = (
        ctx.session.get(AccessPackage, package_id) if validation.usable_id(package_id) else None
    )
    if package is None:
        raise NotFound(f"access package {package_id} was not found")
    user = ctx.session.get(User, ctx.actor.user_id)
    found: list[AssignmentPolicy] = []
    if user is not None:
        found = scope.requestable_policies(ctx.session, package.id, user, ctx.actor.group_ids)
    if not found and not can(ctx.actor, Task.PACKAGE_READ, package.catalog_id):
        raise NotFound(f"access package {package_id} was not found")
    return found


def requestable_packages(ctx: Ctx, options: ListOptions) -> Page[AccessPackage]:
    """filterByCurrentUser(on='allowedRequestor'): a page of the packages the caller can find
    and request for themself, by id."""
    return listing.page(
        ctx.session, requestable(ctx), key=AccessPackage.id, fields=PACKAGE_FIELDS, options=options
    )


def requestable(ctx: Ctx) -> Select[AccessPackage]:
    """The packages the caller can find in My Access and request for themself (spec §4.4), as
    a select for a caller to narrow; an actor with no user row requests nothing."""
    user = ctx.session.get(User, ctx.actor.user_id)
    if user is None:
        return select(AccessPackage).where(false())
    return scope.requestable_packages(ctx.session, user, ctx.actor.group_ids)
