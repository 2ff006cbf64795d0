"""Reading connected organizations, their sponsors and the tenant settings: every list and
detail read, with its authorization.

Who may read (docs/decisions/0012): those who manage connected organizations, and anyone holding
a role on some catalog (owners, managers and readers pick organizations and sponsors when they
write policies). Everyone else is refused with ``Forbidden`` on every read, whether or not the
organization exists: the answer is about the collection, never about one object, so it leaks
nothing and does not depend on the id.

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries);
the write operations (``orgs``, ``sponsors``, ``settings``) start from these reads too.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select

from remit import listing, validation
from remit.authz.actor import Actor
from remit.authz.decide import can, can_anywhere
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.directory.queries import principals_by_id
from remit.errors import Forbidden, Invalid, NotFound
from remit.external import settings as tenant_settings
from remit.listing import F, ListOptions, Page
from remit.models.directory import Group, User
from remit.models.external import (
    ConnectedOrganization,
    ConnectedOrganizationSponsor,
    TenantSettings,
)

# What a list may be filtered and ordered on (Graph's connectedOrganization property names).
ORGANIZATION_FIELDS = {
    "id": F(ConnectedOrganization.id),
    "displayName": F(ConnectedOrganization.display_name),
    "description": F(ConnectedOrganization.description),
    "state": F(ConnectedOrganization.state, enum=True),
    "createdDateTime": F(ConnectedOrganization.created_at),
    "modifiedDateTime": F(ConnectedOrganization.modified_at),
}
# A sponsor list is a list of directory objects: only their id is known without a join.
SPONSOR_FIELDS = {"id": F(ConnectedOrganizationSponsor.principal_id)}
SPONSOR_KINDS = ("internal", "external")

# A sponsor is a user (internal: a member; external: a guest) or, internal only, a group.
Sponsor = User | Group


# ---------------------------------------------------------------- who may read


def can_read(actor: Actor) -> bool:
    """Administrators of organizations, and holders of any catalog role (see module doc)."""
    return can(actor, Task.CONNECTED_ORGS_MANAGE) or can_anywhere(actor, Task.CATALOG_READ)


def _authorize_read(ctx: Ctx) -> None:
    if not can_read(ctx.actor):
        raise Forbidden("reading connected organizations needs an entitlement-management role")


def sponsor_kind(kind: str) -> str:
    if kind not in SPONSOR_KINDS:
        raise Invalid("a sponsor is internal or external")
    return kind


# ---------------------------------------------------------------- organizations


def organizations(ctx: Ctx, options: ListOptions) -> Page[ConnectedOrganization]:
    """A page of the tenant's connected organizations (all of them, for a reader)."""
    _authorize_read(ctx)
    return listing.page(
        ctx.session,
        select(ConnectedOrganization),
        key=ConnectedOrganization.id,
        fields=ORGANIZATION_FIELDS,
        options=options,
    )


def organization(ctx: Ctx, organization_id: str) -> ConnectedOrganization:
    """One organization; an id that names none (or cannot, with a control character in it) is
    ``NotFound``."""
    _authorize_read(ctx)
    usable = validation.usable_id(organization_id)
    org = ctx.session.get(ConnectedOrganization, organization_id) if usable else None
    if org is None:
        raise NotFound(f"connected organization {organization_id} was not found")
    return org


# ---------------------------------------------------------------- sponsors


def sponsors(ctx: Ctx, organization_id: str, kind: str, options: ListOptions) -> Page[Sponsor]:
    """A page of one organization's sponsors of one kind, as the users and groups they are.

    The page (its count, its continuation) is over the sponsor rows, by principal id; a
    principal that is gone from the directory is left out of the items."""
    org = organization(ctx, organization_id)
    stmt = select(ConnectedOrganizationSponsor).where(
        ConnectedOrganizationSponsor.organization_id == org.id,
        ConnectedOrganizationSponsor.kind == sponsor_kind(kind),
    )
    found = listing.page(
        ctx.session,
        stmt,
        key=ConnectedOrganizationSponsor.principal_id,
        fields=SPONSOR_FIELDS,
        options=options,
    )
    principals = principals_by_id(ctx.session, [row.principal_id for row in found.items])
    items = [principals[r.principal_id] for r in found.items if r.principal_id in principals]
    return Page(items, found.count, found.next_skip, found.next_skiptoken)


def sponsors_by_organization(
    ctx: Ctx, organization_ids: Collection[str], kinds: Collection[str]
) -> dict[tuple[str, str], list[Sponsor]]:
    """The sponsors of several organizations at once (a page's ``$expand``), by (organization
    id, kind), each list in principal id order; two queries whatever the page's size."""
    _authorize_read(ctx)
    if not organization_ids or not kinds:
        return {}
    links = list(
        ctx.session.scalars(
            select(ConnectedOrganizationSponsor)
            .where(
                ConnectedOrganizationSponsor.organization_id.in_(list(organization_ids)),
                ConnectedOrganizationSponsor.kind.in_([sponsor_kind(k) for k in kinds]),
            )
            .order_by(ConnectedOrganizationSponsor.principal_id)
        )
    )
    principals = principals_by_id(ctx.session, {link.principal_id for link in links})
    found: dict[tuple[str, str], list[Sponsor]] = {}
    for link in links:
        if link.principal_id in principals:
            found.setdefault((link.organization_id, link.kind), []).append(
                principals[link.principal_id]
            )
    return found


# ---------------------------------------------------------------- settings


def settings(ctx: Ctx) -> TenantSettings:
    """The tenant's settings, for those who may read connected organizations. A read never
    writes: before the first change the row may not exist, and its defaults are returned."""
    if not can_read(ctx.actor):
        raise Forbidden("reading the settings needs an entitlement-management role")
    return tenant_settings.get_settings(ctx.session, now=ctx.now, create=False)
