"""SQL constructs of membership rules (``remit.policies.rules``), spelt per dialect so that
SQLite and PostgreSQL compare strings exactly as ``rules_tree.fold`` and ``remit.safe_regex`` do."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String, bindparam
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from remit.safe_regex import SafeRegex


class AsciiLower(FunctionElement[str]):
    """``lower()`` of the ASCII letters only, as ``rules_tree.fold`` does (PostgreSQL's follows
    the locale unless the collation is "C"; SQLite's only ever folds ASCII)."""

    name = "lower"
    type = String()
    inherit_cache = True


@compiles(AsciiLower)
def _ascii_lower(element: AsciiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(AsciiLower, "postgresql")
def _ascii_lower_pg(element: AsciiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return f'lower({compiler.process(element.clauses, **kw)} COLLATE "C")'


class RegexMatch(FunctionElement[bool]):
    """``column`` matches a ``-match`` pattern: the pattern's source for SQLite's
    ``remit_match``, its PostgreSQL rendering for ``~*``; each dialect uses one."""

    name = "remit_match"
    type = Boolean()
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any], regex: SafeRegex) -> None:
        super().__init__(
            column,
            bindparam(None, regex.source, type_=String(), unique=True),
            bindparam(None, regex.render_postgres(), type_=String(), unique=True),
        )


def _regex_parts(element: RegexMatch, compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(c, **kw) for c in element.clauses.clauses]


@compiles(RegexMatch)
def _regex_match(element: RegexMatch, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"-match rules run on SQLite and PostgreSQL, not {compiler.dialect.name}")


@compiles(RegexMatch, "sqlite")
def _regex_match_sqlite(element: RegexMatch, compiler: SQLCompiler, **kw: Any) -> str:
    column, source, _ = _regex_parts(element, compiler, **kw)
    return f"remit_match({source}, {column})"


@compiles(RegexMatch, "postgresql")
def _regex_match_pg(element: RegexMatch, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, pattern = _regex_parts(element, compiler, **kw)
    return f'({column} COLLATE "C" ~* {pattern})'
