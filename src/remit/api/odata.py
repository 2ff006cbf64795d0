"""OData query options ($filter, $select, $expand, $top, $skiptoken, $count, $orderby).

``$filter`` is parsed by the ``odata-query`` library, type-checked here, and only then translated
to SQLAlchemy through its Core visitor, with identifiers resolved through a per-resource field
map, so that only documented properties (and path operands such as ``resource/id``) can be
filtered on. The check keeps to what both engines evaluate the same way: comparisons between
values of one type, ``and``/``or``/``not`` over conditions, and a few string functions. Anything
else (arithmetic, lambdas, date functions, comparing text with a number...) is a 400 before any
SQL is built, rather than a database error on PostgreSQL and a silent coercion on SQLite.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from odata_query import ast as oast
from odata_query import exceptions as oexc
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.sqlalchemy.core import AstToSqlAlchemyCoreVisitor
from sqlalchemy import ColumnElement, Select, func, literal, select
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import BindParameter

from remit import validation
from remit.db import UTCDateTime
from remit.errors import Invalid

MAX_FILTER_LENGTH = 2000
MAX_INT = 2**63 - 1
Column = ColumnElement[Any] | QueryableAttribute[Any]

# The kinds of value a $filter expression can have.
BOOLEAN, TEXT, NUMBER, INSTANT, NULL = "boolean", "text", "number", "date/time", "null"
_PY_KINDS: dict[type, str] = {
    bool: BOOLEAN,
    str: TEXT,
    int: NUMBER,
    float: NUMBER,
    datetime: INSTANT,
    date: INSTANT,
}
_LITERAL_KINDS: dict[type, str] = {
    oast.String: TEXT,
    oast.GUID: TEXT,
    oast.Integer: NUMBER,
    oast.Float: NUMBER,
    oast.Boolean: BOOLEAN,
    oast.DateTime: INSTANT,
    oast.Date: INSTANT,
    oast.Null: NULL,
}
# function name → (argument kinds, result kind); the second argument of the three
# substring tests must be a string literal (it is LIKE-escaped).
_FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "contains": ((TEXT, TEXT), BOOLEAN),
    "startswith": ((TEXT, TEXT), BOOLEAN),
    "endswith": ((TEXT, TEXT), BOOLEAN),
    "tolower": ((TEXT,), TEXT),
    "toupper": ((TEXT,), TEXT),
    "trim": ((TEXT,), TEXT),
    "length": ((TEXT,), NUMBER),
}


@dataclass(frozen=True)
class F:
    """A filterable property: its column; enums compare case-insensitively."""

    column: Column
    enum: bool = False

    @property
    def kind(self) -> str:
        return _PY_KINDS.get(python_type(self.column), TEXT)


def python_type(column: Column) -> type:
    column_type: Any = column.type
    # A TypeDecorator (UTCDateTime) reports ``object``; its implementation knows better.
    found: type = getattr(column_type, "impl_instance", column_type).python_type
    return found


class _Visitor(AstToSqlAlchemyCoreVisitor):
    def __init__(self, fields: dict[str, F]) -> None:
        self.fields = fields

    # ------------------------------------------------------------ type check

    def _lookup(self, name: str) -> F:
        found = self.fields.get(name) or self.fields.get(name.lower())
        if found is None:
            raise Invalid(f"$filter cannot use property {name!r}", target="$filter")
        return found

    @staticmethod
    def _path(node: oast.Attribute) -> str:
        parts = [node.attr]
        owner: Any = node.owner
        while isinstance(owner, oast.Attribute):
            parts.append(owner.attr)
            owner = owner.owner
        if not isinstance(owner, oast.Identifier):
            raise Invalid("$filter has an unsupported path", target="$filter")
        parts.append(owner.name)
        return "/".join(reversed(parts))

    def _property(self, node: Any) -> F | None:
        if isinstance(node, oast.Identifier):
            return self._lookup(node.name)
        if isinstance(node, oast.Attribute):
            return self._lookup(self._path(node))
        return None

    def kind(self, node: Any) -> str:
        """The kind of value ``node`` evaluates to; Invalid if it mixes kinds or is unsupported."""
        prop = self._property(node)
        if prop is not None:
            return prop.kind
        literal_kind = _LITERAL_KINDS.get(type(node))
        if literal_kind is not None:
            self._check_literal(node)
            return literal_kind
        if isinstance(node, oast.Compare):
            return self._compare_kind(node)
        if isinstance(node, oast.BoolOp):
            if self.kind(node.left) != BOOLEAN or self.kind(node.right) != BOOLEAN:
                raise Invalid("and/or join conditions, not values", target="$filter")
            return BOOLEAN
        if isinstance(node, oast.UnaryOp) and isinstance(node.op, oast.Not):
            if self.kind(node.operand) != BOOLEAN:
                raise Invalid("not applies to a condition, not a value", target="$filter")
            return BOOLEAN
        if isinstance(node, oast.Call):
            return self._call_kind(node)
        raise Invalid(f"$filter does not support {type(node).__name__}", target="$filter")

    @staticmethod
    def _check_literal(node: Any) -> None:
        # No stored value holds a control character (remit.validation), and PostgreSQL cannot
        # even take a NUL as a parameter: such a literal is the caller's error, not a query.
        if isinstance(node, oast.String) and validation.control_character(node.val) is not None:
            raise Invalid("$filter has a control character in a string", target="$filter")
        if isinstance(node, oast.Integer) and abs(node.py_val) > MAX_INT:
            raise Invalid("$filter has a number out of range", target="$filter")
        if isinstance(node, oast.Float) and not math.isfinite(node.py_val):
            raise Invalid("$filter has a number out of range", target="$filter")
        if isinstance(node, oast.DateTime | oast.Date):
            try:
                node.py_val  # noqa: B018 - parse now: a bad date is the caller's error
            except (ValueError, OverflowError) as exc:
                message = f"$filter has an invalid date {node.val!r}"
                raise Invalid(message, target="$filter") from exc

    def _compare_kind(self, node: oast.Compare) -> str:
        left = self.kind(node.left)
        if isinstance(node.comparator, oast.In):
            if not isinstance(node.right, oast.List) or not node.right.val:
                raise Invalid("in takes a parenthesised list of values", target="$filter")
            kinds = {self.kind(item) for item in node.right.val} - {NULL}
            if kinds - {left}:
                raise Invalid("in compares values of one type", target="$filter")
            return BOOLEAN
        right = self.kind(node.right)
        if NULL in (left, right):
            if not isinstance(node.comparator, oast.Eq | oast.NotEq):
                raise Invalid("null can only be compared with eq or ne", target="$filter")
            return BOOLEAN
        if left != right:
            raise Invalid(f"$filter compares a {left} with a {right}", target="$filter")
        return BOOLEAN

    def _call_kind(self, node: oast.Call) -> str:
        name = node.func.name.lower()
        signature = _FUNCTIONS.get(name)
        if signature is None:
            message = f"$filter does not support the function {node.func.name}"
            raise Invalid(message, target="$filter")
        params, result = signature
        if len(node.args) != len(params) or any(
            self.kind(arg) != kind for arg, kind in zip(node.args, params, strict=True)
        ):
            raise Invalid(f"{name} takes {len(params)} text argument(s)", target="$filter")
        if len(params) == 2 and not isinstance(node.args[1], oast.String):
            raise Invalid(f"the second argument of {name} must be a string", target="$filter")
        return result

    # ------------------------------------------------------------ translation

    def _field(self, name: str) -> Column:
        found = self._lookup(name)
        return func.lower(found.column) if found.enum else found.column

    def visit_Identifier(self, node: oast.Identifier) -> Any:
        return self._field(node.name)

    def visit_Attribute(self, node: oast.Attribute) -> Any:
        return self._field(self._path(node))

    def visit_GUID(self, node: oast.GUID) -> Any:
        return literal(str(node.val))

    # Instants bind through the columns' own UTC type, so both engines compare like with like.
    def visit_DateTime(self, node: oast.DateTime) -> Any:
        value = node.py_val
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return literal(value, type_=UTCDateTime())

    def visit_Date(self, node: oast.Date) -> Any:
        day = node.py_val
        return literal(datetime(day.year, day.month, day.day, tzinfo=UTC), type_=UTCDateTime())

    def _is_enum(self, node: Any) -> bool:
        prop = self._property(node)
        return prop is not None and prop.enum

    def visit_Compare(self, node: oast.Compare) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        # Enum columns are lowered in _field; lower the literal(s) they are compared with.
        if self._is_enum(node.left):
            right = _lowered(right)
        if self._is_enum(node.right):
            left = _lowered(left)
        return self.visit(node.comparator)(left, right)

    def _substring_test(self, name: str, field: Any, substring: oast.String) -> Any:
        column = self.visit(field)
        return getattr(column, name)(substring.py_val, autoescape=True)

    def func_contains(self, field: Any, substr: Any) -> Any:
        return self._substring_test("contains", field, substr)

    def func_startswith(self, field: Any, substr: Any) -> Any:
        return self._substring_test("startswith", field, substr)

    def func_endswith(self, field: Any, substr: Any) -> Any:
        return self._substring_test("endswith", field, substr)


def _lowered(value: Any) -> Any:
    if isinstance(value, BindParameter) and isinstance(value.value, str):
        return value.value.lower()
    if isinstance(value, list):
        return [_lowered(v) for v in value]
    return value


_lexer = ODataLexer()
_parser = ODataParser()


def parse_filter(text: str, fields: dict[str, F]) -> ColumnElement[bool]:
    if len(text) > MAX_FILTER_LENGTH:
        raise Invalid("$filter is too long", target="$filter")
    visitor = _Visitor(fields)
    try:
        tree = _parser.parse(_lexer.tokenize(text))
        if tree is None:
            raise Invalid("$filter is empty or incomplete", target="$filter")
        if visitor.kind(tree) != BOOLEAN:
            raise Invalid("$filter must be a condition", target="$filter")
        clause: ColumnElement[bool] = visitor.visit(tree)
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


def decode_token(token: str, key: Column) -> Any:
    """The last key of the previous page; it must have the key's type (str or int)."""
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise Invalid("$skiptoken is not valid", target="$skiptoken") from exc
    expected = python_type(key)
    if type(value) is not expected or (isinstance(value, int) and abs(value) > MAX_INT):
        raise Invalid("$skiptoken is not valid", target="$skiptoken")
    if isinstance(value, str) and not validation.usable_id(value):
        raise Invalid("$skiptoken is not valid", target="$skiptoken")
    return value


def count_of(stmt: Select[Any]) -> Select[int]:
    return select(func.count()).select_from(stmt.order_by(None).subquery())
