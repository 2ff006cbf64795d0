"""What every command shares: settings, the database, the acting identity, errors, tables."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from remit import datadir
from remit.authz.actor import Actor, load_actor, system_actor
from remit.catalogs.queries import find_catalog
from remit.clock import utcnow
from remit.context import Ctx
from remit.db import Database, Reader
from remit.directory import queries as directory
from remit.errors import Busy, DomainError, NotFound
from remit.settings import Settings

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

# Set by the top-level callback: the UPN named by --as, or None for the operator.
ACTING_AS: dict[str, str | None] = {"upn": None}

T = TypeVar("T")


# The exit status of a command refused because the database's writers were busy for longer
# than ``write_wait_seconds``: EX_TEMPFAIL of sysexits.h, "try again later"; nothing changed.
BUSY_EXIT = 75


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"remit: error: {message}", highlight=False, markup=False)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:
        fail(f"bad setting: {str(exc).splitlines()[0]}", 2)


def open_db(s: Settings | None = None) -> Database:
    s = s or settings()
    if s.is_sqlite:
        datadir.private_dir(s.data_dir)
    return Database(s.resolved_database_url(), write_wait_seconds=s.write_wait_seconds)


def _actor(reader: Reader) -> Actor:
    upn = ACTING_AS["upn"]
    if upn is None:
        return system_actor("operator (cli)")
    found = directory.user_by_upn(reader, upn)
    if found is None:
        raise NotFound(f"no user {upn} (given with --as)")
    return load_actor(reader, found.id)


@contextmanager
def database(s: Settings | None = None) -> Iterator[Database]:
    """The configured database while the block runs, disposed at its end; a database that has
    no schema yet is one line and exit 1."""
    db = open_db(s)
    try:
        yield db
    except Busy as exc:
        fail(exc.message, BUSY_EXIT)
    except Exception as exc:
        if "no such table" in str(exc) or "does not exist" in str(exc):
            fail("the database is not initialised; run `remit db upgrade` first")
        raise
    finally:
        db.dispose()


@contextmanager
def unit(*, write: bool = True) -> Iterator[Ctx]:
    """One transaction as the acting identity; domain errors become one line and exit 1
    (``BUSY_EXIT`` when the database was too busy to begin)."""
    with database() as db:
        try:
            with db.write() if write else db.session() as session:
                yield Ctx(session, _actor(session), utcnow())
        except Busy as exc:
            fail(exc.message, BUSY_EXIT)
        except DomainError as exc:
            fail(exc.message)


def user_id(reader: Reader, upn_or_id: str) -> str:
    """A user named by UPN or id (``directory.queries.user_id_of``)."""
    return directory.user_id_of(reader, upn_or_id)


def user_ids(reader: Reader, upns_or_ids: Sequence[str] | None) -> list[str]:
    """Each user of a repeatable option, in order (``user_id``)."""
    return [user_id(reader, name) for name in upns_or_ids or ()]


def principal_id(reader: Reader, name: str) -> str:
    """A user (UPN or id) or a group (display name or id): ``directory.queries.principal_id_of``."""
    return directory.principal_id_of(reader, name)


def catalog_id(ctx: Ctx, name: str) -> str:
    """By name or id, among the catalogs the acting identity can see (no existence leaks)."""
    return find_catalog(ctx, name).id


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console.print(t)


def list_table(
    title: str,
    columns: Sequence[str],
    read: Callable[[Ctx], Iterable[T]],
    row: Callable[[T], Sequence[Any]],
) -> None:
    """What ``read`` finds for the acting identity, as a table of one ``row`` each."""
    with unit(write=False) as ctx:
        table(title, columns, [row(found) for found in read(ctx)])


def say(line: str) -> None:
    """A line for people, printed as it is (no markup, no highlighting)."""
    console.print(line, highlight=False, markup=False)


def plain(line: str) -> None:
    """A line for scripts: no markup, no wrapping."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
