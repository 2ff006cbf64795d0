"""Catalog reads for hot paths: one prepared statement on a connection, no ORM session.

The rules are those of ``queries.get_catalog``: a catalog the actor may not read is
``NotFound``, exactly like one that does not exist. The API's single-catalog GET is served here
(see docs/decisions/0005); writes and every other read stay with the ORM.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from remit import validation
from remit.authz.actor import Actor
from remit.authz.decide import can
from remit.authz.tasks import Task
from remit.db import HotSelect, Reader
from remit.errors import NotFound
from remit.models.catalogs import Catalog


class CatalogRow(NamedTuple):
    """A catalog's columns, with the ORM object's attribute names (so the shapes render it)."""

    id: str
    display_name: str
    name_key: str
    description: str | None
    state: str
    is_externally_visible: bool
    catalog_type: str
    created_at: datetime
    modified_at: datetime
    created_by: str | None


if CatalogRow._fields != tuple(c.key for c in Catalog.__table__.c):
    raise RuntimeError("CatalogRow is out of step with the catalogs table")

_CATALOG = HotSelect(select(*Catalog.__table__.c).where(Catalog.id == bindparam("catalog_id")))


def read_catalog(reader: Reader, actor: Actor, catalog_id: str) -> CatalogRow:
    """The catalog, or NotFound when it does not exist *or* the actor may not see it.

    On a bare connection (the hot path) or in a session's transaction, the same statement."""
    if not validation.usable_id(catalog_id) or not can(actor, Task.CATALOG_READ, catalog_id):
        raise NotFound(f"catalog {catalog_id!r} was not found")
    params = {"catalog_id": catalog_id}
    rows = (
        _CATALOG.in_session(reader, params)
        if isinstance(reader, Session)
        else _CATALOG.rows(reader, params)
    )
    if not rows:
        raise NotFound(f"catalog {catalog_id} was not found")
    return CatalogRow(*rows[0])
