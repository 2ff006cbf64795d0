"""R9: the audit log is tamper-evident, and concurrent appends still form one linear chain.

Each tamper kind (modify, delete, insert, reorder, truncate) is applied with plain SQL, as
someone with write access to the database would, and must be caught both by
``remit.audit.chain.verify`` and by ``remit audit verify`` run as a separate process against the
same database (non-zero exit, one readable line on stderr).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, delete, event, func, insert, select, text, update

from remit import bootstrap
from remit.audit.chain import append, append_many, event_hash, verify
from remit.authz.actor import system_actor
from remit.context import Ctx
from remit.db import Database, new_id
from remit.models.audit import AuditEvent, AuditHead
from tests.conftest import SteppingClock, empty

EVENTS = 12  # appended by each tamper test, after the built-in General catalog's event
APPENDS = 1000
WORKERS = 8


def append_events(db: Database, clock: SteppingClock, n: int = EVENTS) -> None:
    """``n`` ordinary events, a few per transaction, with varied fields and details."""
    actor = system_actor("auditor")
    for start in range(0, n, 3):
        with db.write() as s:
            ctx = Ctx(s, actor, clock())
            for k in range(start, min(start + 3, n)):
                ctx.audit(
                    f"Test activity {k}",
                    operation_type=("Add", "Update", "Delete")[k % 3],
                    target_type="AccessPackageCatalog",
                    target_id=new_id(),
                    target_name=f"Catalog {k}",
                    catalog_id=new_id() if k % 2 else None,
                    before={"description": f"old {k}"} if k % 3 else None,
                    after={"description": f"new {k}", "tags": ["a", k]},
                )
        clock.advance(seconds=1)


def rows(conn: Connection) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.seq))
    ]


def last_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.max(AuditEvent.seq))).scalar_one())


def hashed(row: dict[str, Any]) -> dict[str, Any]:
    """The fields a forger must hash, in the shape the chain hashes them."""
    return {
        "seq": row["seq"],
        "id": row["id"],
        "occurred_at": row["occurred_at"].isoformat(),
        **{
            k: row[k]
            for k in (
                "category",
                "activity",
                "operation_type",
                "actor_id",
                "actor_name",
                "target_type",
                "target_id",
                "target_name",
                "catalog_id",
                "details",
            )
        },
    }


def forged_after(row: dict[str, Any], seq: int) -> dict[str, Any]:
    """A plausible event that follows ``row``, hashed correctly (the hash has no secret)."""
    forged = {
        **row,
        "seq": seq,
        "id": new_id(),
        "activity": "Create role assignment",
        "actor_name": "mallory@contoso.example",
        "details": {"before": None, "after": {"roleDefinitionId": "ba92d953"}},
        "prev_hash": row["hash"],
    }
    forged["hash"] = event_hash(row["hash"], hashed(forged))
    return forged


def move(conn: Connection, seq: int, to: int) -> None:
    conn.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=to))


# ------------------------------------------------------------------ the tampering


def modify_name(conn: Connection) -> None:
    conn.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(target_name="Innocent"))


def modify_details(conn: Connection) -> None:
    conn.execute(
        update(AuditEvent)
        .where(AuditEvent.seq == 5)
        .values(details={"before": None, "after": {"description": "nothing to see"}})
    )


def modify_actor_and_rehash(conn: Connection) -> None:
    """Change the actor and recompute that row's own hash: the next row's link breaks."""
    row = next(r for r in rows(conn) if r["seq"] == 6)
    row["actor_name"] = "someone-else@contoso.example"
    conn.execute(
        update(AuditEvent)
        .where(AuditEvent.seq == 6)
        .values(actor_name=row["actor_name"], hash=event_hash(row["prev_hash"], hashed(row)))
    )


def delete_middle(conn: Connection) -> None:
    conn.execute(delete(AuditEvent).where(AuditEvent.seq == 7))


def delete_first(conn: Connection) -> None:
    conn.execute(delete(AuditEvent).where(AuditEvent.seq == 1))


def delete_and_close_the_gap(conn: Connection) -> None:
    """Delete a row and renumber the rest so the seqs stay consecutive."""
    conn.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    for seq in range(4, last_seq(conn) + 1):
        move(conn, seq, seq - 1)


def insert_at_the_end(conn: Connection) -> None:
    """A correctly hashed event after the last one; the head row is left alone."""
    tail = rows(conn)[-1]
    conn.execute(insert(AuditEvent).values(**forged_after(tail, tail["seq"] + 1)))


def insert_in_the_middle(conn: Connection) -> None:
    """Make room after seq 5 (renumbering the rest) and slip a hashed event in."""
    for seq in range(last_seq(conn), 5, -1):
        move(conn, seq, seq + 1)
    fifth = next(r for r in rows(conn) if r["seq"] == 5)
    conn.execute(insert(AuditEvent).values(**forged_after(fifth, 6)))
    head = conn.execute(select(AuditHead.seq)).scalar_one()
    conn.execute(update(AuditHead).values(seq=head + 1))


def swap_positions(conn: Connection) -> None:
    """Rows 4 and 5 trade places (their seqs)."""
    move(conn, 4, -4)
    move(conn, 5, 4)
    move(conn, -4, 5)


def swap_contents(conn: Connection) -> None:
    """Rows 8 and 9 keep their seqs but trade everything else."""
    by_seq = {r["seq"]: r for r in rows(conn)}
    a, b = by_seq[8], by_seq[9]
    conn.execute(update(AuditEvent).where(AuditEvent.seq == 8).values(id=new_id()))
    for seq, other in ((9, a), (8, b)):
        conn.execute(
            update(AuditEvent)
            .where(AuditEvent.seq == seq)
            .values(**{k: v for k, v in other.items() if k != "seq"})
        )


def truncate_tail(conn: Connection) -> None:
    conn.execute(delete(AuditEvent).where(AuditEvent.seq > last_seq(conn) - 3))


def truncate_everything_but_the_head(conn: Connection) -> None:
    conn.execute(delete(AuditEvent))


def truncate_tail_and_head(conn: Connection) -> None:
    """The tail goes, and so does the head row that remembered it."""
    conn.execute(delete(AuditEvent).where(AuditEvent.seq > 4))
    conn.execute(delete(AuditHead))


# kind → (tamper, a phrase verify must report)
TAMPERS: dict[str, tuple[Callable[[Connection], None], str]] = {
    "modify-name": (modify_name, "content does not match its hash"),
    "modify-details": (modify_details, "content does not match its hash"),
    "modify-actor-rehashed": (modify_actor_and_rehash, "prev_hash does not match"),
    "delete-middle": (delete_middle, "rows missing or inserted"),
    "delete-first": (delete_first, "expected seq 1"),
    "delete-renumbered": (delete_and_close_the_gap, "prev_hash does not match"),
    "insert-at-end": (insert_at_the_end, "head says"),
    "insert-in-middle": (insert_in_the_middle, "content does not match its hash"),
    "reorder-swap-positions": (swap_positions, "content does not match its hash"),
    "reorder-swap-contents": (swap_contents, "prev_hash does not match"),
    "truncate-tail": (truncate_tail, "events truncated or head altered"),
    "truncate-all-events": (truncate_everything_but_the_head, "events truncated"),
    "truncate-tail-and-head": (truncate_tail_and_head, "events truncated or head altered"),
}


# ------------------------------------------------------------------ the CLI


def remit_cli(db: Database, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``remit ...`` in a fresh process pointed at the test database."""
    env = {**os.environ, "REMIT_DATABASE_URL": db.url, "REMIT_DATA_DIR": str(data_dir)}
    return subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "remit", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_clean_log_verifies(db: Database, clock: SteppingClock, tmp_path: Path) -> None:
    append_events(db, clock)
    with db.read() as conn:
        result = verify(conn)
    assert result.ok, result.problems
    assert result.events == result.head_seq == EVENTS + 1  # and the General catalog's event
    cli = remit_cli(db, tmp_path, "audit", "verify")
    assert cli.returncode == 0, cli.stderr
    assert cli.stderr == ""
    assert f"audit chain OK: {EVENTS + 1} events, head seq {EVENTS + 1}" in cli.stdout


def test_a_batch_stores_and_hashes_what_one_by_one_would(
    db: Database, clock: SteppingClock
) -> None:
    """``append_many`` (every commit's events) against ``append``: the same details stored
    (flat ones as given; others through JSON, so instants and tuples become strings and lists),
    the same fields hashed, one chain whichever appended which event."""
    details: list[dict[Any, Any]] = [
        {"before": None, "after": None, "reason": "expired", "requestId": new_id(), "n": 3},
        {"when": clock(), "roles": ("a", "b"), "nested": {"x": [1, 2.5, None]}},
        {1: "an integer key", "flag": True},
        {},
    ]
    fields = {
        "occurred_at": clock(),
        "category": "EntitlementManagement",
        "activity": "Test activity",
        "operation_type": "Update",
        "actor_id": None,
        "actor_name": "test",
        "target_type": "AccessPackageAssignment",
        "target_id": new_id(),
        "target_name": "Target",
        "catalog_id": None,
    }
    with db.write() as s:
        append(s, **fields, details=details[0], subject_id=new_id())
        append_many(s, [{**fields, "details": d, "subject_id": None} for d in details])
        append_many(s, [{**fields, "details": d, "subject_id": new_id()} for d in details])
        append(s, **fields, details=details[1])
    with db.read() as conn:
        stored = conn.execute(
            select(AuditEvent.details)
            .where(AuditEvent.activity == "Test activity")
            .order_by(AuditEvent.seq)
        ).scalars()
        appended = [details[0], *details, *details, details[1]]
        assert list(stored) == [json.loads(json.dumps(d, default=str)) for d in appended]
        assert verify(conn).ok


@pytest.fixture
def tampered(db: Database, clock: SteppingClock) -> Iterator[Database]:
    """The test database, left with a clean log again afterwards, whatever the test did to it
    (a suite-wide ``remit audit verify`` after the run must not see our forgeries)."""
    yield db
    empty(db)
    bootstrap.ensure_builtins(db, clock)


@pytest.mark.parametrize("kind", list(TAMPERS))
def test_tampering_is_detected(
    tampered: Database, clock: SteppingClock, tmp_path: Path, kind: str
) -> None:
    db = tampered
    append_events(db, clock)
    tamper, phrase = TAMPERS[kind]
    with db.engine.begin() as conn:
        tamper(conn)
    with db.read() as conn:
        result = verify(conn)
    assert not result.ok
    assert any(phrase in p for p in result.problems), result.problems

    cli = remit_cli(db, tmp_path, "audit", "verify")
    assert cli.returncode != 0
    lines = cli.stderr.strip().splitlines()
    assert len(lines) == 1, cli.stderr
    assert lines[0].startswith("remit: error: audit chain BROKEN"), lines[0]
    # The problems themselves are listed on stdout, one per line.
    assert phrase in " ".join(cli.stdout.split()), cli.stdout


def test_all_five_tamper_kinds_are_covered() -> None:
    kinds = {name.split("-")[0] for name in TAMPERS}
    assert kinds == {"modify", "delete", "insert", "reorder", "truncate"}


# ------------------------------------------------------------------ concurrent appends


def concurrent_appends(db: Database, clock: SteppingClock) -> list[BaseException]:
    """APPENDS transactions from WORKERS threads released together; returns their errors."""
    barrier = threading.Barrier(WORKERS)
    actor = system_actor("appender")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        barrier.wait()
        for n in range(worker, APPENDS, WORKERS):
            try:
                with db.write() as s:
                    Ctx(s, actor, clock()).audit(
                        "Concurrent append",
                        operation_type="Add",
                        target_type="Test",
                        target_id=f"append-{n}",
                        after={"worker": worker, "n": n},
                    )
            except Exception as exc:  # collected, reported by the caller
                errors.append(exc)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(work, range(WORKERS)))
    return errors


def assert_one_linear_chain(db: Database, before: int) -> None:
    with db.read() as conn:
        result = verify(conn)
        seqs = list(conn.execute(select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars())
        targets = list(
            conn.execute(
                select(AuditEvent.target_id).where(AuditEvent.activity == "Concurrent append")
            ).scalars()
        )
    assert result.ok, result.problems
    assert seqs == list(range(1, before + APPENDS + 1))
    assert result.events == result.head_seq == before + APPENDS
    assert sorted(targets) == sorted(f"append-{n}" for n in range(APPENDS))


@pytest.mark.slow
def test_concurrent_appends_form_one_linear_chain(
    db: Database, clock: SteppingClock, tmp_path: Path
) -> None:
    append_events(db, clock)
    with db.read() as conn:
        before = last_seq(conn)
    assert concurrent_appends(db, clock) == []
    assert_one_linear_chain(db, before)
    assert remit_cli(db, tmp_path, "audit", "verify").returncode == 0


def test_the_first_two_appends_race_for_the_missing_head_row(
    db: Database, clock: SteppingClock
) -> None:
    """On a log that has never been written (no head row, as right after the migrations), a
    second append starts while the first is still uncommitted; both must land, in order."""
    with db.engine.begin() as conn:
        conn.execute(delete(AuditEvent))
        conn.execute(delete(AuditHead))
    actor = system_actor("first")
    errors: list[BaseException] = []
    backend: list[int] = []

    def second_append() -> None:
        try:
            with db.write() as s:
                if db.dialect == "postgresql":
                    backend.append(s.execute(text("SELECT pg_backend_pid()")).scalar_one())
                Ctx(s, actor, clock()).audit(
                    "Second", operation_type="Add", target_type="Test", target_id="second"
                )
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    with db.write() as first:
        # Appended at once (not at commit, as operations do), so that the first transaction
        # holds its uncommitted head row while the second one commits and looks for it.
        append(
            first,
            occurred_at=clock(),
            category="Test",
            activity="First",
            operation_type="Add",
            actor_id=actor.user_id,
            actor_name=actor.name,
            target_type="Test",
            target_id="first",
            target_name=None,
            catalog_id=None,
            details={},
        )
        second = threading.Thread(target=second_append)
        second.start()
        # On PostgreSQL, commit only once the second transaction waits on a lock (or is done):
        # then it has certainly looked for the head row before the first one was committed.
        # On SQLite it waits for the database lock in BEGIN IMMEDIATE, whatever the timing.
        while db.dialect == "postgresql" and second.is_alive() and not waiting(db, backend):
            time.sleep(0.005)
    second.join()
    assert errors == []
    with db.read() as conn:
        result = verify(conn)
        order = list(conn.execute(select(AuditEvent.target_id).order_by(AuditEvent.seq)).scalars())
    assert result.ok, result.problems
    assert order == ["first", "second"]


def waiting(db: Database, backend: list[int]) -> bool:
    if not backend:
        return False
    with db.read() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE pid = :pid AND wait_event_type = 'Lock'"
                ),
                {"pid": backend[0]},
            ).scalar_one()
        )


# ---------------------------------------------------------------- the head moved in one statement


def appended_once(db: Database, clock: SteppingClock, target_id: str) -> list[str]:
    """Commit one event; the statements that touched the head row, by verb."""
    seen: list[str] = []

    def on_statement(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "audit_head" in statement:
            seen.append(statement.split(None, 1)[0].upper())

    event.listen(db.engine, "before_cursor_execute", on_statement)
    try:
        with db.write() as s:
            Ctx(s, system_actor("mover"), clock()).audit(
                "Head moved", operation_type="Add", target_type="Test", target_id=target_id
            )
    finally:
        event.remove(db.engine, "before_cursor_execute", on_statement)
    return seen


def assert_linear(db: Database, targets: list[str]) -> None:
    with db.read() as conn:
        result = verify(conn)
        seqs = list(conn.execute(select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars())
        moved = conn.execute(
            select(AuditEvent.target_id)
            .where(AuditEvent.activity == "Head moved")
            .order_by(AuditEvent.seq)
        ).scalars()
        assert list(moved) == targets
    assert result.ok, result.problems
    assert seqs == list(range(1, result.head_seq + 1))


def test_an_append_moves_the_head_it_expects_in_one_statement(
    db: Database, clock: SteppingClock
) -> None:
    append_events(db, clock, 3)  # this process has written the head since the log was emptied
    assert appended_once(db, clock, "a") == ["UPDATE"]
    assert appended_once(db, clock, "b") == ["UPDATE"]
    assert_linear(db, ["a", "b"])


def test_a_head_moved_by_another_process_is_found_not_overwritten(
    db: Database, clock: SteppingClock
) -> None:
    """Two engines on one database (two processes, each with its own idea of the head): each
    append after the other's finds the head moved, chains from the one in the database, and
    moves it (two statements, as a read and an update took before)."""
    other = Database(db.url)
    try:
        append_events(db, clock, 3)
        order = []
        for n in range(3):
            for name, where in (("here", db), ("there", other)):
                target = f"{name}-{n}"
                spent = appended_once(where, clock, target)
                assert spent == (["UPDATE", "UPDATE"] if n or name == "there" else ["UPDATE"])
                order.append(target)
        assert appended_once(other, clock, "there-again") == ["UPDATE"]
        assert_linear(db, [*order, "there-again"])
    finally:
        other.dispose()


def test_an_append_rolled_back_leaves_no_trace_in_the_next_one(
    db: Database, clock: SteppingClock
) -> None:
    """The head this process expects after an append that was rolled back was never
    committed: the next append finds the real one."""
    append_events(db, clock, 3)

    def append_then_fail() -> None:
        with db.write() as s:
            Ctx(s, system_actor("mover"), clock()).audit(
                "Head moved", operation_type="Add", target_type="Test", target_id="lost"
            )
            append_many(s, s.info.pop("remit.audit.pending"))
            raise RuntimeError("rolled back after the append")

    with pytest.raises(RuntimeError):
        append_then_fail()
    assert appended_once(db, clock, "kept") == ["UPDATE", "UPDATE"]
    assert appended_once(db, clock, "next") == ["UPDATE"]
    assert_linear(db, ["kept", "next"])
