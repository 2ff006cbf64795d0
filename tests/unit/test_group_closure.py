"""The transitive groups of a principal: exact under nesting, un-nesting, cycles and expired
edges, and on SQLite read by a plan that cannot degrade to a pass over ``group_members``.

The closure is a recursive CTE (``remit.authz.actor``); the actor load and
``transitive_group_ids`` both run it. An independent breadth-first search over the same edges is
the oracle. The plan test reads ``EXPLAIN QUERY PLAN`` of the statements those two functions
really send, on a SQLite file of its own that has been ANALYZEd (SQLite considers a Bloom filter
only for tables with statistics; decision 0028).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, delete, event, insert

from remit.authz.actor import load_actor, transitive_group_ids
from remit.authz.roles import CATALOG_READER
from remit.catalogs.operations import GENERAL_CATALOG_ID
from remit.db import Database
from remit.models import Base
from remit.models.authz import RoleAssignment
from remit.models.directory import Group, GroupMember, User
from tests.conftest import SteppingClock

Edge = tuple[str, str, datetime | None]  # (group, member, valid_until)


def add_users(conn: Connection, ids: list[str], now: datetime) -> None:
    conn.execute(
        insert(User),
        [
            {
                "id": u,
                "user_principal_name": f"{u}@closure.example",
                "upn_key": f"{u}@closure.example",
                "display_name": u,
                "created_at": now,
            }
            for u in ids
        ],
    )


def add_groups(conn: Connection, ids: list[str], now: datetime) -> None:
    conn.execute(
        insert(Group),
        [{"id": g, "display_name": g, "kind": "security", "created_at": now} for g in ids],
    )


def add_edges(conn: Connection, edges: list[Edge], groups: set[str]) -> None:
    conn.execute(
        insert(GroupMember),
        [
            {
                "group_id": g,
                "member_id": m,
                "member_type": "group" if m in groups else "user",
                "valid_until": until,
            }
            for g, m, until in edges
        ],
    )


def oracle(edges: list[Edge], start: str, now: datetime) -> frozenset[str]:
    """Every group reachable from ``start`` over edges live at ``now`` (breadth first)."""
    parents: dict[str, list[str]] = {}
    for group, member, until in edges:
        if until is None or until > now:
            parents.setdefault(member, []).append(group)
    found: set[str] = set()
    frontier = [start]
    while frontier:
        reached = {g for m in frontier for g in parents.get(m, ())} - found
        found |= reached
        frontier = list(reached)
    return frozenset(found)


def groups_of(db: Database, who: str, now: datetime) -> frozenset[str]:
    """The closure as both callers compute it; they must agree."""
    with db.read() as conn:
        actor = load_actor(conn, who, now=now).group_ids
        assert transitive_group_ids(conn, who, now=now) == actor
    return actor


# ---------------------------------------------------------------- exactness (both engines)


def test_nesting_and_un_nesting(db: Database, clock: SteppingClock) -> None:
    """user ∈ leaf ∈ mid ∈ top, and a role held by top reaches the user; cutting the chain
    in the middle removes what lay beyond it, at once."""
    now = clock()
    with db.engine.begin() as conn:
        add_users(conn, ["u"], now)
        add_groups(conn, ["leaf", "mid", "top", "aside"], now)
        add_edges(
            conn,
            [("leaf", "u", None), ("mid", "leaf", None), ("top", "mid", None)],
            {"leaf", "mid", "top"},
        )
        conn.execute(
            insert(RoleAssignment).values(
                principal_id="top",
                principal_type="group",
                role_definition_id=CATALOG_READER.id,
                app_scope_id=f"/AccessPackageCatalog/{GENERAL_CATALOG_ID}",
                catalog_id=GENERAL_CATALOG_ID,
                created_at=now,
            )
        )
    assert groups_of(db, "u", now) == {"leaf", "mid", "top"}
    with db.read() as conn:
        via = {g.via_principal_id for g in load_actor(conn, "u", now=now).grants}
        assert "top" in via
        assert transitive_group_ids(conn, "leaf", now=now) == {"mid", "top"}
        assert transitive_group_ids(conn, "top", now=now) == frozenset()

    with db.engine.begin() as conn:
        conn.execute(
            delete(GroupMember).where(
                GroupMember.group_id == "mid", GroupMember.member_id == "leaf"
            )
        )
    assert groups_of(db, "u", now) == {"leaf"}
    with db.read() as conn:
        assert "top" not in {g.via_principal_id for g in load_actor(conn, "u", now=now).grants}


def test_a_cycle_in_the_stored_edges_terminates_with_every_group_once(
    db: Database, clock: SteppingClock
) -> None:
    """The API refuses cycles; rows written around it (an import, a race) must still not loop."""
    now = clock()
    with db.engine.begin() as conn:
        add_users(conn, ["u"], now)
        add_groups(conn, ["a", "b", "c", "d"], now)
        add_edges(
            conn,
            [("a", "u", None), ("b", "a", None), ("c", "b", None), ("a", "c", None)],
            {"a", "b", "c", "d"},
        )
    assert groups_of(db, "u", now) == {"a", "b", "c"}
    with db.read() as conn:
        assert transitive_group_ids(conn, "a", now=now) == {"a", "b", "c"}
        assert transitive_group_ids(conn, "d", now=now) == frozenset()


def test_an_expired_edge_counts_for_nothing_before_the_sweep(
    db: Database, clock: SteppingClock
) -> None:
    """An edge delivered until ``valid_until`` is honoured before it and cut at it, wherever it
    lies in the chain; another live path still reaches the group."""
    now = clock()
    soon = now + timedelta(hours=1)
    with db.engine.begin() as conn:
        add_users(conn, ["u", "v"], now)
        add_groups(conn, ["g1", "g2", "g3", "other"], now)
        add_edges(
            conn,
            [
                ("g1", "u", None),
                ("g2", "g1", soon),  # nested until soon
                ("g3", "g2", None),
                ("other", "v", soon),  # a direct membership until soon
                ("g3", "other", None),
                ("g2", "other", None),
            ],
            {"g1", "g2", "g3", "other"},
        )
    assert groups_of(db, "u", now) == {"g1", "g2", "g3"}
    assert groups_of(db, "v", now) == {"other", "g2", "g3"}
    at_expiry = soon  # valid_until is exclusive: at that instant the edge is gone
    assert groups_of(db, "u", at_expiry) == {"g1"}
    assert groups_of(db, "v", at_expiry) == frozenset()
    with db.read() as conn:
        assert transitive_group_ids(conn, "g1", now=at_expiry) == frozenset()
        assert transitive_group_ids(conn, "other", now=at_expiry) == {"g2", "g3"}


def test_the_closure_agrees_with_a_breadth_first_oracle(db: Database, clock: SteppingClock) -> None:
    """Random nesting with cycles, diamonds and edges expiring at different times."""
    now = clock()
    rng = random.Random(13)  # noqa: S311 - a reproducible graph, not a secret
    groups = [f"g{n}" for n in range(40)]
    users = [f"u{n}" for n in range(15)]
    times = [None, None, None, now - timedelta(hours=1), now + timedelta(hours=1)]
    edges: dict[tuple[str, str], datetime | None] = {}
    for _ in range(70):
        edges[rng.choice(groups), rng.choice(groups)] = rng.choice(times)
    for u in users:
        for g in rng.sample(groups, 2):
            edges[g, u] = rng.choice(times)
    listed = [(g, m, until) for (g, m), until in edges.items()]
    with db.engine.begin() as conn:
        add_users(conn, users, now)
        add_groups(conn, groups, now)
        add_edges(conn, listed, set(groups))
    for at in (now, now + timedelta(hours=2)):
        for u in users:
            assert groups_of(db, u, at) == oracle(listed, u, at), (u, at)
        with db.read() as conn:
            for g in groups:
                assert transitive_group_ids(conn, g, now=at) == oracle(listed, g, at), (g, at)


# ---------------------------------------------------------------- the plan (SQLite)


@pytest.fixture
def analyzed_sqlite(tmp_path: Path, clock: SteppingClock) -> Iterator[Database]:
    """A SQLite file of its own with statistics, so the session's database keeps none."""
    db = Database(f"sqlite:///{tmp_path / 'closure-plan.db'}")
    Base.metadata.create_all(db.engine)
    now = clock()
    groups = [f"g{n}" for n in range(200)]
    users = [f"u{n}" for n in range(300)]
    edges: list[Edge] = [(f"g{n // 10}", f"g{n}", None) for n in range(1, 200)]
    edges += [(f"g{199 - n % 190}", u, None) for n, u in enumerate(users)]
    with db.engine.begin() as conn:
        add_users(conn, users, now)
        add_groups(conn, groups, now)
        add_edges(conn, edges, set(groups))
        conn.exec_driver_sql("ANALYZE")
    yield db
    db.dispose()


def test_each_recursive_step_is_an_index_lookup_on_sqlite(
    analyzed_sqlite: Database, clock: SteppingClock
) -> None:
    """No ``SCAN group_members`` and no Bloom filter on it (built by a pass over the whole table
    in every step), for every statement the actor load and ``transitive_group_ids`` send."""
    db = analyzed_sqlite
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "RECURSIVE" in statement.upper():
            sent.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.read() as conn:
            for catalog in (None, GENERAL_CATALOG_ID):
                load_actor(conn, "u0", catalog_id=catalog, now=clock())
            assert transitive_group_ids(conn, "u0", now=clock()) == {"g0", "g1", "g19", "g199"}
            load_actor(conn, "u0", now=clock())
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert len({s for s, _ in sent}) == 3  # the actor, for one catalog, and the groups only

    with db.engine.connect() as conn:
        for statement, params in sent:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
            details = [str(row[3]) for row in plan]
            ids = {row[0]: row for row in plan}
            assert not [d for d in details if "SCAN group_members" in d], details
            assert not [d for d in details if "BLOOM" in d], details
            steps = [row[0] for row in plan if row[3] == "RECURSIVE STEP"]
            assert len(steps) == 1, details
            in_step = [row[3] for row in plan if _under(ids, row[0], steps[0])]
            assert "SEARCH group_members USING INDEX ix_group_members_member (member_id=?)" in (
                in_step
            ), details


def _under(rows: dict[int, Any], node: int, ancestor: int) -> bool:
    parent = rows[node][1]
    while parent:
        if parent == ancestor:
            return True
        parent = rows[parent][1] if parent in rows else 0
    return False
