"""SQL pieces the sweep's statements share, one way on each engine."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    BindParameter,
    ColumnElement,
    Select,
    String,
    bindparam,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

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
    """``column IN (values)`` with the values in one parameter, a JSON array that the database
    unpacks (SQLite ``json_each``, PostgreSQL ``json_array_elements_text``) and looks up value by
    value in the column's index. A chunk's thousand ids then cost neither a placeholder each to
    render and parse, nor a limit on bound parameters; and on PostgreSQL neither the driver's
    per-element quoting of an array nor, in the planner's estimate, a share of the table."""
    return among_param(dialect(session), column, None, listed(values))


def among_param(
    dialect_name: str, column: Any, key: str | None, value: str | None = None
) -> ColumnElement[bool]:
    """``among`` with the values in the parameter ``key`` (made by ``listed``)."""
    param = bindparam(key, value, type_=String)
    values: Select[Any]
    if dialect_name == "postgresql":
        values = select(func.json_array_elements_text(sa.cast(param, JSON)))
    else:
        values = select(literal_column("value")).select_from(func.json_each(param))
    return cast(ColumnElement[bool], column.in_(values))


def listed(values: Collection[str]) -> str:
    """The value of ``among_param``'s parameter: a JSON array."""
    return json.dumps(list(values))


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
