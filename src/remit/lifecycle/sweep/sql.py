"""SQL pieces the sweep's statements share, one way on each engine."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Select, String, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from remit.ids import ordered_head

# The random rest of a UUID after its first 15 characters (``xxx-Vxxx-xxxxxxxxxxxx``), made in
# SQL row by row; ``uuid`` below puts a version 4 or a version 7 head before it.
_TAIL = {
    "postgresql": "substr(gen_random_uuid()::text, 16)",
    "sqlite": "substr(lower(hex(randomblob(2))), 2) || '-' || "
    "substr('89ab', 1 + abs(random()) % 4, 1) || substr(lower(hex(randomblob(2))), 2) || '-' || "
    "lower(hex(randomblob(6)))",
}
_V4_HEAD = {
    "postgresql": "substr(gen_random_uuid()::text, 1, 15)",
    "sqlite": "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'",
}
JSON_OBJECT = {"postgresql": func.json_build_object, "sqlite": func.json_object}


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def among(session: Session, column: Any, values: Collection[str]) -> ColumnElement[bool]:
    """``column IN (values)`` with the values in one parameter: an array on PostgreSQL
    (``= ANY``), a JSON array on SQLite (``IN (SELECT value FROM json_each(?))``, which SQLite
    answers by looking each value up in the column's index). A chunk's thousand ids then cost
    neither a placeholder each to render and parse, nor a limit on bound parameters."""
    if dialect(session) == "postgresql":
        return cast(ColumnElement[bool], column == sa.any_(literal(list(values), ARRAY(String))))
    listed: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(json.dumps(list(values)))
    )
    return cast(ColumnElement[bool], column.in_(listed))


def uuid(session: Session, *, ordered: bool = False) -> ColumnElement[str]:
    """A fresh UUID per row, made by the database: random (version 4), or with ``ordered``
    time-ordered (version 7, ``remit.ids``) for rows that land in an index on their id."""
    name = dialect(session)
    head: ColumnElement[str] = (
        literal(ordered_head(), String) if ordered else literal_column(_V4_HEAD[name], String)
    )
    return head.concat(literal_column(_TAIL[name], String))


def text(value: str) -> ColumnElement[str]:
    """A string parameter whose type the database knows (PostgreSQL's JSON functions ask)."""
    return sa.cast(literal(value, String), String)
