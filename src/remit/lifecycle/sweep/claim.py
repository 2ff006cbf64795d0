"""Choosing a chunk of due assignments and ending them, in one conditional UPDATE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select, update

from remit.context import Ctx
from remit.lifecycle.locks import lock_subjects
from remit.lifecycle.models import Assignment
from remit.lifecycle.sweep.sql import among, dialect

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
    due = (
        select(A.c.id)
        .where(A.c.active_key.is_not(None), A.c.expires_at <= ctx.now)
        .order_by(A.c.expires_at, A.c.id)
        .limit(limit)
    )
    end = update(A).where(A.c.active_key.is_not(None), A.c.expires_at <= ctx.now)
    if dialect(session) == "postgresql":
        chosen = session.execute(due.add_columns(A.c.target_id)).all()
        if not chosen:
            return 0, []
        lock_subjects(ctx, [target for _, target in chosen])
        end = end.where(among(session, A.c.id, [aid for aid, _ in chosen]))
    else:
        chosen = None
        end = end.where(A.c.id.in_(due.scalar_subquery()))
    rows = session.execute(
        end.values(
            state="expired",
            status="Expired",
            active_key=None,
            # When access ended, which is also what the API showed once the end had passed.
            expired_at=A.c.expires_at,
            modified_at=ctx.now,
            end_reason=REASON,
            ended_by=None,
            version=A.c.version + 1,
        ).returning(
            A.c.id,
            A.c.target_id,
            A.c.access_package_id,
            A.c.catalog_id,
            A.c.policy_id,
            A.c.expires_at,
            A.c.request_id,
        )
    )
    ended = sorted((Ended(*row) for row in rows), key=lambda a: (a.expires_at, a.id))
    return (len(chosen) if chosen is not None else len(ended)), ended
