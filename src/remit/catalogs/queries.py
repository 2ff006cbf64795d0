"""Reading catalogs and what they hold: every list and detail read, with its visibility filter.

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries).
"""

from __future__ import annotations

from sqlalchemy import or_

from remit.catalogs.operations import visible_catalogs
from remit.context import Ctx
from remit.errors import NotFound
from remit.models.catalogs import Catalog


def find_catalog(ctx: Ctx, name_or_id: str) -> Catalog:
    """A catalog the actor can see, by display name (case-insensitive) or id; any other is
    ``NotFound`` (no existence leaks)."""
    found = ctx.session.execute(
        visible_catalogs(ctx).where(
            or_(Catalog.name_key == name_or_id.lower(), Catalog.id == name_or_id)
        )
    ).scalar()
    if found is None:
        raise NotFound(f"no catalog {name_or_id!r}")
    return found
