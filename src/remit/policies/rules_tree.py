"""The tree of a parsed membership rule (``remit.policies.rules``): properties, operators,
comparisons and the logic that joins them, each evaluated in Python (``matches``) and in SQL
(``to_sql``) with the same semantics, and printed canonically (``str``)."""

from __future__ import annotations

import operator
import string
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, TypeAlias, cast

from sqlalchemy import and_, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from remit.models.directory import User
from remit.policies.rules_sql import AsciiLower, RegexMatch
from remit.safe_regex import SafeRegex

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(text: str) -> str:
    """``text`` with A-Z in lowercase and every other character as it is."""
    return text.translate(_ASCII_LOWER)


class UserAttributes(Protocol):
    """What a rule reads from a user: ``remit.models.directory.User`` or any look-alike."""

    @property
    def department(self) -> str | None: ...
    @property
    def job_title(self) -> str | None: ...
    @property
    def user_type(self) -> str | None: ...
    @property
    def mail(self) -> str | None: ...
    @property
    def user_principal_name(self) -> str | None: ...
    @property
    def display_name(self) -> str | None: ...
    @property
    def account_enabled(self) -> bool | None: ...
    @property
    def manager_id(self) -> str | None: ...


# --- properties and operators ---------------------------------------------------------------


class Kind(Enum):
    STRING = "a string"
    BOOLEAN = "a boolean"
    ID = "a user id"


@dataclass(frozen=True)
class Property:
    name: str  # as Graph writes it
    attribute: str  # on User
    kind: Kind


PROPERTIES = {
    p.name.lower(): p
    for p in (
        Property("accountEnabled", "account_enabled", Kind.BOOLEAN),
        Property("department", "department", Kind.STRING),
        Property("displayName", "display_name", Kind.STRING),
        Property("jobTitle", "job_title", Kind.STRING),
        Property("mail", "mail", Kind.STRING),
        Property("manager", "manager_id", Kind.ID),
        Property("userPrincipalName", "user_principal_name", Kind.STRING),
        Property("userType", "user_type", Kind.STRING),
    )
}


class Op(Enum):
    """Each operator: its canonical spelling, its positive form, and whether it negates it."""

    EQ = ("-eq", "eq", False)
    NE = ("-ne", "eq", True)
    STARTS_WITH = ("-startsWith", "startswith", False)
    NOT_STARTS_WITH = ("-notStartsWith", "startswith", True)
    ENDS_WITH = ("-endsWith", "endswith", False)
    NOT_ENDS_WITH = ("-notEndsWith", "endswith", True)
    CONTAINS = ("-contains", "contains", False)
    NOT_CONTAINS = ("-notContains", "contains", True)
    MATCH = ("-match", "match", False)
    NOT_MATCH = ("-notMatch", "match", True)
    IN = ("-in", "in", False)
    NOT_IN = ("-notIn", "in", True)

    def __init__(self, spelling: str, positive: str, negated: bool) -> None:
        self.spelling = spelling
        self.positive = positive
        self.negated = negated


OPERATORS = {op.spelling[1:].lower(): op for op in Op}
OPERATORS_OF_KIND = {
    Kind.STRING: frozenset(Op),
    Kind.BOOLEAN: frozenset({Op.EQ, Op.NE}),
    Kind.ID: frozenset({Op.EQ, Op.NE, Op.IN, Op.NOT_IN}),
}
# Entra operators remit has no use for: named so that the message can say why.
UNSUPPORTED = {
    "any": "remit's user properties are single-valued",
    "all": "remit's user properties are single-valued",
    "le": "remit's user properties have no dates",
    "ge": "remit's user properties have no dates",
    "memberof": "group-membership rules are not supported",
}
# The string tests of the positive operators, on folded text.
_TEXT_TESTS: dict[str, Callable[[str, str], bool]] = {
    "eq": operator.eq,
    "startswith": str.startswith,
    "endswith": str.endswith,
    "contains": operator.contains,
}
_SQL_TESTS: dict[str, Callable[[ColumnElement[str], str], ColumnElement[bool]]] = {
    "eq": operator.eq,
    "startswith": lambda column, value: column.startswith(value, autoescape=True),
    "endswith": lambda column, value: column.endswith(value, autoescape=True),
    "contains": lambda column, value: column.contains(value, autoescape=True),
}
OPERATOR_LIST = ", ".join(op.spelling for op in Op)
PROPERTY_LIST = ", ".join(f"user.{p.name}" for p in PROPERTIES.values())


# --- the rule tree ----------------------------------------------------------------------------

Value: TypeAlias = "str | bool | tuple[str, ...] | SafeRegex | None"


@dataclass(frozen=True)
class Comparison:
    prop: Property
    op: Op
    value: Value

    def matches(self, user: UserAttributes) -> bool:
        return self._positive(getattr(user, self.prop.attribute)) != self.op.negated

    def _positive(self, actual: Any) -> bool:
        if self.value is None:  # -eq null / -ne null
            return actual is None
        if actual is None:
            return False
        if self.prop.kind is Kind.STRING:
            return self._text_positive(actual)
        return actual in self.value if isinstance(self.value, tuple) else actual == self.value

    def _text_positive(self, actual: str) -> bool:
        value = self.value
        if isinstance(value, SafeRegex):
            return value.search(actual)  # compiled with ignore_case: it folds A-Z itself
        text = fold(actual)
        if isinstance(value, tuple):
            return text in {fold(v) for v in value}
        return _TEXT_TESTS[self.op.positive](text, fold(cast(str, value)))

    def to_sql(self) -> ColumnElement[bool]:
        column: ColumnElement[Any] = getattr(User, self.prop.attribute)
        if self.value is None:
            return column.is_not(None) if self.op.negated else column.is_(None)
        positive = self._positive_sql(column)
        if self.prop.kind is not Kind.BOOLEAN and User.__table__.c[self.prop.attribute].nullable:
            # Null satisfies no positive comparison: the expression is never NULL itself.
            positive = and_(column.is_not(None), positive)
        return not_(positive) if self.op.negated else positive

    def _positive_sql(self, column: ColumnElement[Any]) -> ColumnElement[bool]:
        value = self.value
        if self.prop.kind is Kind.BOOLEAN:
            return column.is_(value)  # IS: false rather than NULL on a null column
        if self.prop.kind is Kind.ID:
            return column.in_(value) if isinstance(value, tuple) else column == value
        if isinstance(value, SafeRegex):
            return RegexMatch(column, value)
        if isinstance(value, tuple):
            return AsciiLower(column).in_([fold(v) for v in value])
        return _SQL_TESTS[self.op.positive](AsciiLower(column), fold(cast(str, value)))

    def __str__(self) -> str:
        value = self.value
        if value is None:
            shown = "null"
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, tuple):
            shown = "[" + ", ".join(quote(v) for v in value) + "]"
        elif isinstance(value, SafeRegex):
            shown = quote(value.source)
        else:
            shown = quote(value)
        return f"user.{self.prop.name} {self.op.spelling} {shown}"


@dataclass(frozen=True)
class Not:
    operand: Expression

    def matches(self, user: UserAttributes) -> bool:
        return not self.operand.matches(user)

    def to_sql(self) -> ColumnElement[bool]:
        return not_(self.operand.to_sql())

    def __str__(self) -> str:
        return f"-not ({self.operand})"


@dataclass(frozen=True)
class And:
    operands: tuple[Expression, ...]

    def matches(self, user: UserAttributes) -> bool:
        return all(o.matches(user) for o in self.operands)

    def to_sql(self) -> ColumnElement[bool]:
        return and_(*(o.to_sql() for o in self.operands))

    def __str__(self) -> str:
        return " -and ".join(f"({o})" if isinstance(o, Or) else str(o) for o in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[Expression, ...]

    def matches(self, user: UserAttributes) -> bool:
        return any(o.matches(user) for o in self.operands)

    def to_sql(self) -> ColumnElement[bool]:
        return or_(*(o.to_sql() for o in self.operands))

    def __str__(self) -> str:
        return " -or ".join(str(o) for o in self.operands)


Expression = Comparison | Not | And | Or


@dataclass(frozen=True)
class Rule:
    """A parsed membership rule. Equal rules have equal canonical forms."""

    expression: Expression

    def matches(self, user: UserAttributes) -> bool:
        return self.expression.matches(user)

    def to_sql(self) -> ColumnElement[bool]:
        """A condition on ``remit.models.directory.User``'s columns, true exactly for ``matches``.

        ``-match`` compiles for SQLite (through ``remit_match``) and PostgreSQL only.
        """
        return self.expression.to_sql()

    def __str__(self) -> str:
        return str(self.expression)


def quote(text: str) -> str:
    """A string literal that parses back to ``text``: a backslash is doubled only where the
    next character would otherwise join it into an escape, so patterns keep their ``\\d``."""
    out = ['"']
    for i, ch in enumerate(text):
        if ch == '"':
            out.append('\\"')
        elif ch == "\\" and (i + 1 == len(text) or text[i + 1] in '"\\'):
            out.append("\\\\")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
