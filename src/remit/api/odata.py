"""OData query options ($filter, $select, $expand, $top, $skiptoken, $count, $orderby).

``$filter`` is parsed by the ``odata-query`` library and translated to SQLAlchemy through its
Core visitor, with identifiers resolved through a per-resource field map, so that only
documented properties (and path operands such as ``resource/id``) can be filtered on.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from odata_query import ast as oast
from odata_query import exceptions as oexc
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.sqlalchemy.core import AstToSqlAlchemyCoreVisitor
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import BindParameter

from remit.errors import Invalid

MAX_FILTER_LENGTH = 2000
Column = ColumnElement[Any] | QueryableAttribute[Any]


@dataclass(frozen=True)
class F:
    """A filterable property: its column; enums compare case-insensitively."""

    column: Column
    enum: bool = False


class _Visitor(AstToSqlAlchemyCoreVisitor):
    def __init__(self, fields: dict[str, F]) -> None:
        self.fields = fields

    def _field(self, name: str) -> Column:
        found = self.fields.get(name) or self.fields.get(name.lower())
        if found is None:
            raise Invalid(f"$filter cannot use property {name!r}", target="$filter")
        column = found.column
        return func.lower(column) if found.enum else column

    def visit_Identifier(self, node: oast.Identifier) -> Any:
        return self._field(node.name)

    def visit_Attribute(self, node: oast.Attribute) -> Any:
        parts = [node.attr]
        owner = node.owner
        while isinstance(owner, oast.Attribute):
            parts.append(owner.attr)
            owner = owner.owner
        if not isinstance(owner, oast.Identifier):
            raise Invalid("$filter has an unsupported path", target="$filter")
        parts.append(owner.name)
        return self._field("/".join(reversed(parts)))

    def _is_enum(self, node: Any) -> bool:
        if isinstance(node, oast.Identifier):
            name = node.name
        elif isinstance(node, oast.Attribute) and isinstance(node.owner, oast.Identifier):
            name = f"{node.owner.name}/{node.attr}"
        else:
            return False
        found = self.fields.get(name) or self.fields.get(name.lower())
        return found is not None and found.enum

    def visit_Compare(self, node: oast.Compare) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        # Enum columns are lowered in _field; lower the literal they are compared with as well.
        if self._is_enum(node.left) and isinstance(right, BindParameter):
            right = right.value.lower() if isinstance(right.value, str) else right
        if self._is_enum(node.right) and isinstance(left, BindParameter):
            left = left.value.lower() if isinstance(left.value, str) else left
        return self.visit(node.comparator)(left, right)


_lexer = ODataLexer()
_parser = ODataParser()


def parse_filter(text: str, fields: dict[str, F]) -> ColumnElement[bool]:
    if len(text) > MAX_FILTER_LENGTH:
        raise Invalid("$filter is too long", target="$filter")
    try:
        tree = _parser.parse(_lexer.tokenize(text))
        if tree is None:
            raise Invalid("$filter is empty or incomplete", target="$filter")
        clause: ColumnElement[bool] = _Visitor(fields).visit(tree)
    except Invalid:
        raise
    except (oexc.ODataException, NotImplementedError, TypeError, ValueError, AttributeError) as exc:
        raise Invalid(f"$filter could not be understood: {exc}", target="$filter") from exc
    except RecursionError as exc:
        raise Invalid("$filter is nested too deeply", target="$filter") from exc
    return clause


_EXPAND_ITEM = re.compile(r"\s*([A-Za-z]+)(?:\((.*)\))?\s*$")


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise Invalid("unbalanced parentheses", target="$expand")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise Invalid("unbalanced parentheses", target="$expand")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_expand(text: str | None) -> dict[str, dict[str, str]]:
    """``a,b($expand=c;$select=d)`` → {"a": {}, "b": {"$expand": "c", "$select": "d"}}."""
    result: dict[str, dict[str, str]] = {}
    if not text:
        return result
    for item in split_top_level(text):
        match = _EXPAND_ITEM.match(item)
        if not match:
            raise Invalid(f"$expand item {item!r} is not understood", target="$expand")
        options: dict[str, str] = {}
        for option in (match.group(2) or "").split(";"):
            if option.strip():
                name, sep, value = option.partition("=")
                if not sep:
                    raise Invalid(f"$expand option {option!r} is not understood", target="$expand")
                options[name.strip()] = value.strip()
        result[match.group(1)] = options
    return result


@dataclass
class Query:
    filter: str | None = None
    select: list[str] | None = None
    expand: dict[str, dict[str, str]] = field(default_factory=dict)
    top: int | None = None
    skip: int | None = None
    skiptoken: str | None = None
    count: bool = False
    orderby: str | None = None


def parse_select(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not all(re.fullmatch(r"[A-Za-z@.]+", n) for n in names):
        raise Invalid("$select lists property names separated by commas", target="$select")
    return names


def parse_top(value: str | None, name: str = "$top") -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 9:
        raise Invalid(f"{name} must be a non-negative integer", target=name)
    return int(value)


def parse_bool(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise Invalid(f"{name} must be true or false", target=name)
    return value.lower() == "true"


def apply_select(item: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    if not names:
        return item
    keep = set(names) | {"id"}
    return {k: v for k, v in item.items() if k in keep or k.startswith("@odata.")}


def encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_token(token: str) -> Any:
    try:
        padded = token + "=" * (-len(token) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise Invalid("$skiptoken is not valid", target="$skiptoken") from exc


def count_of(stmt: Select[Any]) -> Select[int]:
    return select(func.count()).select_from(stmt.order_by(None).subquery())
