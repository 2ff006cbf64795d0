"""Statements, flushes and commits per P4 lifecycle (a count, not a timing).

``python -m bench.statements [N] [--pg] [--top K]`` runs ``N`` lifecycles (200 by default) as
P4 in-process runs them (a ``userAdd`` request, its one approval delivering three roles through
the builtin connector, the worker's two emails), on a fresh SQLite file (or, with ``--pg``, a
scratch PostgreSQL database), and prints per lifecycle and per phase: statements through
SQLAlchemy's cursor events by kind (``db.HotSelect`` fires them too), commits, and the
session's non-empty flushes (the ORM's unit of work, autoflushes included), with the ``K``
most frequent statements. A count
does not depend on the machine's load: compare it before and after a change to the hot path.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, insert
from sqlalchemy.orm import Session

from bench.common import scratch_dir
from bench.p4_lifecycle import APPROVER, approve, submit
from bench.p5_expiry import _pg_admin, _pg_url, build_packages, rid, user_rows

DOMAIN = "statements.bench.example"
PG_DB = "remit_bench_statements"


PHASES = ("submit", "decide", "worker")


class Counts:
    """What the listeners saw, by phase of the lifecycle (None: not counting)."""

    def __init__(self) -> None:
        self.phase: str | None = None
        self.kinds: Counter[tuple[str, str]] = Counter()
        self.texts: Counter[str] = Counter()
        self.commits: Counter[str] = Counter()
        self.flushes: Counter[str] = Counter()

    def statement(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.phase:
            words = statement.lstrip().split(None, 1)
            self.kinds[self.phase, words[0].upper() if words else "?"] += 1
            self.texts[" ".join(statement.split())[:150]] += 1

    def commit(self, conn: Any) -> None:
        if self.phase:
            self.commits[self.phase] += 1

    def flush(self, session: Session, context: Any, instances: Any) -> None:
        if self.phase and (session.new or session.dirty or session.deleted):
            self.flushes[self.phase] += 1


def build(url: str, users: int) -> dict[str, str]:
    """P4's world (``bench.p4_lifecycle``'s first form): the approver, ``users`` requestors and
    one package whose policy has one approval stage; its and its policy's ids."""
    from remit import bootstrap
    from remit.db import Database
    from remit.models.directory import User

    db = Database(url)
    try:
        bootstrap.upgrade(db)
        now = datetime.now(UTC) - timedelta(days=1)
        with db.engine.begin() as conn:
            approver = next(user_rows(0, 1, now, DOMAIN)) | {
                "id": APPROVER,
                "user_principal_name": f"approver@{DOMAIN}",
                "upn_key": f"approver@{DOMAIN}",
            }
            conn.execute(insert(User), [approver, *user_rows(0, users, now, DOMAIN)])
        package = build_packages(db, 1, staff=False, approver=APPROVER)["packages"][0]
        return {"package": package.id, "policy": package.policy_id}
    finally:
        db.dispose()


def lifecycles(
    url: str, ids: dict[str, str], first: int, n: int, seen: Counts, *, counting: bool
) -> None:
    """``n`` lifecycles of users ``first``…, as P4 in-process runs them: the request, the
    approval (each in its ``db.write()`` with the actor loaded inside it, the approval's with
    the bench's read of the stage id), and the worker after each batch of its size."""
    from remit import logs
    from remit.db import Database
    from remit.jobs.runner import Worker
    from remit.notify import config
    from remit.settings import Settings

    data_dir = scratch_dir("statements-data")
    settings = Settings(data_dir=data_dir, database_url=url, log_level="warning")
    logs.configure("warning")
    config.configure(settings)
    db = Database(url)
    worker = Worker(db, settings)
    worker.drain()  # the periodic jobs' first runs
    try:
        for i in range(first, first + n):
            seen.phase = "submit" if counting else None
            request_id = submit(db, rid(1, i), ids["package"], ids["policy"])
            seen.phase = "decide" if counting else None
            approve(db, request_id)
            if (i - first + 1) % settings.worker_batch == 0 or i == first + n - 1:
                seen.phase = "worker" if counting else None
                worker.drain()  # as P4 does: after each batch of the worker's size
    finally:
        seen.phase = None
        config.configure(None)
        db.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


def count(url: str, n: int) -> Counts:
    ids = build(url, n + 10)
    seen = Counts()
    event.listen(Engine, "before_cursor_execute", seen.statement)
    event.listen(Engine, "commit", seen.commit)
    event.listen(Session, "before_flush", seen.flush)
    try:
        lifecycles(
            url, ids, 0, 2, seen, counting=False
        )  # warm-up, not counted (caches, first statements)
        lifecycles(url, ids, 2, n, seen, counting=True)
    finally:
        event.remove(Engine, "before_cursor_execute", seen.statement)
        event.remove(Engine, "commit", seen.commit)
        event.remove(Session, "before_flush", seen.flush)
    return seen


def main(argv: list[str]) -> int:
    n = next((int(a) for a in argv if a.isdigit()), 200)
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 0
    if "--pg" in argv:
        _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)', f'CREATE DATABASE "{PG_DB}"')
        try:
            seen = count(_pg_url(PG_DB), n)
        finally:
            _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    else:
        scratch = scratch_dir("statements")
        try:
            seen = count(f"sqlite:///{scratch / 'remit.db'}", n)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"{n} lifecycles; per lifecycle (statements through SQLAlchemy's cursor events):")
    print(f"  {'':8} {'statements':>10} {'by kind':40} {'commits':>7} {'flushes':>7}")
    for phase in (*PHASES, "all"):
        chosen = PHASES if phase == "all" else (phase,)
        kinds: Counter[str] = Counter()
        for (p, kind), k in seen.kinds.items():
            if p in chosen:
                kinds[kind] += k
        by_kind = " ".join(f"{kind} {k / n:.2f}" for kind, k in kinds.most_common())
        commits = sum(seen.commits[p] for p in chosen) / n
        flushes = sum(seen.flushes[p] for p in chosen) / n
        total = sum(kinds.values()) / n
        print(f"  {phase:8} {total:10.2f} {by_kind:40} {commits:7.2f} {flushes:7.2f}")
    print("  (flushes: the session's non-empty ones, autoflushes included)")
    for text, k in seen.texts.most_common(top):
        print(f"  {k / n:5.2f}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
