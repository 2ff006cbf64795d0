"""P5's floor: the rows an expiry writes, written by hand-made SQL on the raw driver.

What the sweep must leave for each assignment of the P5 world, with no application around it:
the assignment ended (one conditional ``UPDATE … RETURNING``), its subject's grant rows read
(locked on PostgreSQL, after the subject locks) and recounted against the live holders, the
grant rows written back, the directory edges deleted, a ``systemRemove`` request and an email job
(``INSERT … SELECT``), an audit event (hashed in a chain, inserted in one batch); a transaction
per chunk. No ORM, no SQLAlchemy, nothing the world does not need (every role is the builtin
connector's, no guest, no custom extension, no earlier removal waiting). What the sweep spends
beyond this is the application's; if this misses the bar, so must the sweep, on this machine
and schema.
"""

# ruff: noqa: S608 - hand-written SQL over our own table and column names; values are parameters

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from remit.db import SQLITE_PRAGMAS
from remit.ids import ordered_ids

# (origin system, directory table, role column, subject column, role from: 0 resource, 1 role)
EDGES = (
    ("AadGroup", "group_members", "group_id", "member_id", 0),
    ("AadApplication", "app_role_assignments", "app_role_id", "principal_id", 1),
    ("SharePointOnline", "site_role_members", "site_role_id", "user_id", 1),
)
_V7_TAIL = {
    "postgresql": "substr(gen_random_uuid()::text, 16)",
    "sqlite": "substr(lower(hex(randomblob(2))), 2) || '-' || "
    "substr('89ab', 1 + abs(random()) % 4, 1) || substr(lower(hex(randomblob(2))), 2) || '-' || "
    "lower(hex(randomblob(6)))",
}
_EVENT = "seq, id, occurred_at, target_id, catalog_id, subject_id, details, prev_hash, hash"
_FIXED = {
    "category": "EntitlementManagement",
    "activity": "Remove access package assignment",
    "operation_type": "Delete",
    "actor_name": "worker",
    "target_type": "AccessPackageAssignment",
}


class Floor:
    """One connection on the raw driver, and the statements in its engine's dialect (``?``
    placeholders, turned into ``%s`` for psycopg)."""

    def __init__(self, url: str, now: datetime) -> None:
        self.pg = url.startswith("postgresql")
        if self.pg:
            import psycopg

            self.conn: Any = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            for pragma in SQLITE_PRAGMAS:
                self.conn.execute(f"PRAGMA {pragma}")
        # SQLite holds instants as SQLAlchemy writes them: naive UTC text.
        self.at: Any = now if self.pg else now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        self.instant = now.isoformat()  # as the chain hashes it
        self.seq, self.prev = self.sql("SELECT seq, hash FROM audit_head WHERE id = 1")[0]
        if self.pg:
            self.conn.commit()
        self.spent: dict[str, float] = defaultdict(float)

    # ------------------------------------------------------------------ the driver

    def among(self, column: str) -> str:
        if self.pg:
            return f"{column} IN (SELECT json_array_elements_text(CAST(? AS json)))"
        return f"{column} IN (SELECT value FROM json_each(?))"

    def sql(self, text: str, params: Any = ()) -> list[Any]:
        cursor = self.conn.execute(text.replace("?", "%s") if self.pg else text, params)
        return list(cursor.fetchall()) if cursor.description else []

    def delete(self, table: str, role: str, subject: str, pairs: list[tuple[str, str]]) -> None:
        """The edges, by primary key: SQLite one DELETE run for each, PostgreSQL one DELETE
        joined to them all (as ``BuiltinConnector.revoke_many`` does)."""
        if not self.pg:
            self.conn.executemany(f"DELETE FROM {table} WHERE {role} = ? AND {subject} = ?", pairs)
            return
        self.sql(
            f"DELETE FROM {table} AS t USING (SELECT p->>0 AS r, p->>1 AS s"
            " FROM json_array_elements(CAST(? AS json)) AS p) AS x"
            f" WHERE t.{role} = x.r AND t.{subject} = x.s",
            (json.dumps(pairs),),
        )

    def commit(self) -> None:
        self.conn.commit() if self.pg else self.conn.execute("COMMIT")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.spent[name] += time.perf_counter() - started

    # ------------------------------------------------------------------ a chunk

    def chunk(self, size: int) -> int:
        """Expire up to ``size`` due assignments in one transaction; how many."""
        if not self.pg:
            self.conn.execute("BEGIN IMMEDIATE")
        with self.step("end the assignments"):
            ended = self.end(size)
        if not ended:
            self.commit()
            return 0
        subjects = json.dumps(sorted({a[1] for a in ended}))
        ids = json.dumps([a[0] for a in ended])
        with self.step("read and recount the grants"):
            revoked, counted = self.recount(subjects)
        with self.step("write the grants"):
            self.write(revoked, counted)
        with self.step("delete the directory edges"):
            for system, table, role, subject, which in EDGES:
                pairs = sorted((g[3 + which], g[1]) for g in revoked if g[2] == system)
                self.delete(table, role, subject, pairs)
        with self.step("insert the requests"):
            requests = dict(self.requests(ids))
        with self.step("hash and insert the audit events"):
            self.audit(ended, requests)
        with self.step("insert the email jobs"):
            self.emails(ids)
        with self.step("commit"):
            self.commit()
        return len(ended)

    def end(self, size: int) -> list[Any]:
        due = "active_key IS NOT NULL AND expires_at <= ?"
        end = (
            "UPDATE assignments SET state = 'expired', status = 'Expired', active_key = NULL,"
            " expired_at = expires_at, modified_at = ?, end_reason = 'expired',"
            f" version = version + 1 WHERE {due} AND "
        )
        returning = " RETURNING id, target_id, access_package_id, catalog_id, policy_id"
        if not self.pg:
            choose = f"SELECT id FROM assignments WHERE {due} ORDER BY expires_at, id LIMIT ?"
            return self.sql(f"{end} id IN ({choose}){returning}", (self.at,) * 3 + (size,))
        chosen = self.sql(
            f"SELECT id, target_id FROM assignments WHERE {due} ORDER BY expires_at, id LIMIT ?",
            (self.at, size),
        )
        if not chosen:
            return []
        self.sql(
            "SELECT count(pg_advisory_xact_lock(hashtextextended('remit-subject:' || k, 0)))"
            " FROM (SELECT k FROM json_array_elements_text(CAST(? AS json))"
            " WITH ORDINALITY AS t(k, n) ORDER BY n) s",
            (json.dumps(sorted({t.lower() for _, t in chosen})),),
        )
        ids = json.dumps([a for a, _ in chosen])
        return self.sql(f"{end}{self.among('id')}{returning}", (self.at, self.at, ids))

    def recount(self, subjects: str) -> tuple[list[Any], list[tuple[int, str]]]:
        """The grant rows no live assignment needs any more, and (holders, id) of the others."""
        lock = " FOR UPDATE" if self.pg else ""
        grants = self.sql(
            "SELECT id, subject_id, origin_system, resource_origin_id, role_origin_id"
            f" FROM resource_grants WHERE {self.among('subject_id')}"
            f" ORDER BY subject_id, origin_system, role_origin_id{lock}",
            (subjects,),
        )
        live = {
            (s, system, role): n
            for s, system, role, n in self.sql(
                "SELECT a.target_id, r.origin_system, r.origin_id, count(DISTINCT a.id)"
                " FROM assignments a JOIN package_resource_role_scopes s"
                " ON s.access_package_id = a.access_package_id"
                " JOIN resource_roles r ON r.id = s.role_id"
                f" WHERE {self.among('a.target_id')} AND a.active_key IS NOT NULL"
                " AND (a.expires_at IS NULL OR a.expires_at > ?)"
                " GROUP BY a.target_id, r.origin_system, r.origin_id",
                (subjects, self.at),
            )
        }
        revoked = [g for g in grants if (g[1], g[2], g[4]) not in live]
        counted = [(live[(g[1], g[2], g[4])], g[0]) for g in grants if (g[1], g[2], g[4]) in live]
        return revoked, counted

    def write(self, revoked: list[Any], counted: list[tuple[int, str]]) -> None:
        self.sql(
            "UPDATE resource_grants SET holders = 0, desired = ?, valid_until = NULL,"
            " generation = generation + 1, applied_generation = generation + 1,"
            " applied_state = 'revoked', attempts = 0, last_error = NULL, updated_at = ?"
            f" WHERE {self.among('id')}",
            (False, self.at, json.dumps([g[0] for g in revoked])),
        )
        for holders in {n for n, _ in counted}:
            ids = json.dumps([g for n, g in counted if n == holders])
            self.sql(
                f"UPDATE resource_grants SET holders = ? WHERE {self.among('id')}", (holders, ids)
            )

    def requests(self, ids: str) -> list[Any]:
        return self.sql(
            "INSERT INTO assignment_requests (id, request_type, state, status,"
            " access_package_id, catalog_id, policy_id, assignment_id, target_id, answers,"
            " schedule, created_at, completed_at, version)"
            f" SELECT ? || {_V7_TAIL['postgresql' if self.pg else 'sqlite']}, 'systemRemove',"
            " 'delivered', 'Fulfilled', access_package_id, catalog_id, policy_id, id, target_id,"
            f" '[]', '{{}}', ?, ?, 1 FROM assignments WHERE {self.among('id')}"
            " RETURNING assignment_id, id",
            (ordered_ids(1)[0][:15], self.at, self.at, ids),
        )

    def audit(self, ended: list[Any], requests: dict[str, str]) -> None:
        """One chained event each (``audit.chain.verify`` accepts them), inserted as
        ``audit.chain.append_many`` does (``COPY`` on PostgreSQL)."""
        events = []
        for a, event_id in zip(ended, ordered_ids(len(ended)), strict=True):
            self.seq += 1
            details = {"before": None, "after": None, "reason": "expired"}
            details["requestId"] = requests[a[0]]
            fields = {**_FIXED, "seq": self.seq, "id": event_id, "occurred_at": self.instant}
            fields |= {"actor_id": None, "target_id": a[0], "target_name": None}
            fields |= {"catalog_id": a[3], "subject_id": a[1], "details": details}
            canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
            digest = hashlib.sha256(self.prev.encode() + canonical.encode()).hexdigest()
            event = (self.seq, event_id, self.at, a[0], a[3], a[1], json.dumps(details))
            events.append((*event, self.prev, digest, *_FIXED.values()))
            self.prev = digest
        columns = f"{_EVENT}, {', '.join(_FIXED)}"
        if self.pg:
            with (
                self.conn.cursor() as cursor,
                cursor.copy(f"COPY audit_events ({columns}) FROM STDIN") as copy,
            ):
                for event in events:
                    copy.write_row(event)
        else:
            marks = ", ".join("?" * len(events[0]))
            self.conn.executemany(f"INSERT INTO audit_events ({columns}) VALUES ({marks})", events)
        self.sql("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (self.seq, self.prev))

    def emails(self, ids: str) -> None:
        obj = "json_build_object" if self.pg else "json_object"
        self.sql(
            "INSERT INTO jobs (kind, payload, status, run_after, attempts, max_attempts,"
            " created_at, updated_at)"
            f" SELECT 'notify.email', {obj}('template', 'access_ended', 'user_id', a.target_id,"
            f" 'data', {obj}('package', p.display_name, 'reason', 'expired',"
            " 'assignment_id', a.id)), 'queued', ?, 0, 5, ?, ?"
            " FROM assignments a JOIN access_packages p ON p.id = a.access_package_id"
            f" WHERE {self.among('a.id')}",
            (self.at, self.at, self.at, ids),
        )


def run(url: str, now: datetime, chunk: int) -> dict[str, Any]:
    """Expire everything due at ``now``, a chunk per transaction; how many, in how long, and
    where the time went."""
    floor = Floor(url, now)
    started = time.perf_counter()
    ended = 0
    while done := floor.chunk(chunk):
        ended += done
    seconds = time.perf_counter() - started
    floor.conn.close()
    return {"ended": ended, "seconds": seconds, "spent": dict(floor.spent)}
