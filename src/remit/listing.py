"""Lists: a filter, an order, a page, a count, over a query the domain has already restricted.

The read side's one list ceremony. A domain query (``<domain>/queries.py``) builds the select with
its visibility filter and its authorization, names the properties that may be filtered and ordered
on (``F``), and hands both to ``page``; the adapters only parse the request into ``ListOptions``
and render the ``Page``.

The filter language is OData's ``$filter``, the one Graph clients send: it is parsed by the
``odata-query`` library, type-checked here, and only then translated to SQLAlchemy through its Core
visitor, with identifiers resolved through the query's field map, so that only documented
properties (and path operands such as ``resource/id``) can be filtered on. The check keeps to what
both engines evaluate the same way: comparisons between values of one type, ``and``/``or``/``not``
over conditions, and a few string functions. Anything else (arithmetic, lambdas, date functions,
comparing text with a number...) is ``Invalid`` before any SQL is built, rather than a database
error on PostgreSQL and a silent coercion on SQLite. Continuation is keyset paging on the query's
key (``skiptoken``), or an offset when an order is asked for.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

from odata_query import ast as oast
from odata_query import exceptions as oexc
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.sqlalchemy.core import AstToSqlAlchemyCoreVisitor
from sqlalchemy import ColumnElement, Select, func, literal, select
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.elements import BindParameter

from remit import validation
from remit.db import UTCDateTime
from remit.errors import Invalid

T = TypeVar("T")

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
    def __init__(self, fields: Mapping[str, F]) -> None:
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


def parse_filter(text: str, fields: Mapping[str, F]) -> ColumnElement[bool]:
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


# ---------------------------------------------------------------- one page of a list


@dataclass(frozen=True)
class ListOptions:
    """What a caller asks of a list (Graph's ``$filter``, ``$orderby``, ``$top``, ``$skip``,
    ``$skiptoken``, ``$count``), and the server's page size."""

    page_size: int
    filter: str | None = None
    orderby: str | None = None
    top: int | None = None
    skip: int | None = None
    skiptoken: str | None = None
    count: bool = False
    # The caller's own checks of the request (an adapter's ``$expand``): ``page`` runs them
    # after the query has authorized and before any SQL of its own, the order in which a
    # request's faults are reported.
    check: Callable[[], None] | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; at most one of ``next_skip``/``next_skiptoken`` says how to go on."""

    items: list[T]
    count: int | None = None
    next_skip: int | None = None
    next_skiptoken: str | None = None


def page(
    session: Session,
    stmt: Select[Any],
    *,
    key: Column,
    fields: Mapping[str, F],
    options: ListOptions,
) -> Page[Any]:
    """Run ``stmt`` (already restricted to what the caller may see) as one page of a list.

    ``key`` orders the list and carries keyset continuation; ``fields`` are the properties the
    caller may filter and order on."""
    if options.check is not None:
        options.check()
    if options.filter:
        stmt = stmt.where(parse_filter(options.filter, fields))
    count = session.execute(count_of(stmt)).scalar_one() if options.count else None
    size = min(options.top, options.page_size) if options.top is not None else options.page_size
    next_skip: int | None = None
    next_skiptoken: str | None = None
    if options.orderby:
        stmt = stmt.order_by(*order_by(options.orderby, fields), key)
        offset = options.skip or 0
        rows = list(session.execute(stmt.offset(offset).limit(size + 1)).scalars())
        if len(rows) > size:
            next_skip = offset + size
    else:
        if options.skiptoken:
            stmt = stmt.where(key > decode_token(options.skiptoken, key))
        elif options.skip:
            stmt = stmt.order_by(key).offset(options.skip)
        rows = list(session.execute(stmt.order_by(key).limit(size + 1)).scalars())
        if len(rows) > size:
            next_skiptoken = encode_token(getattr(rows[size - 1], str(key.key)))
    if size == 0:
        next_skip = next_skiptoken = None
    return Page(rows[:size], count, next_skip, next_skiptoken)


def order_by(text: str, fields: Mapping[str, F]) -> list[ColumnElement[Any]]:
    order: list[ColumnElement[Any]] = []
    for part in text.split(","):
        name, _, direction = part.strip().partition(" ")
        found = fields.get(name)
        if found is None or direction.strip().lower() not in ("", "asc", "desc"):
            raise Invalid(f"$orderby cannot use {part.strip()!r}", target="$orderby")
        order.append(
            found.column.desc() if direction.strip().lower() == "desc" else found.column.asc()
        )
    return order
