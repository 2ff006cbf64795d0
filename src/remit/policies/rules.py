"""Membership rules of automatic assignment policies (spec §5.9), in Entra's dynamic-group syntax.

``parse`` turns text such as ``user.jobTitle -startsWith "Eng" -and -not (user.userType -eq
"Guest")`` into a ``Rule``, which evaluates one user in Python (``matches``), selects matching
users in SQL (``to_sql``) and prints itself canonically (``str``). The two evaluations must
agree exactly, because the auto-assignment job selects users in SQL and single users are checked
in Python; ``tests/unit/test_rules.py`` checks that they do on both engines.

Grammar (keywords, operators and property names are case-insensitive; precedence from high to
low is comparison, ``-not``, ``-and``, ``-or``)::

    rule       := or
    or         := and ("-or" and)*
    and        := not ("-and" not)*
    not        := "-not" not | "(" or ")" | comparison
    comparison := "user." property operator value
    value      := string | "true" | "false" | "null" | "[" string ("," string)* "]"

Strings are in double quotes; ``\\"`` is a quote and ``\\\\`` a backslash, and any other
backslash is kept as it is, so a regular expression reads ``"^\\d+$"``. As in Entra, comparison
operators may also be written without their hyphen, and an en dash (as pasted from Microsoft's
documentation) counts as a hyphen; ``str(rule)`` writes the canonical form.

Semantics, the same in Python, SQLite and PostgreSQL:

* **Null.** A missing (null) attribute satisfies no positive operator (``-eq "x"``,
  ``-startsWith``, ``-endsWith``, ``-contains``, ``-match``, ``-in``) and every negative one:
  each ``-notX`` is exactly ``-not (... -X ...)``, so ``user.department -ne "Sales"`` selects
  users without a department too. ``-eq null`` holds only for a missing value and ``-ne null``
  only for a present one; ``""`` is a value, not null. Every comparison therefore compiles to
  an SQL expression that is never NULL, and ``-not``, ``-and``, ``-or`` are plain two-valued
  logic on both sides.
* **Case.** String comparisons and regular expressions ignore the case of the ASCII letters
  A-Z only; every other character compares exactly. That is what SQLite's ``lower()`` does and
  what PostgreSQL's ``lower(x COLLATE "C")`` and ``~*`` under ``COLLATE "C"`` do, whatever the
  database's locale. ``user.manager`` is an object id, compared exactly after the rule's GUID
  is normalized to lowercase (ids are stored in lowercase).
* **Regular expressions** (``-match``, ``-notMatch``) use a small portable subset (literals,
  ``.``, ``^``, ``$``, ``[...]`` classes with ranges, ``\\d \\D \\w \\W \\s \\S`` in their ASCII
  meaning, escaped punctuation, groups, ``|``, ``* + ? {m,n}``); ``.`` matches any character and
  ``$`` only the end of the value. Python never uses ``re`` (a backtracking engine: three ``.*``
  in a 255-character value take seconds) but a linear-time matcher of its own, which SQLite
  calls as the ``remit_match`` function (registered in ``remit.db``); PostgreSQL runs the same
  pattern, rendered for its own engine, with ``~*``.
"""

from __future__ import annotations

import operator
import string
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property, lru_cache
from typing import Any, Protocol, TypeAlias, cast

from sqlalchemy import Boolean, String, and_, bindparam, not_, or_
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from remit.directory.models import User
from remit.errors import Invalid

__all__ = [
    "MAX_DEPTH",
    "MAX_PATTERN_LENGTH",
    "MAX_RULE_LENGTH",
    "Rule",
    "UserAttributes",
    "parse",
    "sqlite_match",
]

MAX_RULE_LENGTH = 3072  # Entra's limit on the body of a membership rule
MAX_DEPTH = 32  # nested parentheses and -not
MAX_PATTERN_LENGTH = 256
_MAX_REPEAT = 100  # {m,n} bounds; PostgreSQL refuses more than 255
_MAX_PROGRAM = 5000  # matcher instructions once {m,n} is unrolled

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _fold(text: str) -> str:
    return text.translate(_ASCII_LOWER)


class UserAttributes(Protocol):
    """What a rule reads from a user: ``remit.directory.models.User`` or any look-alike."""

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


class _Kind(Enum):
    STRING = "a string"
    BOOLEAN = "a boolean"
    ID = "a user id"


@dataclass(frozen=True)
class _Property:
    name: str  # as Graph writes it
    attribute: str  # on User
    kind: _Kind


_PROPERTIES = {
    p.name.lower(): p
    for p in (
        _Property("accountEnabled", "account_enabled", _Kind.BOOLEAN),
        _Property("department", "department", _Kind.STRING),
        _Property("displayName", "display_name", _Kind.STRING),
        _Property("jobTitle", "job_title", _Kind.STRING),
        _Property("mail", "mail", _Kind.STRING),
        _Property("manager", "manager_id", _Kind.ID),
        _Property("userPrincipalName", "user_principal_name", _Kind.STRING),
        _Property("userType", "user_type", _Kind.STRING),
    )
}


class _Op(Enum):
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


_OPERATORS = {op.spelling[1:].lower(): op for op in _Op}
_OPERATORS_OF_KIND = {
    _Kind.STRING: frozenset(_Op),
    _Kind.BOOLEAN: frozenset({_Op.EQ, _Op.NE}),
    _Kind.ID: frozenset({_Op.EQ, _Op.NE, _Op.IN, _Op.NOT_IN}),
}
# Entra operators remit has no use for: named so that the message can say why.
_UNSUPPORTED = {
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
_OPERATOR_LIST = ", ".join(op.spelling for op in _Op)
_PROPERTY_LIST = ", ".join(f"user.{p.name}" for p in _PROPERTIES.values())


# --- the rule tree ----------------------------------------------------------------------------

_Value: TypeAlias = "str | bool | tuple[str, ...] | _Regex | None"


@dataclass(frozen=True)
class _Comparison:
    prop: _Property
    op: _Op
    value: _Value

    def matches(self, user: UserAttributes) -> bool:
        return self._positive(getattr(user, self.prop.attribute)) != self.op.negated

    def _positive(self, actual: Any) -> bool:
        if self.value is None:  # -eq null / -ne null
            return actual is None
        if actual is None:
            return False
        if self.prop.kind is _Kind.STRING:
            return self._text_positive(_fold(actual))
        return actual in self.value if isinstance(self.value, tuple) else actual == self.value

    def _text_positive(self, text: str) -> bool:
        value = self.value
        if isinstance(value, _Regex):
            return value.search(text)
        if isinstance(value, tuple):
            return text in {_fold(v) for v in value}
        return _TEXT_TESTS[self.op.positive](text, _fold(cast(str, value)))

    def to_sql(self) -> ColumnElement[bool]:
        column: ColumnElement[Any] = getattr(User, self.prop.attribute)
        if self.value is None:
            return column.is_not(None) if self.op.negated else column.is_(None)
        positive = self._positive_sql(column)
        if self.prop.kind is not _Kind.BOOLEAN and User.__table__.c[self.prop.attribute].nullable:
            # Null satisfies no positive comparison: the expression is never NULL itself.
            positive = and_(column.is_not(None), positive)
        return not_(positive) if self.op.negated else positive

    def _positive_sql(self, column: ColumnElement[Any]) -> ColumnElement[bool]:
        value = self.value
        if self.prop.kind is _Kind.BOOLEAN:
            return column.is_(value)  # IS: false rather than NULL on a null column
        if self.prop.kind is _Kind.ID:
            return column.in_(value) if isinstance(value, tuple) else column == value
        if isinstance(value, _Regex):
            return _RegexMatch(column, value)
        if isinstance(value, tuple):
            return _AsciiLower(column).in_([_fold(v) for v in value])
        return _SQL_TESTS[self.op.positive](_AsciiLower(column), _fold(cast(str, value)))

    def __str__(self) -> str:
        value = self.value
        if value is None:
            shown = "null"
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, tuple):
            shown = "[" + ", ".join(_quote(v) for v in value) + "]"
        elif isinstance(value, _Regex):
            shown = _quote(value.source)
        else:
            shown = _quote(value)
        return f"user.{self.prop.name} {self.op.spelling} {shown}"


@dataclass(frozen=True)
class _Not:
    operand: _Expression

    def matches(self, user: UserAttributes) -> bool:
        return not self.operand.matches(user)

    def to_sql(self) -> ColumnElement[bool]:
        return not_(self.operand.to_sql())

    def __str__(self) -> str:
        return f"-not ({self.operand})"


@dataclass(frozen=True)
class _And:
    operands: tuple[_Expression, ...]

    def matches(self, user: UserAttributes) -> bool:
        return all(o.matches(user) for o in self.operands)

    def to_sql(self) -> ColumnElement[bool]:
        return and_(*(o.to_sql() for o in self.operands))

    def __str__(self) -> str:
        return " -and ".join(f"({o})" if isinstance(o, _Or) else str(o) for o in self.operands)


@dataclass(frozen=True)
class _Or:
    operands: tuple[_Expression, ...]

    def matches(self, user: UserAttributes) -> bool:
        return any(o.matches(user) for o in self.operands)

    def to_sql(self) -> ColumnElement[bool]:
        return or_(*(o.to_sql() for o in self.operands))

    def __str__(self) -> str:
        return " -or ".join(str(o) for o in self.operands)


_Expression = _Comparison | _Not | _And | _Or


@dataclass(frozen=True)
class Rule:
    """A parsed membership rule. Equal rules have equal canonical forms."""

    expression: _Expression

    def matches(self, user: UserAttributes) -> bool:
        return self.expression.matches(user)

    def to_sql(self) -> ColumnElement[bool]:
        """A condition on ``remit.directory.models.User``'s columns, true exactly for ``matches``.

        ``-match`` compiles for SQLite (through ``remit_match``) and PostgreSQL only.
        """
        return self.expression.to_sql()

    def __str__(self) -> str:
        return str(self.expression)


def _quote(text: str) -> str:
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


# --- SQL constructs ---------------------------------------------------------------------------


class _AsciiLower(FunctionElement[str]):
    """``lower()`` of the ASCII letters only, as ``_fold`` does (PostgreSQL's follows the locale
    unless the collation is "C"; SQLite's only ever folds ASCII)."""

    name = "lower"
    type = String()
    inherit_cache = True


@compiles(_AsciiLower)
def _ascii_lower(element: _AsciiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_AsciiLower, "postgresql")
def _ascii_lower_pg(element: _AsciiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return f'lower({compiler.process(element.clauses, **kw)} COLLATE "C")'


class _RegexMatch(FunctionElement[bool]):
    """``column`` matches a ``-match`` pattern: the pattern's source for SQLite's
    ``remit_match``, its PostgreSQL rendering for ``~*``; each dialect uses one."""

    name = "remit_match"
    type = Boolean()
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any], regex: _Regex) -> None:
        super().__init__(
            column,
            bindparam(None, regex.source, type_=String(), unique=True),
            bindparam(None, regex.postgres, type_=String(), unique=True),
        )


def _regex_parts(element: _RegexMatch, compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(c, **kw) for c in element.clauses.clauses]


@compiles(_RegexMatch)
def _regex_match(element: _RegexMatch, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"-match rules run on SQLite and PostgreSQL, not {compiler.dialect.name}")


@compiles(_RegexMatch, "sqlite")
def _regex_match_sqlite(element: _RegexMatch, compiler: SQLCompiler, **kw: Any) -> str:
    column, source, _ = _regex_parts(element, compiler, **kw)
    return f"remit_match({source}, {column})"


@compiles(_RegexMatch, "postgresql")
def _regex_match_pg(element: _RegexMatch, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, pattern = _regex_parts(element, compiler, **kw)
    return f'({column} COLLATE "C" ~* {pattern})'


def sqlite_match(pattern: str, value: str | None) -> bool | None:
    """SQLite's ``remit_match(pattern, value)``: ``-match`` with the matcher ``matches`` uses."""
    if value is None:
        return None
    return _compile_regex(pattern).search(_fold(value))


# --- regular expressions ----------------------------------------------------------------------
#
# A pattern parses to a tree (_Chars, _Anchor, _Seq, _Alt, _Repeat), which is rendered for
# PostgreSQL and compiled to a Thompson NFA for Python. Being a plain regular language (no
# back-references or look-arounds), a pattern has a match in a value on both engines alike, and
# whether greedy or lazy quantifiers are used makes no difference to that.


@dataclass(frozen=True)
class _Chars:
    """One character out of ``ranges`` (inclusive), or out of everything else if ``negated``."""

    ranges: tuple[tuple[str, str], ...]
    negated: bool = False

    def matches(self, ch: str) -> bool:  # ch is folded: it has no A-Z
        hit = any(lo <= ch <= hi for lo, hi in self.ranges)
        if not hit and "a" <= ch <= "z":
            upper = ch.upper()
            hit = any(lo <= upper <= hi for lo, hi in self.ranges)
        return hit != self.negated


@dataclass(frozen=True)
class _Anchor:
    end: bool  # "$" if true, "^" if not


@dataclass(frozen=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Alt:
    branches: tuple[_Node, ...]


@dataclass(frozen=True)
class _Repeat:
    node: _Node
    min: int
    max: int | None


_Node = _Chars | _Anchor | _Seq | _Alt | _Repeat

_DIGIT = (("0", "9"),)
_WORD = (("0", "9"), ("A", "Z"), ("_", "_"), ("a", "z"))
_SPACE = (("\t", "\r"), (" ", " "))
_CLASS_ESCAPES = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_ENTRY_ESCAPES = {"\t": r"\t", "\n": r"\n", "\x0b": r"\v", "\x0c": r"\f", "\r": r"\r"}


class _PatternError(Exception):
    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


class _PatternParser:
    def __init__(self, source: str) -> None:
        self.s = source
        self.i = 0
        self.depth = 0

    def error(self, message: str, offset: int | None = None) -> _PatternError:
        return _PatternError(self.i if offset is None else offset, message)

    def peek(self) -> str | None:
        return self.s[self.i] if self.i < len(self.s) else None

    def parse(self) -> _Node:
        node = self.alternation()
        if self.i < len(self.s):  # only a ")" stops an alternation early
            raise self.error("unbalanced ')'")
        return node

    def alternation(self) -> _Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else _Alt(tuple(branches))

    def sequence(self) -> _Node:
        items: list[_Node] = []
        while (ch := self.peek()) is not None and ch not in "|)":
            items.append(self.quantified())
        return items[0] if len(items) == 1 else _Seq(tuple(items))

    def quantified(self) -> _Node:
        start = self.i
        node = self.atom()
        bounds = self.quantifier()
        if bounds is None:
            return node
        if isinstance(node, _Anchor):
            raise self.error("nothing to repeat: ^ and $ take no quantifier", start)
        if self.peek() == "?":  # lazy: the same matches exist
            self.i += 1
        if (ch := self.peek()) is not None and ch in "*+?{":
            raise self.error(f"a quantifier can't follow another one; group it first: (...){ch}")
        return _Repeat(node, *bounds)

    def quantifier(self) -> tuple[int, int | None] | None:
        ch = self.peek()
        simple = {"*": (0, None), "+": (1, None), "?": (0, 1)}
        if ch in simple:
            self.i += 1
            return simple[ch]
        if ch != "{":
            return None
        start = self.i
        close = self.s.find("}", start)
        low, comma, high = self.s[start + 1 : max(close, start)].partition(",")
        if close < 0 or not _digits(low) or not (_digits(high) or not high):
            raise self.error("a quantifier is written {m}, {m,} or {m,n}; write \\{ for a brace")
        least = int(low)
        most = int(high) if high else (None if comma else least)
        if least > _MAX_REPEAT or (most is not None and most > _MAX_REPEAT):
            raise self.error(f"repetition counts are limited to {_MAX_REPEAT}")
        if most is not None and most < least:
            raise self.error(f"{{{low},{high}}} has its bounds reversed")
        self.i = close + 1
        return least, most

    def atom(self) -> _Node:
        ch = self.s[self.i]
        start = self.i
        self.i += 1
        if ch == "(":
            if self.s.startswith("(?", start):
                if not self.s.startswith("(?:", start):
                    raise self.error(
                        "(?...) constructs (flags, look-arounds, named groups) "
                        "aren't supported; (?:...) is",
                        start,
                    )
                self.i += 2
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"groups nest more than {MAX_DEPTH} deep", start)
            node = self.alternation()
            if self.peek() != ")":
                raise self.error("missing ')'", start)
            self.i += 1
            self.depth -= 1
            return node
        if ch == "[":
            return self.char_class(start)
        if ch == ".":
            return _Chars((), negated=True)
        if ch in "^$":
            return _Anchor(end=ch == "$")
        if ch == "\\":
            return self.escape(start, in_class=False)
        if ch in "*+?{":
            raise self.error(
                f"nothing to repeat before '{ch}'; write \\{ch} for the character", start
            )
        if ch in "]}":
            raise self.error(f"write \\{ch} for a literal '{ch}'", start)
        return _Chars(((ch, ch),))

    def escape(self, start: int, *, in_class: bool) -> _Chars:
        ch = self.peek()
        if ch is None:
            raise self.error("the pattern ends with a lone backslash", start)
        self.i += 1
        if ch in _CLASS_ESCAPES:
            return _Chars(_CLASS_ESCAPES[ch])
        if ch.lower() in _CLASS_ESCAPES:
            if in_class:
                raise self.error(
                    f"\\{ch} can't be used inside [...]; negate the class instead", start
                )
            return _Chars(_CLASS_ESCAPES[ch.lower()], negated=True)
        if ch in string.punctuation:
            return _Chars(((ch, ch),))
        raise self.error(
            f"\\{ch} isn't supported; escapes are \\d \\D \\w \\W \\s \\S and \\ before "
            "punctuation",
            start,
        )

    def char_class(self, start: int) -> _Chars:
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        first = self.i
        ranges: list[tuple[str, str]] = []
        while True:
            ch = self.peek()
            if ch is None:
                raise self.error("missing ']'", start)
            if ch == "]":
                if self.i == first:
                    raise self.error("empty character class; write \\] for a bracket", start)
                self.i += 1
                return _Chars(tuple(ranges), negated)
            low = self.class_char(first)
            if isinstance(low, _Chars) or self.peek() != "-" or self.s.startswith("-]", self.i):
                ranges.extend(low.ranges if isinstance(low, _Chars) else ((low, low),))
                continue
            dash = self.i
            self.i += 1
            high = self.class_char(first)
            if isinstance(high, _Chars):
                raise self.error("a range can't end with a class such as \\d", dash)
            if low > high:
                raise self.error(f"the range {low}-{high} is reversed", dash)
            ranges.append((low, high))

    def class_char(self, first: int) -> str | _Chars:
        """One item of a class whose items start at ``first``: a character, or the characters
        of an escape such as \\d."""
        start = self.i
        ch = self.s[start]
        self.i += 1
        if ch == "\\":
            escaped = self.escape(start, in_class=True)
            return escaped if self.s[start + 1] in _CLASS_ESCAPES else escaped.ranges[0][0]
        if ch == "[":
            raise self.error("write \\[ for a bracket inside [...]", start)
        if ch == "-" and start != first and self.peek() != "]":
            raise self.error("write \\- for a literal '-' inside [...]", start)
        return ch


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _size(node: _Node) -> int:
    """How many matcher instructions ``node`` compiles to."""
    match node:
        case _Chars() | _Anchor():
            return 1
        case _Seq(items):
            return sum(_size(n) for n in items)
        case _Alt(branches):
            return sum(_size(n) for n in branches) + 2 * (len(branches) - 1)
        case _Repeat(inner, least, most):
            size = _size(inner)
            extra = size + 2 if most is None else (most - least) * (size + 1)
            return least * size + extra
    raise AssertionError(node)  # pragma: no cover


# Matcher instructions: a character test, a fork, a jump, an anchor, or success.
@dataclass
class _Ins:
    op: str  # "char", "split", "jmp", "bol", "eol", "match"
    chars: _Chars | None = None
    x: int = 0
    y: int = 0


def _emit(node: _Node, prog: list[_Ins]) -> None:
    match node:
        case _Chars():
            prog.append(_Ins("char", node))
        case _Anchor(end):
            prog.append(_Ins("eol" if end else "bol"))
        case _Seq(items):
            for item in items:
                _emit(item, prog)
        case _Alt(branches):
            jumps: list[_Ins] = []
            for branch in branches[:-1]:
                split = _Ins("split", x=len(prog) + 1)
                prog.append(split)
                _emit(branch, prog)
                jumps.append(_Ins("jmp"))
                prog.append(jumps[-1])
                split.y = len(prog)
            _emit(branches[-1], prog)
            for jump in jumps:
                jump.x = len(prog)
        case _Repeat(inner, least, most):
            for _ in range(least):
                _emit(inner, prog)
            if most is None:
                loop = _Ins("split", x=len(prog) + 1)
                prog.append(loop)
                top = len(prog) - 1
                _emit(inner, prog)
                prog.append(_Ins("jmp", x=top))
                loop.y = len(prog)
                return
            skips: list[_Ins] = []
            for _ in range(most - least):
                skips.append(_Ins("split", x=len(prog) + 1))
                prog.append(skips[-1])
                _emit(inner, prog)
            for skip in skips:
                skip.y = len(prog)


def _search(prog: Sequence[_Ins], text: str) -> bool:
    """Whether ``prog`` matches anywhere in ``text`` (folded): a Pike VM without captures,
    O(len(text) * len(prog)) whatever the pattern."""
    end = len(text)

    def add(threads: list[int], seen: set[int], pc: int, at: int) -> bool:
        stack = [pc]
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            ins = prog[pc]
            if ins.op == "char":
                threads.append(pc)
            elif ins.op == "match":
                return True
            elif ins.op == "jmp":
                stack.append(ins.x)
            elif ins.op == "split":
                stack += (ins.y, ins.x)
            elif (ins.op == "bol" and at == 0) or (ins.op == "eol" and at == end):
                stack.append(pc + 1)
        return False

    threads: list[int] = []
    if add(threads, set(), 0, 0):
        return True
    for at, ch in enumerate(text, start=1):
        following: list[int] = []
        seen: set[int] = set()
        for pc in threads:
            chars = prog[pc].chars
            if chars is not None and chars.matches(ch) and add(following, seen, pc + 1, at):
                return True
        if add(following, seen, 0, at):  # a match may start at any position
            return True
        threads = following
    return False


def _render(node: _Node, *, python: bool = False) -> str:
    """The pattern for PostgreSQL's ``~*`` (or, for tests, for Python's ``re`` with the flags
    ASCII, IGNORECASE and DOTALL): every construct spelt so that both read it alike."""
    match node:
        case _Chars():
            return _render_chars(node)
        case _Anchor(end):
            return ("\\Z" if python else "$") if end else "^"
        case _Seq(items):
            return "".join(_render(n, python=python) for n in items)
        case _Alt(branches):
            return "(?:" + "|".join(_render(n, python=python) for n in branches) + ")"
        case _Repeat(inner, least, most):
            return f"(?:{_render(inner, python=python)}){_quantifier(least, most)}"
    raise AssertionError(node)  # pragma: no cover


def _render_chars(chars: _Chars) -> str:
    if chars.negated and not chars.ranges:
        return "."
    if not chars.negated and len(chars.ranges) == 1 and chars.ranges[0][0] == chars.ranges[0][1]:
        return _render_char(chars.ranges[0][0])
    items = "".join(
        _render_char(lo) if lo == hi else f"{_render_char(lo)}-{_render_char(hi)}"
        for lo, hi in chars.ranges
    )
    return f"[{'^' if chars.negated else ''}{items}]"


def _quantifier(least: int, most: int | None) -> str:
    if most is None:
        return {0: "*", 1: "+"}.get(least, f"{{{least},}}")
    return f"{{{least},{most}}}"


def _render_char(ch: str) -> str:
    if ch in _ENTRY_ESCAPES:
        return _ENTRY_ESCAPES[ch]
    return "\\" + ch if ch in string.punctuation else ch


@dataclass(frozen=True)
class _Regex:
    source: str
    node: _Node = field(compare=False, repr=False)

    @cached_property
    def program(self) -> list[_Ins]:
        prog: list[_Ins] = []
        _emit(self.node, prog)
        prog.append(_Ins("match"))
        return prog

    @cached_property
    def postgres(self) -> str:
        return _render(self.node)

    @cached_property
    def python(self) -> str:
        return _render(self.node, python=True)

    def search(self, folded: str) -> bool:
        return _search(self.program, folded)


def _parse_regex(source: str) -> _Regex:
    """Raises ``_PatternError``."""
    if len(source) > MAX_PATTERN_LENGTH:
        raise _PatternError(0, f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
    node = _PatternParser(source).parse()
    if _size(node) > _MAX_PROGRAM:
        raise _PatternError(0, "the pattern is too complex (its repetitions multiply too far)")
    return _Regex(source, node)


@lru_cache(maxsize=256)
def _compile_regex(source: str) -> _Regex:
    return _parse_regex(source)


# --- the rule parser --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "[", "]", ",", "op", "word", "string", "end"
    text: str  # as written, for messages
    value: str  # an operator's name in lowercase without its hyphen, a word, a decoded string
    pos: int  # 0-based

    def describe(self) -> str:
        return "the end of the rule" if self.kind == "end" else repr(self.text)


_HYPHENS = "-\u2013"  # an en dash, as in rules pasted from Microsoft's documentation
_HINTS = {
    "=": "; comparisons are written -eq, -ne, ...",
    "!": "; comparisons are written -eq, -ne, ...",
    "<": "; comparisons are written -eq, -ne, ...",
    ">": "; comparisons are written -eq, -ne, ...",
    "&": "; write -and",
    "|": "; write -or",
    "'": "; strings are written in double quotes",
}


def _invalid(message: str) -> Invalid:
    return Invalid(f"invalid membership rule: {message}", target="membershipRule")


def _tokens(text: str) -> Iterator[_Token]:
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()[],":
            yield _Token(ch, ch, ch, i)
            i += 1
        elif ch in _HYPHENS:
            j = i + 1
            while j < n and text[j].isascii() and text[j].isalpha():
                j += 1
            if j == i + 1:
                raise _invalid(f"expected an operator name after '{ch}' at position {i + 1}")
            yield _Token("op", text[i:j], text[i + 1 : j].lower(), i)
            i = j
        elif ch == '"':
            value, j = _string(text, i)
            yield _Token("string", text[i:j], value, i)
            i = j
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] in "_."):
                j += 1
            yield _Token("word", text[i:j], text[i:j], i)
            i = j
        else:
            raise _invalid(f"unexpected character {ch!r} at position {i + 1}{_HINTS.get(ch, '')}")
    yield _Token("end", "", "", n)


def _string(text: str, start: int) -> tuple[str, int]:
    """The value of the string literal opening at ``start``, and where it ends."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise _invalid(f"control character U+{ord(ch):04X} in a string at position {i + 1}")
        out.append(ch)
        i += 1
    raise _invalid(f"unterminated string starting at position {start + 1}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = list(_tokens(text))
        self.i = 0
        self.depth = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def is_op(self, name: str) -> bool:
        return self.peek.kind == "op" and self.peek.value == name

    def expected(self, what: str, token: _Token | None = None, hint: str = "") -> Invalid:
        token = token or self.peek
        return _invalid(
            f"expected {what} at position {token.pos + 1}, found {token.describe()}{hint}"
        )

    def nest(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _invalid(f"the rule nests more than {MAX_DEPTH} deep at position {token.pos + 1}")

    def rule(self) -> _Expression:
        if self.peek.kind == "end":
            raise _invalid("the rule is empty")
        expression = self.disjunction()
        if self.peek.kind != "end":
            hint = ""
            if self.peek.kind == "word" and self.peek.value.lower() in ("and", "or"):
                hint = f"; write -{self.peek.value.lower()}"
            elif self.peek.kind == ")":
                hint = "; this ')' closes nothing"
            raise self.expected("-and, -or or the end of the rule", hint=hint)
        return expression

    def disjunction(self) -> _Expression:
        operands = [self.conjunction()]
        while self.is_op("or"):
            self.take()
            operands.append(self.conjunction())
        if len(operands) == 1:
            return operands[0]
        return _Or(tuple(_flatten(operands, _Or)))

    def conjunction(self) -> _Expression:
        operands = [self.negation()]
        while self.is_op("and"):
            self.take()
            operands.append(self.negation())
        if len(operands) == 1:
            return operands[0]
        return _And(tuple(_flatten(operands, _And)))

    def negation(self) -> _Expression:
        token = self.peek
        if self.is_op("not"):
            self.take()
            self.nest(token)
            operand = self.negation()
            self.depth -= 1
            return _Not(operand)
        if token.kind == "(":
            self.take()
            self.nest(token)
            inner = self.disjunction()
            if self.peek.kind != ")":
                raise self.expected(
                    f"-and, -or or ')' to close the '(' at position {token.pos + 1}"
                )
            self.take()
            self.depth -= 1
            return inner
        if token.kind == "word":
            return self.comparison()
        hint = ""
        if token.kind == "op" and token.value in ("and", "or"):
            hint = f"; {token.text} needs a condition on each side"
        raise self.expected(
            'a condition such as user.department -eq "Sales", "(" or -not', hint=hint
        )

    def comparison(self) -> _Comparison:
        token = self.take()
        head, dot, name = token.value.partition(".")
        if head.lower() != "user" or not dot:
            hint = ""
            if token.value.lower() in ("and", "or", "not"):
                hint = f"; write -{token.value.lower()}"
            elif head.lower() == "device":
                hint = "; rules select users"
            raise self.expected("a user property such as user.department", token, hint)
        prop = _PROPERTIES.get(name.lower())
        if prop is None:
            raise _invalid(
                f"unknown property user.{name} at position {token.pos + 1}; "
                f"remit supports {_PROPERTY_LIST}"
            )
        op = self.operator(prop)
        if op in (_Op.IN, _Op.NOT_IN):
            value: _Value = self.values(prop, op)
        elif op in (_Op.MATCH, _Op.NOT_MATCH):
            value = self.pattern(op)
        else:
            value = self.scalar(prop, op)
        return _Comparison(prop, op, value)

    def operator(self, prop: _Property) -> _Op:
        token = self.take()
        bare = token.kind == "word" and token.value.lower() in _OPERATORS  # Entra allows "eq"
        if token.kind != "op" and not bare:
            raise self.expected(f"an operator such as -eq after user.{prop.name}", token)
        name = token.value.lower()
        op = _OPERATORS.get(name)
        if op is None:
            reason = _UNSUPPORTED.get(name)
            where = f"at position {token.pos + 1}"
            if reason:
                raise _invalid(f"{token.text} {where} isn't supported: {reason}")
            raise _invalid(f"unknown operator {token.text} {where}; operators are {_OPERATOR_LIST}")
        if op not in _OPERATORS_OF_KIND[prop.kind]:
            allowed = ", ".join(o.spelling for o in _Op if o in _OPERATORS_OF_KIND[prop.kind])
            raise _invalid(
                f"{op.spelling} at position {token.pos + 1} doesn't apply to user.{prop.name}, "
                f"which is {prop.kind.value}; use {allowed}"
            )
        return op

    def scalar(self, prop: _Property, op: _Op) -> str | bool | None:
        token = self.take()
        word = token.value.lower() if token.kind == "word" else None
        where = f"at position {token.pos + 1}"
        if word == "null":
            if op not in (_Op.EQ, _Op.NE):
                raise _invalid(f"null {where} can only be compared with -eq or -ne")
            return None
        if prop.kind is _Kind.BOOLEAN:
            if word in ("true", "false"):
                return word == "true"
            raise self.expected(
                f"true or false (without quotes) after user.{prop.name} {op.spelling}", token
            )
        if token.kind != "string":
            raise self.expected(
                f"a string in double quotes after user.{prop.name} {op.spelling}", token
            )
        return self.string_value(prop, token)

    def string_value(self, prop: _Property, token: _Token) -> str:
        if prop.kind is not _Kind.ID:
            return token.value
        try:
            return str(uuid.UUID(token.value))
        except ValueError:
            raise _invalid(
                f"user.manager takes a user id (a GUID), not {token.text} "
                f"at position {token.pos + 1}"
            ) from None

    def values(self, prop: _Property, op: _Op) -> tuple[str, ...]:
        opening = self.take()
        if opening.kind != "[":
            raise self.expected(f'a list such as ["a", "b"] after {op.spelling}', opening)
        if self.peek.kind == "]":
            raise _invalid(f"the list at position {opening.pos + 1} is empty")
        items: list[str] = []
        while True:
            token = self.take()
            if token.kind != "string":
                raise self.expected("a string in double quotes in the list", token)
            items.append(self.string_value(prop, token))
            separator = self.take()
            if separator.kind == "]":
                return tuple(items)
            if separator.kind != ",":
                raise self.expected(
                    f"',' or ']' to close the list at position {opening.pos + 1}", separator
                )

    def pattern(self, op: _Op) -> _Regex:
        token = self.take()
        if token.kind != "string":
            raise self.expected(f"a regular expression in double quotes after {op.spelling}", token)
        try:
            return _compile_regex(token.value)
        except _PatternError as e:
            raise _invalid(
                f"invalid regular expression at position {token.pos + 1}: {e.message} "
                f"(at character {e.offset + 1} of the pattern)"
            ) from None


def _flatten(operands: list[_Expression], kind: type[_And] | type[_Or]) -> Iterator[_Expression]:
    """Splice nested operands of the same kind: (a -and b) -and c is a -and b -and c."""
    for operand in operands:
        if isinstance(operand, kind):
            yield from operand.operands
        else:
            yield operand


def parse(text: str) -> Rule:
    """The rule ``text`` says; ``Invalid`` (target ``membershipRule``) if it says nothing valid."""
    if len(text) > MAX_RULE_LENGTH:
        raise _invalid(f"the rule is {len(text)} characters long; the limit is {MAX_RULE_LENGTH:,}")
    return Rule(_Parser(text).rule())
