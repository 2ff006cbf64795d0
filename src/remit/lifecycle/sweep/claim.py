"""Choosing a chunk of due assignments and ending them, in one conditional UPDATE."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Select, Table, bindparam, select, update
from sqlalchemy.sql.dml import ReturningUpdate

from remit.context import Ctx
from remit.db import UTCDateTime, among_param, dialect, listed
from remit.lifecycle.locks import lock_subjects
from remit.models.lifecycle import Assignment
from remit.models.vocabulary import AssignmentState

A = cast(Table, Assignment.__table__)
REASON = "expired"


@dataclass(frozen=True, slots=True)
class Ended:
    """An assignment the chunk ended, as the ``UPDATE … RETURNING`` gave it back."""

    id: str
    target_id: str
    package_id: str
    catalog_id: str
    policy_id: str | None
    expires_at: datetime
    request_id: str | None  # the add request that created it


def claim(ctx: Ctx, limit: int) -> tuple[int, list[Ended]]:
    """End up to ``limit`` of the oldest due assignments; how many were chosen, and those
    ended (by ``expires_at``, then id).

    On PostgreSQL the chosen assignments' subjects are locked first, as every lifecycle change
    locks them (``locks``); then the UPDATE ends those still active and due, so one that a
    removal ended meanwhile is skipped. SQLite runs one writer at a time: there the choice is a
    subquery of the UPDATE itself, and every chosen assignment ends.
    """
    session = ctx.session
    name = dialect(session)
    choose, end = _statements(name)
    params: dict[str, Any] = {"now": ctx.now, "limit": limit}
    chosen = None
    if name == "postgresql":
        chosen = session.execute(choose, params).all()
        if not chosen:
            return 0, []
        lock_subjects(ctx, [target for _, target in chosen])
        params["ids"] = listed([aid for aid, _ in chosen])
    rows = session.execute(end, params)
    ended = sorted((Ended(*row) for row in rows), key=lambda a: (a.expires_at, a.id))
    return (len(chosen) if chosen is not None else len(ended)), ended


@functools.cache
def _statements(dialect_name: str) -> tuple[Select[Any], ReturningUpdate[Any]]:
    """The choice and the UPDATE, built once per engine (their parameters named)."""
    now = bindparam("now", type_=UTCDateTime())
    due = A.c.active_key.is_not(None), A.c.expires_at <= now
    choose = (
        select(A.c.id, A.c.target_id)
        .where(*due)
        .order_by(A.c.expires_at, A.c.id)
        .limit(bindparam("limit", type_=Integer))
    )
    chosen = (
        among_param(dialect_name, A.c.id, "ids")
        if dialect_name == "postgresql"
        else A.c.id.in_(choose.with_only_columns(A.c.id).scalar_subquery())
    )
    end = (
        update(A)
        .where(*due, chosen)
        .values(
            state=AssignmentState.EXPIRED,
            status="Expired",
            active_key=None,
            # When access ended, which is also what the API showed once the end had passed.
            expired_at=A.c.expires_at,
            modified_at=now,
            end_reason=REASON,
            ended_by=None,
            version=A.c.version + 1,
        )
        .returning(
            A.c.id,
            A.c.target_id,
            A.c.access_package_id,
            A.c.catalog_id,
            A.c.policy_id,
            A.c.expires_at,
            A.c.request_id,
        )
    )
    return choose, end
