"""Reading a catalog's custom extensions: a page of them, one of them.

Reading needs ``catalog:read`` on the catalog: a catalog the actor may not see, and an extension
that is not in it, are ``NotFound``. The secret is a column like any other here: never showing
it is the renderers' rule (``notify.extensions``' module doc).

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries);
the write operations (``notify.extensions``) start from these reads too.
"""

from __future__ import annotations

from sqlalchemy import select

from remit import listing, validation
from remit.catalogs.queries import get_catalog
from remit.context import Ctx
from remit.errors import NotFound
from remit.listing import F, ListOptions, Page
from remit.models.notify import CustomExtension

# What a list may be filtered and ordered on (Graph's customCalloutExtension property names).
EXTENSION_FIELDS = {
    "id": F(CustomExtension.id),
    "displayName": F(CustomExtension.display_name),
    "description": F(CustomExtension.description),
    "createdDateTime": F(CustomExtension.created_at),
    "lastModifiedDateTime": F(CustomExtension.modified_at),
}


def extensions(ctx: Ctx, catalog_id: str, options: ListOptions) -> Page[CustomExtension]:
    """A page of one catalog's custom extensions."""
    catalog = get_catalog(ctx, catalog_id)
    return listing.page(
        ctx.session,
        select(CustomExtension).where(CustomExtension.catalog_id == catalog.id),
        key=CustomExtension.id,
        fields=EXTENSION_FIELDS,
        options=options,
    )


def extension(ctx: Ctx, catalog_id: str, extension_id: str) -> CustomExtension:
    """One custom extension of a catalog the actor may see; any other id (one with a control
    character names none) is ``NotFound``."""
    catalog = get_catalog(ctx, catalog_id)
    usable = validation.usable_id(extension_id)
    found = ctx.session.get(CustomExtension, extension_id) if usable else None
    if found is None or found.catalog_id != catalog.id:
        raise NotFound(f"custom extension {extension_id} was not found in this catalog")
    return found
