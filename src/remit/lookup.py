"""Reading rows for a page the caller has already read: what its ``$expand`` and navigations
fill in, in one statement whatever the page's size (``db.by_id`` loads rows by their own id;
``by_parent`` loads the rows that hang off each of a page's rows)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")


def by_parent(
    session: Session,
    rows: Select[T],
    parent: InstrumentedAttribute[str],
    parent_ids: Collection[str],
) -> dict[str, list[T]]:
    """The ``rows`` whose ``parent`` column is one of ``parent_ids``, in the statement's order,
    grouped by that id: one list for each id (empty for a parent with none), and no statement
    at all without ids."""
    found: dict[str, list[T]] = {i: [] for i in parent_ids}
    if found:
        for row in session.execute(rows.where(parent.in_(list(found)))).scalars():
            found[getattr(row, parent.key)].append(row)
    return found
