"""Engines, the declarative base and the unit of work.

SQLite is the embedded default: WAL, foreign keys on, and every write transaction starts with
``BEGIN IMMEDIATE`` so that writers queue on the database lock up front instead of failing with
"database is locked" when a read transaction tries to upgrade. The writers of one process first
take their turn in a FIFO queue (``WriteQueue``), so that SQLite's busy handler, whose sleeps
grow to hundreds of milliseconds, only ever arbitrates between processes (decision 0029).
PostgreSQL runs the same code, without the queue.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
import structlog
from sqlalchemy import (
    JSON,
    ColumnElement,
    CompoundSelect,
    Connection,
    CursorResult,
    DateTime,
    Engine,
    MetaData,
    Result,
    Select,
    String,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.compiler import SQLCompiler

from remit import datadir
from remit.errors import Busy, Conflict, DomainError, Invalid
from remit.safe_regex import sqlite_match

log = structlog.get_logger("remit.db")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    return str(uuid.uuid4())


_M = TypeVar("_M")

# What a read runs on: a session, or a bare connection (hot reads, the actor).
Reader = Session | Connection


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), str: String(255)}


# How long a writer waits for its turn by default (``Settings.write_wait_seconds``).
WRITE_WAIT_SECONDS = 5.0


def make_engine(
    url: str, *, echo: bool = False, write_wait_seconds: float = WRITE_WAIT_SECONDS
) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            datadir.private_sqlite(database)  # 0600 before SQLite makes it (and its -wal, -shm)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        _configure_sqlite(engine, busy_timeout_ms=max(1, round(write_wait_seconds * 1000)))
        return engine
    # No pre-ping: it costs a round trip per checkout. A connection found dead is invalidated
    # with the whole pool on first use, and that one call answers 503 + Retry-After (api/errors).
    return create_engine(
        url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=False, pool_recycle=1800
    )


# Every SQLite connection's settings (the benchmarks' raw connections use them too); the busy
# timeout is the database's own (``write_wait_seconds``).
SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "foreign_keys=ON",
    "synchronous=NORMAL",
    "wal_autocheckpoint=4000",
)


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cur.execute(f"PRAGMA {pragma}")
        # Another process's writer (a second ``serve``, ``remit worker``, the CLI) is waited
        # for by SQLite's busy handler, as long as a writer waits for its own process's queue.
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()
        # -match in membership rules: the same linear-time matcher as in Python (no ReDoS).
        dbapi_conn.create_function("remit_match", 2, sqlite_match, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("remit_write", False)
        # Straight to the driver: a statement through SQLAlchemy costs more than the BEGIN itself,
        # and every read (one per API request) starts a transaction.
        driver = cast(sqlite3.Connection, conn.connection.driver_connection)
        driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


AnySelect = Select[*tuple[Any, ...]]  # a SELECT of any number of columns


def by_id(session: Session, model: type[_M], ids: Iterable[str | None]) -> dict[str, _M]:
    """The rows of ``model`` with these ids (``None`` skipped), by id, in one statement, or
    none without asking: what a page's ``$expand`` loads for the rows it has already read."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    id_column: Any = model.id  # type: ignore[attr-defined]
    rows = session.execute(select(model).where(id_column.in_(wanted))).scalars()
    return {row.id: row for row in rows}  # type: ignore[attr-defined]


class _HotContext:
    """The ``context`` a statement listener gets for a ``HotSelect``: the compiled statement,
    and room for the listener's own attributes (a tracer keeps its span there)."""

    executemany = False

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled


class HotSelect:
    """A SELECT compiled by SQLAlchemy once per dialect and run on the DBAPI cursor.

    Only for the statements of the hottest reads (docs/decisions/0007), where SQLAlchemy's
    per-execution bookkeeping (execution context, result metadata, row objects) costs more
    than the database takes to answer. Parameters and values go through the column types'
    bind and result processors, so the rows hold what ``Connection.execute`` would return.
    The statement must not use expanding (IN-list) parameters. SQLAlchemy's statement events
    (``before_cursor_execute``/``after_cursor_execute``) and ``echo`` see it as they see any
    other statement, so tracing and logging miss nothing.
    """

    def __init__(
        self,
        statement: AnySelect | CompoundSelect[Any] | Callable[[str], AnySelect],
    ) -> None:
        # A callable builds the statement for a dialect's name: for SQL that differs by engine,
        # such as ``among_param``'s id lists.
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def in_session(self, session: Session, params: dict[str, Any]) -> list[Sequence[Any]]:
        """``rows`` in the session's transaction, once its pending changes are flushed (the
        ORM's autoflush does not see this statement)."""
        session.flush()
        return self.rows(session.connection(), params)

    def rows(self, conn: Connection, params: dict[str, Any]) -> list[Sequence[Any]]:
        """The result rows, in the transaction of ``conn`` (begun here if need be)."""
        plan = self._plans.get(conn.dialect.name) or self._plan(conn.dialect)
        if not conn.in_transaction():
            conn.begin()  # as Connection.execute would: SQLite's BEGIN comes from make_engine
        values = dict(plan.compiled.construct_params(params))
        for name, process in plan.binds:
            values[name] = process(values[name])
        bound: Any = (
            tuple(values[n] for n in plan.compiled.positiontup or ())
            if plan.compiled.positional
            else values
        )
        statement = plan.compiled.string
        cursor = conn.connection.cursor()
        try:
            # The statement events and ``echo``, as ``Connection.execute`` would fire them, so
            # that tracing and logging see every statement. SQLite's engine always has events
            # (its BEGIN listener), so the cursor events' own lists say whether anyone listens.
            traced = False
            if conn._has_events or conn.engine._has_events:
                before = conn.dispatch.before_cursor_execute
                after = conn.dispatch.after_cursor_execute
                traced = bool(before) or bool(after)
            if traced:
                context = _HotContext(plan.compiled)
                for listener in before:
                    statement, bound = listener(conn, cursor, statement, bound, context, False)
            if conn._echo:
                conn._log_info(statement)
                conn._log_info("[hot select] %r", bound)
            cursor.execute(statement, bound)
            if traced:
                for listener in after:
                    listener(conn, cursor, statement, bound, context, False)
            fetched: Sequence[Sequence[Any]] = cursor.fetchall()
        finally:
            cursor.close()
        if not plan.results:
            return list(fetched)
        rows: list[Sequence[Any]] = []
        for fetched_row in fetched:
            row = list(fetched_row)
            for i, process in plan.results:
                row[i] = process(row[i])
            rows.append(row)
        return rows

    def _plan(self, dialect: Dialect) -> _Plan:
        statement = self.statement(dialect.name) if callable(self.statement) else self.statement
        compiled = statement.compile(dialect=dialect)
        if any(b.expanding for b in compiled.binds.values()):
            raise ValueError("HotSelect does not take expanding (IN-list) parameters")
        # By the name the statement renders (an anonymous parameter's key is not that name).
        binds = [
            (compiled.bind_names[b], process)
            for b in compiled.binds.values()
            if (process := b.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        results = [
            (i, process)
            for i, c in enumerate(statement.selected_columns)
            if (process := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
        ]
        plan = _Plan(compiled, binds, results)
        self._plans[dialect.name] = plan
        return plan


@dataclass(frozen=True)
class _Plan:
    compiled: SQLCompiler
    binds: Sequence[tuple[str, Callable[[Any], Any]]]
    results: Sequence[tuple[int, Callable[[Any], Any]]]  # the columns that need converting


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (the conditional updates that claim a state change)."""
    return cast(CursorResult[Any], result).rowcount


def add_unique(session: Session, row: object, conflict: Exception) -> None:
    """Insert ``row`` now, raising ``conflict`` if a unique key is already taken.

    No savepoint: the error ends the caller's operation and its transaction with it (a caller
    that goes on after a refused one, as auto-assignment does, holds a savepoint around each
    whole operation).
    """
    session.flush()  # what was pending before is not this row's conflict
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise conflict from None


def insert_or_ignore(
    session: Session, table: Any, rows: list[dict[str, Any]], conflict: Sequence[str]
) -> None:
    """INSERT ... ON CONFLICT (``conflict``) DO NOTHING, on either engine."""
    if not rows:
        return
    session.execute(
        _insert_or_ignore(session.get_bind().dialect.name, table, tuple(conflict)), rows
    )


@functools.cache
def _insert_or_ignore(dialect_name: str, table: Any, conflict: tuple[str, ...]) -> Any:
    return upsert_into(dialect_name, table).on_conflict_do_nothing(index_elements=list(conflict))


def upsert_into(dialect_name: str, table: Any) -> Any:
    """The engine's own INSERT into ``table``, the one that takes ``on_conflict_do_…``."""
    module: Any = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(table)


KEEP = 2_000


def _keep(session: Session, instance: object) -> None:
    """Hold the first ``KEEP`` objects a write session loads until it closes.

    The ORM's identity map holds objects weakly: one loaded for a check and dropped is loaded
    again by the next ``session.get`` in the same transaction. Holding them makes repeated lookups
    of the same row (the request, its policy, the user) free within one transaction; the bound
    keeps a bulk read in one transaction from holding all it streams.
    """
    kept: list[object] = session.info.setdefault("remit_kept", [])
    if len(kept) < KEEP:
        kept.append(instance)


# ---------------------------------------------------------------- id lists as one JSON parameter


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


# What an integrity error says to the caller, by the constraint's kind: never the SQL or its
# parameters, which may hold data.
_CONFLICTS = {
    "foreign key": "an object this change refers to was removed, or an object it removes is "
    "still in use, by a change made at the same time; nothing was changed",
    "unique": "an object with the same key already exists (perhaps made at the same time); "
    "nothing was changed",
    "other": "the change conflicts with the stored data; nothing was changed",
}
_PG_KINDS = {"23503": "foreign key", "23505": "unique"}
_SQLITE_KINDS = {
    "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign key",
    "SQLITE_CONSTRAINT_UNIQUE": "unique",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "unique",
}


def integrity_conflict(exc: IntegrityError) -> Conflict:
    """The domain ``Conflict`` for a database integrity error, logged once without a traceback
    (the constraint's name, which is schema, not data)."""
    orig: Any = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    kind = _PG_KINDS.get(sqlstate or "") or _SQLITE_KINDS.get(
        getattr(orig, "sqlite_errorname", ""), "other"
    )
    diag = getattr(orig, "diag", None)
    log.warning(
        "db.integrity_conflict",
        kind=kind,
        constraint=getattr(diag, "constraint_name", None),
        table=getattr(diag, "table_name", None),
        sqlstate=sqlstate or getattr(orig, "sqlite_errorname", None),
    )
    return Conflict(_CONFLICTS[kind])


NUL_REFUSED = "text may not hold a NUL character"


def _holds_nul(error: BaseException) -> bool:
    """Whether the driver's ``error`` is PostgreSQL (or psycopg, before sending) refusing a NUL.

    psycopg's text dumper refuses a ``str`` with a NUL before the statement is sent (a
    ``DataError`` without a SQLSTATE); the server refuses ``\\u0000`` when it turns JSON into
    text or ``jsonb`` (22P05) and a 0x00 byte in text it receives (22021).
    """
    if type(error).__module__.split(".")[0] != "psycopg":
        return False
    sqlstate = getattr(error, "sqlstate", None)
    said = str(error)
    if sqlstate is None:
        return type(error).__name__ == "DataError" and "NUL (0x00)" in said
    detail = getattr(getattr(error, "diag", None), "message_detail", None) or ""
    return (sqlstate == "22P05" and "\\u0000" in detail) or (sqlstate == "22021" and "0x00" in said)


def nul_refused(exc: BaseException) -> Invalid | None:
    """The domain ``Invalid`` for a NUL that reached PostgreSQL, or None for any other error.

    A backstop: every operation refuses NUL in what it reads (``validation``), so this is a
    lookup or a text that a check missed. The message and the log never hold the statement or
    its parameters (the text itself may be anything).
    """
    error = exc.orig if isinstance(exc, DBAPIError) else exc  # SQLAlchemy wraps the driver's
    if error is None or not _holds_nul(error):
        return None
    log.warning("db.nul_refused", sqlstate=getattr(error, "sqlstate", None))
    return Invalid(NUL_REFUSED)


def stale_conflict() -> Conflict:
    """The domain ``Conflict`` for a row that an UPDATE or DELETE of the ORM no longer found: a
    concurrent transaction removed it after this one read it."""
    log.warning("db.stale_conflict")
    return Conflict("the object was changed or removed by a change made at the same time; retry")


# What a database error means to the caller, for errors the domain did not handle itself.
# SQLSTATEs of a transaction the database rolled back on its own: serialization failure,
# deadlock detected.
TRANSIENT = frozenset({"40001", "40P01"})
# The exception classes an adapter registers a handler for (with ``domain_error`` and
# ``retry_reason`` deciding), so that no adapter names SQLAlchemy's exceptions itself.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, StaleDataError)


def domain_error(exc: BaseException) -> DomainError | None:
    """The domain error a database error stands for, or None: a NUL PostgreSQL refused is
    ``Invalid``; a constraint the database enforced, or a row a concurrent change removed, is a
    ``Conflict``; SQLite's busy timeout running out (another process's writer held the database
    all that time) is ``Busy``. ``Database.write()`` and every adapter's error handler use this
    one mapping."""
    refused = nul_refused(exc)
    if refused is not None:
        return refused
    if isinstance(exc, IntegrityError):
        return integrity_conflict(exc)
    if isinstance(exc, StaleDataError):
        return stale_conflict()
    if _sqlite_busy(exc):
        log.warning("db.busy", waited="busy_timeout")
        return Busy(BUSY_MESSAGE)
    return None


BUSY_MESSAGE = "the database is busy with other changes; nothing was changed, retry shortly"


def _sqlite_busy(exc: BaseException) -> bool:
    """Whether SQLite gave up waiting for another process's writer (its busy timeout ran out)."""
    error = exc.orig if isinstance(exc, OperationalError) else exc
    if not isinstance(error, sqlite3.OperationalError):
        return False
    name = getattr(error, "sqlite_errorname", "")
    return name.startswith("SQLITE_BUSY") or (not name and "database is locked" in str(error))


def retry_reason(exc: BaseException) -> str | None:
    """Why a call failed that may simply be retried (the database restarted under a pooled
    connection, or rolled the transaction back as a deadlock victim), or None."""
    if not isinstance(exc, DBAPIError):
        return None
    if exc.connection_invalidated:
        return "the database connection was lost; retry"
    if getattr(exc.orig, "sqlstate", None) in TRANSIENT:
        return "a concurrent change interfered; retry"
    return None


class WriteQueue:
    """The writers of one process, served one at a time in the order they came (FIFO).

    A ticket lock: each waiter gets a condition of its own on the queue's one mutex, and the
    writer that finishes hands the turn to the first waiter directly, so that nobody who arrives
    later can take it in between (``threading.Lock`` makes no such promise). A waiter that has
    not had its turn after ``wait_seconds`` leaves the queue and raises ``Busy``: its transaction
    never began, so nothing is lost, and the caller may try again.

    A write inside another one of the same thread is in the same turn (the turn is reentrant):
    the tests open one before they have touched the database, which SQLite allows. If the outer
    transaction has begun, the inner one's BEGIN IMMEDIATE waits for it in SQLite's busy handler
    and is refused as ``Busy`` after ``wait_seconds``, as it was before the queue existed.
    """

    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self._mutex = threading.Lock()
        self._waiters: deque[tuple[int, threading.Condition]] = deque()
        self._holder: int | None = None  # the thread whose turn it is
        self._depth = 0  # writes the holder has entered inside its first one
        self.refused = 0  # writers refused as busy since the queue was made (diagnostics)

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._holder == me:
                self._depth += 1
                return
            if self._holder is None and not self._waiters:
                self._holder = me
                return
            turn = threading.Condition(self._mutex)
            waiter = (me, turn)
            self._waiters.append(waiter)
            deadline = time.monotonic() + self.wait_seconds
            try:
                while self._holder != me:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        log.warning("db.write_queue_timeout", waited=self.wait_seconds)
                        self.refused += 1
                        raise Busy(BUSY_MESSAGE)
                    turn.wait(left)
            except BaseException:
                # Timed out, or interrupted while waiting: leave the queue, or pass on a turn
                # that came meanwhile, so that the writers behind never wait for a ghost.
                if self._holder == me:
                    self._hand_on()
                else:
                    self._waiters.remove(waiter)
                raise

    def release(self) -> None:
        with self._mutex:
            if self._depth:
                self._depth -= 1
                return
            self._hand_on()

    def _hand_on(self) -> None:
        """Give the turn to the first waiter, or to whoever comes next (the mutex is held)."""
        if self._waiters:
            following, turn = self._waiters.popleft()
            self._holder = following  # handed over: no late arrival can take it first
            turn.notify()
        else:
            self._holder = None

    @property
    def waiting(self) -> int:
        """How many writers wait for their turn now (for tests and diagnostics)."""
        with self._mutex:
            return len(self._waiters)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """The block runs in this thread's turn; the next writer's begins when it ends."""
        self.acquire()
        try:
            yield
        finally:
            self.release()


class Database:
    """Owns the engine; hands out write sessions (one transaction each) and read connections."""

    def __init__(
        self, url: str, *, echo: bool = False, write_wait_seconds: float = WRITE_WAIT_SECONDS
    ) -> None:
        if not write_wait_seconds > 0:
            raise ValueError("write_wait_seconds must be more than 0")
        self.url = url
        self.engine = make_engine(url, echo=echo, write_wait_seconds=write_wait_seconds)
        self.dialect = self.engine.dialect.name
        # SQLite has one writer at a time: the process's writers take turns before BEGIN
        # IMMEDIATE. PostgreSQL orders writers by row locks, and needs no process-wide turn.
        self.write_queue = WriteQueue(write_wait_seconds) if self.dialect == "sqlite" else None
        self._write_engine = self.engine.execution_options(remit_write=True)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        event.listen(self._sessions, "loaded_as_persistent", _keep)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back if it raises.

        A constraint the database enforces (a foreign key, a unique key) and that the operation
        did not catch itself is a ``Conflict`` here, for every adapter: on PostgreSQL a delete
        racing a create gets past the operation's checks, and only the database sees the clash.
        A NUL that PostgreSQL refuses is ``Invalid`` (``nul_refused``), never a 500.

        On SQLite the block first waits for its turn among the process's writers (``Busy`` if
        that takes longer than ``write_wait_seconds``), and holds it until the transaction has
        committed or rolled back and its connection is back in the pool.
        """
        with self.turn():
            try:
                with self._sessions() as session, session.begin():
                    yield session
            except Exception as exc:  # a DBAPIError, or the driver's own from a HotSelect
                found = domain_error(exc)
                if found is None:
                    raise
                raise found from None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """This thread's turn among the process's writers, for a write transaction opened other
        than by ``write()`` (the migrations' ``engine.begin()``); on PostgreSQL, no wait."""
        if self.write_queue is None:
            yield
            return
        with self.write_queue.turn():
            yield

    def ping(self) -> None:
        """Raise unless the database answers (``GET /remit/health``): no actor and no table, so
        that the probe works before the first user and says nothing but "up"."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reads: no transaction is committed; whatever it began is rolled back."""
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def read_latest(self) -> Iterator[Connection]:
        """Reads where each statement sees the latest committed data (hot single-object reads).

        On PostgreSQL this is autocommit: no BEGIN and ROLLBACK round trips, and no weaker than
        a READ COMMITTED transaction, whose statements each take a fresh snapshot anyway. On
        SQLite it is a plain read transaction. Use ``read`` when several statements must see one
        snapshot (the audit verifier).
        """
        if self.is_sqlite:
            with self.engine.connect() as conn:
                yield conn
            return
        with self._autocommit.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
