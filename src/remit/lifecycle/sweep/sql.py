"""SQL pieces the sweep's statements share, one way on each engine."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    String,
    func,
    literal,
    literal_column,
)

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


def uuid(dialect_name: str, head: ColumnElement[str] | None = None) -> ColumnElement[str]:
    """A fresh UUID per row, made by the database: random (version 4), or after ``head``, the
    first 15 characters of a time-ordered one (version 7, ``remit.ids.ordered_head``), for rows
    that land in an index on their id."""
    if head is None:
        head = literal_column(_V4_HEAD[dialect_name], String)
    return head.concat(literal_column(_TAIL[dialect_name], String))


def text(value: str | BindParameter[str]) -> ColumnElement[str]:
    """A string (or a string parameter) whose type the database knows (PostgreSQL's JSON
    functions ask)."""
    return sa.cast(value if isinstance(value, BindParameter) else literal(value, String), String)
