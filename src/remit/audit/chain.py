"""Appending to and verifying the hash chain.

Each event's hash covers the previous hash and a canonical JSON form of the event, so a changed,
removed, inserted or reordered row breaks the chain from that point; the head row catches a
truncated tail. Appends are serialised: ``BEGIN IMMEDIATE`` on SQLite, a row lock on the head
row on PostgreSQL, so concurrent writers always produce one linear chain.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, and_, bindparam, case, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from remit.db import new_id
from remit.faults import crash_point
from remit.ids import ordered_ids
from remit.models.audit import AuditEvent, AuditHead

GENESIS = "0" * 64
HEAD_ID = 1


def _canonical(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str).encode()


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + _canonical(fields)).hexdigest()


def _hashed_fields(e: AuditEvent) -> dict[str, Any]:
    fields = {
        "seq": e.seq,
        "id": e.id,
        "occurred_at": e.occurred_at.isoformat(),
        "category": e.category,
        "activity": e.activity,
        "operation_type": e.operation_type,
        "actor_id": e.actor_id,
        "actor_name": e.actor_name,
        "target_type": e.target_type,
        "target_id": e.target_id,
        "target_name": e.target_name,
        "catalog_id": e.catalog_id,
        "details": e.details,
    }
    # Added after the first release of the chain: hashed only when set, so older events verify.
    if e.subject_id is not None:
        fields["subject_id"] = e.subject_id
    return fields


# Built once. The ORM read refreshes an object already loaded: append_many moves the head past
# the session.
_HEAD = (
    select(AuditHead)
    .where(AuditHead.id == HEAD_ID)
    .with_for_update()
    .execution_options(populate_existing=True)
)
_SET_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def _locked_head(session: Session) -> AuditHead:
    """The head row, locked for this transaction; created first if the log was never written.

    Two first appends may both find no head: each inserts it in a savepoint, the loser's insert
    waits for the winner's commit and fails, and it then locks and reads the winner's head.
    """
    head = session.execute(_HEAD).scalar_one_or_none()
    if head is not None:
        return head
    try:
        with session.begin_nested():
            session.add(AuditHead(id=HEAD_ID, seq=0, hash=GENESIS))
    except IntegrityError:
        pass
    return session.execute(_HEAD).scalar_one()


def append(
    session: Session,
    *,
    occurred_at: datetime,
    category: str,
    activity: str,
    operation_type: str,
    actor_id: str | None,
    actor_name: str | None,
    target_type: str,
    target_id: str,
    target_name: str | None,
    catalog_id: str | None,
    details: dict[str, Any],
    subject_id: str | None = None,
) -> AuditEvent:
    head = _locked_head(session)
    # Round-trip the details through JSON so the hash covers exactly what is stored.
    stored_details = json.loads(json.dumps(details, default=str))
    event = AuditEvent(
        seq=head.seq + 1,
        id=new_id(),
        occurred_at=occurred_at,
        category=category,
        activity=activity,
        operation_type=operation_type,
        actor_id=actor_id,
        actor_name=actor_name,
        target_type=target_type,
        target_id=target_id,
        target_name=target_name,
        catalog_id=catalog_id,
        subject_id=subject_id,
        details=stored_details,
        prev_hash=head.hash,
        hash="",
    )
    event.hash = event_hash(head.hash, _hashed_fields(event))
    session.add(event)
    head.seq, head.hash = event.seq, event.hash
    session.flush()
    crash_point("audit.after_append")
    return event


def append_many(session: Session, events: list[dict[str, Any]]) -> int:
    """Append many events under one lock of the head, inserted in one statement.

    Each dict holds the keyword arguments of ``append``. For transactions that record thousands
    of events (the expiry sweep's chunks); the chain is the one ``append`` would make, event by
    event. Rows are built as plain values and inserted past the ORM (``_insert``), their ids
    time-ordered (``remit.ids``), so that a batch lands at the end of the id index.

    The head is moved by one conditional ``UPDATE … RETURNING`` (``_MOVE_HEAD``): the events
    are chained from the head this process last wrote to this database, and the head moves
    only if it is still that one. Otherwise (another process or a rolled-back transaction moved
    it, or this process has not written yet) the statement leaves the head as it is, locked,
    and returns it; the events are chained again from it and the head set (``_SET_HEAD``): two
    statements, as a read of the head and its update took before. The guess never decides what
    is written: the database compares it with the head under the row's lock.
    """
    if not events:
        return 0
    session.flush()  # before the head's lock, so that it is the last lock taken (audit.pending)
    conn = session.connection()
    converters = _converters(conn.dialect)
    ids = ordered_ids(len(events))
    key = conn.engine
    guess = _GUESS.get(key)
    if guess is not None:
        rows, head = _chained(events, ids, guess, converters)
        moved = conn.execute(_MOVE_HEAD, _moved(guess, head)).first()
    else:  # a guess that never matches: the statement locks the head and returns it
        rows, head = [], (-1, "")
        moved = conn.execute(_MOVE_HEAD, _moved(head, head)).first()
    if moved is not None:
        found = (moved[0], moved[1])
    else:  # the first events ever: create the head
        created = _locked_head(session)
        found = (created.seq, created.hash)
    if found != head:
        rows, head = _chained(events, ids, found, converters)
        conn.execute(_SET_HEAD, {"new_seq": head[0], "new_hash": head[1]})
    _insert(conn, rows)
    _GUESS[key] = head
    crash_point("audit.after_append")
    return len(rows)


# The head each database's chain had after this process's last append (``append_many``), by
# engine.
_GUESS: weakref.WeakKeyDictionary[Engine, tuple[int, str]] = weakref.WeakKeyDictionary()
_GUESSED = and_(AuditHead.seq == bindparam("old_seq"), AuditHead.hash == bindparam("old_hash"))
# Both engines evaluate every SET expression on the row as it was, and PostgreSQL on its latest
# committed version when a concurrent append held the lock.
_MOVE_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == HEAD_ID)
    .values(
        seq=case((_GUESSED, bindparam("new_seq")), else_=AuditHead.seq),
        hash=case((_GUESSED, bindparam("new_hash")), else_=AuditHead.hash),
    )
    .returning(AuditHead.seq, AuditHead.hash)
)


def _moved(old: tuple[int, str], new: tuple[int, str]) -> dict[str, Any]:
    return {"old_seq": old[0], "old_hash": old[1], "new_seq": new[0], "new_hash": new[1]}


def _chained(
    events: list[dict[str, Any]],
    ids: list[str],
    head: tuple[int, str],
    converters: tuple[Callable[[Any], Any], Callable[[Any], Any]],
) -> tuple[list[tuple[Any, ...]], tuple[int, str]]:
    """The rows of ``events`` chained after ``head`` (seq, hash), and the head after them."""
    seq, prev = head
    at_column, details_column = converters
    instants: dict[datetime, tuple[str, Any]] = {}  # a batch shares its instant, or a few
    rows: list[tuple[Any, ...]] = []
    for fields, event_id in zip(events, ids, strict=True):
        seq += 1
        at = fields["occurred_at"]
        instant = instants.get(at)
        if instant is None:
            instant = instants[at] = (at.isoformat(), at_column(at))
        details = _stored(fields["details"])
        get = fields.get
        hashed = {
            "seq": seq,
            "id": event_id,
            "occurred_at": instant[0],
            "category": get("category"),
            "activity": get("activity"),
            "operation_type": get("operation_type"),
            "actor_id": get("actor_id"),
            "actor_name": get("actor_name"),
            "target_type": get("target_type"),
            "target_id": get("target_id"),
            "target_name": get("target_name"),
            "catalog_id": get("catalog_id"),
            "details": details,
        }
        subject_id = get("subject_id")
        if subject_id is not None:  # as in ``_hashed_fields``
            hashed["subject_id"] = subject_id
        digest = event_hash(prev, hashed)
        h = hashed
        rows.append(
            (
                seq,
                event_id,
                instant[1],
                h["category"],
                h["activity"],
                h["operation_type"],
                h["actor_id"],
                h["actor_name"],
                h["target_type"],
                h["target_id"],
                h["target_name"],
                h["catalog_id"],
                subject_id,
                details_column(details),
                prev,
                digest,
            )
        )  # in the order of _COLUMNS
        prev = digest
    return rows, (seq, prev)


# The columns of the rows ``append_many`` builds, in their order.
_COLUMNS = (
    "seq",
    "id",
    "occurred_at",
    "category",
    "activity",
    "operation_type",
    "actor_id",
    "actor_name",
    "target_type",
    "target_id",
    "target_name",
    "catalog_id",
    "subject_id",
    "details",
    "prev_hash",
    "hash",
)
_PLAIN = (str, int, bool, type(None))
_FEW = 50  # events inserted by one INSERT on PostgreSQL (more are copied in)
_EVENTS = cast(Table, AuditEvent.__table__)


def _converters(dialect: Dialect) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """What SQLAlchemy would bind for ``occurred_at`` and ``details`` (the other columns are
    plain strings and integers); PostgreSQL's ``COPY`` takes the JSON text, which a ``json``
    column keeps as it is."""
    at = _EVENTS.c.occurred_at.type.dialect_impl(dialect).bind_processor(dialect)
    details = _EVENTS.c.details.type.dialect_impl(dialect).bind_processor(dialect)
    if at is None or details is None:  # pragma: no cover - both types convert on both engines
        raise RuntimeError("audit columns without a bind processor")
    return at, (json.dumps if dialect.name == "postgresql" else details)


def _insert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert the rows in one go, past SQLAlchemy's handling of each row's parameters (which
    costs more than the database takes to store the row): PostgreSQL copies them in
    (``COPY … FROM STDIN``), SQLite runs one INSERT for many rows."""
    columns = ", ".join(_COLUMNS)
    if conn.dialect.name == "postgresql" and len(rows) <= _FEW:
        # A transaction's few events: one INSERT of many rows is one round trip, where COPY
        # takes two (its start, then its end).
        one = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
        values = ", ".join([one] * len(rows))
        many = f"INSERT INTO {_EVENTS.name} ({columns}) VALUES {values}"  # noqa: S608 - our names
        conn.exec_driver_sql(many, tuple(v for r in rows for v in r))
        return
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        copy_in = f"COPY {_EVENTS.name} ({columns}) FROM STDIN"
        with driver.cursor() as cursor, cursor.copy(copy_in) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(_COLUMNS))
    insert = f"INSERT INTO {_EVENTS.name} ({columns}) VALUES ({marks})"  # noqa: S608 - our names
    conn.exec_driver_sql(insert, rows)


def _stored(details: dict[str, Any]) -> dict[str, Any]:
    """The details as they come back from the JSON column (what the hash must cover). A flat
    dict of strings, integers, booleans and nulls is stored as it is; anything else goes
    through JSON and back, as ``append`` does it."""
    if all(type(k) is str and type(v) in _PLAIN for k, v in details.items()):
        return dict(details)
    loaded: dict[str, Any] = json.loads(json.dumps(details, default=str))
    return loaded


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    problems: tuple[str, ...]


def _events(conn: Connection, chunk: int = 2000) -> Iterator[AuditEvent]:
    last = 0
    with Session(bind=conn) as session:
        while True:
            rows = (
                session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.seq > last)
                    .order_by(AuditEvent.seq)
                    .limit(chunk)
                )
                .scalars()
                .all()
            )
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            session.expunge_all()


def verify(conn: Connection, *, max_problems: int = 20) -> VerifyResult:
    problems: list[str] = []
    expected_seq, prev, count = 1, GENESIS, 0
    for e in _events(conn):
        count += 1
        if e.seq != expected_seq:
            problems.append(f"seq {e.seq}: expected seq {expected_seq} (rows missing or inserted)")
        if e.prev_hash != prev:
            problems.append(f"seq {e.seq}: prev_hash does not match the event before it")
        if event_hash(e.prev_hash, _hashed_fields(e)) != e.hash:
            problems.append(f"seq {e.seq}: content does not match its hash (modified)")
        prev, expected_seq = e.hash, e.seq + 1
        if len(problems) >= max_problems:
            break
    head = conn.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID)
    ).first()
    head_seq, head_hash = (head[0], head[1]) if head else (0, GENESIS)
    if len(problems) < max_problems and (head_seq != expected_seq - 1 or head_hash != prev):
        problems.append(
            f"chain ends at seq {expected_seq - 1} but the head says seq {head_seq} "
            "(events truncated or head altered)"
        )
    return VerifyResult(not problems, count, head_seq, head_hash, tuple(problems))
