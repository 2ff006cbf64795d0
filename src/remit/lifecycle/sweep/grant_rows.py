"""The chunk's grant rows, read at once (locked on PostgreSQL), missing ones created as
``delivery`` creates them. A ``HotSelect``: a few rows per assignment, where SQLAlchemy's
handling of each row would cost more than reading it; the subjects go in one parameter
(``db.among``). What the subjects' assignments need of each row is ``delivery.live_holders``,
the same query a single recount uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from remit.connectors.base import RoleRef
from remit.context import Ctx
from remit.db import HotSelect, among_param, dialect, insert_or_ignore, listed
from remit.lifecycle import delivery
from remit.models.lifecycle import ResourceGrant
from remit.models.vocabulary import GrantState

G = cast(Table, ResourceGrant.__table__)
Key = tuple[str, str, str]  # (subject, origin system, role origin id)


@dataclass(slots=True)
class Grant:
    """A grant row as read (the columns the recount needs), and as it will be written back:
    ``outcome`` says how."""

    id: str
    subject_id: str
    origin_system: str
    resource_origin_id: str
    role_origin_id: str
    holders: int
    desired: bool
    valid_until: datetime | None
    generation: int
    applied_generation: int
    applied_state: GrantState
    target_id: str
    claim_token: str | None
    attempts: int = 0  # written only with a new desire, which starts its attempts again
    last_error: str | None = None
    # "" unchanged | counted (holders only) | revoked (applied) | pending (remote) | orm
    # | failed (an attempt that failed: for good, or to be retried by the sync job)
    outcome: str = ""

    @property
    def pending(self) -> bool:
        return self.applied_generation < self.generation

    def fail(self, error: str, *, permanent: bool = True) -> None:
        """``delivery._failed`` (a new desire's first attempt: never the last of them)."""
        self.attempts += 1
        self.last_error = error[:500]
        if permanent:
            self.applied_generation, self.applied_state = self.generation, GrantState.FAILED
        self.outcome = "failed"


def locked(ctx: Ctx, subjects: list[str], wanted: dict[Key, RoleRef]) -> dict[Key, Grant]:
    """Every grant row of the subjects, locked (PostgreSQL) in the order ``delivery`` locks them;
    the ``wanted`` rows that are missing are created first, as ``delivery._locked_grants`` does."""
    found = _read(ctx.session, subjects)
    missing = [k for k in wanted if k not in found]
    if missing:
        insert_or_ignore(
            ctx.session,
            ResourceGrant,
            [delivery.new_grant_row(k[0], wanted[k], ctx.now) for k in missing],
            ["subject_id", "origin_system", "role_origin_id"],
        )
        found = _read(ctx.session, subjects)
    return found


def _read(session: Session, subjects: list[str]) -> dict[Key, Grant]:
    name = dialect(session)
    found: dict[Key, Grant] = {}
    for row in _READ[name].rows(session.connection(), {"subjects": listed(subjects)}):
        g = Grant(*row)
        found[(g.subject_id, g.origin_system, g.role_origin_id)] = g
    return found


def _read_query(dialect_name: str) -> HotSelect:
    """The subjects' grant rows, in the order ``delivery`` locks them (and locked, on
    PostgreSQL)."""
    query = (
        select(*[G.c[name] for name in list(Grant.__dataclass_fields__)[:13]])
        .where(among_param(dialect_name, G.c.subject_id, "subjects"))
        .order_by(G.c.subject_id, G.c.origin_system, G.c.role_origin_id)
    )
    return HotSelect(query.with_for_update() if dialect_name == "postgresql" else query)


_READ = {name: _read_query(name) for name in ("postgresql", "sqlite")}
