"""The chunk's grant rows, read at once: the subjects' rows (locked on PostgreSQL) and what
their active assignments need of each (``delivery.live_holders``). Both are ``HotSelect``s: a
few rows per assignment, where SQLAlchemy's handling of each row would cost more than reading
it; and the subjects go in one parameter (``sql.among``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, distinct, func, or_, select
from sqlalchemy.orm import Session

from remit.catalogs.models import ResourceRole
from remit.connectors.base import RoleRef
from remit.context import Ctx
from remit.db import HotSelect, UTCDateTime, insert_or_ignore, new_id
from remit.lifecycle import delivery
from remit.lifecycle.models import Assignment, ResourceGrant
from remit.lifecycle.sweep.sql import among_param, dialect, listed
from remit.packages.models import ResourceRoleScope

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
    applied_state: str
    attempts: int = 0  # written only with a new desire, which starts its attempts again
    last_error: str | None = None
    # "" unchanged | counted (holders only) | revoked (applied) | pending (remote) | failed | orm
    outcome: str = ""

    @property
    def pending(self) -> bool:
        return self.applied_generation < self.generation

    def fail(self, error: str) -> None:
        """``delivery._failed`` for a permanent error."""
        self.attempts += 1
        self.last_error = error[:500]
        self.applied_generation, self.applied_state = self.generation, "failed"
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
            [
                {
                    "id": new_id(),
                    "subject_id": k[0],
                    "origin_system": k[1],
                    "resource_origin_id": wanted[k].resource_origin_id,
                    "role_origin_id": k[2],
                    "display_name": wanted[k].display_name,
                    "holders": 0,
                    "desired": False,
                    "generation": 0,
                    "applied_generation": 0,
                    "applied_state": "none",
                    "attempts": 0,
                    "updated_at": ctx.now,
                }
                for k in missing
            ],
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
        select(*[G.c[name] for name in list(Grant.__dataclass_fields__)[:11]])
        .where(among_param(dialect_name, G.c.subject_id, "subjects"))
        .order_by(G.c.subject_id, G.c.origin_system, G.c.role_origin_id)
    )
    return HotSelect(query.with_for_update() if dialect_name == "postgresql" else query)


_READ = {name: _read_query(name) for name in ("postgresql", "sqlite")}


def live_holders(ctx: Ctx, subjects: list[str]) -> delivery.Holders:
    """``delivery.live_holders``: for each (subject, origin system, role) that the subjects'
    active, unexpired assignments need, how many of them need it, the latest end among them,
    and whether one never ends."""
    name = dialect(ctx.session)
    rows = _LIVE[name].rows(
        ctx.session.connection(), {"subjects": listed(subjects), "now": ctx.now}
    )
    return {
        (s, system, role): (int(n), latest, bool(never))
        for s, system, role, n, latest, never in rows
    }


def _live_query(dialect_name: str) -> HotSelect:
    a = Assignment
    columns: list[Any] = [
        a.target_id,
        ResourceRole.origin_system,
        ResourceRole.origin_id,
        func.count(distinct(a.id)),
        func.max(a.expires_at),
        func.max(case((a.expires_at.is_(None), 1), else_=0)),
    ]
    query = (
        select(*columns)
        .join(ResourceRoleScope, ResourceRoleScope.access_package_id == a.access_package_id)
        .join(ResourceRole, ResourceRole.id == ResourceRoleScope.role_id)
        .where(
            among_param(dialect_name, a.target_id, "subjects"),
            a.active_key.is_not(None),
            or_(a.expires_at.is_(None), a.expires_at > bindparam("now", type_=UTCDateTime())),
        )
        .group_by(a.target_id, ResourceRole.origin_system, ResourceRole.origin_id)
    )
    return HotSelect(query)


_LIVE = {name: _live_query(name) for name in ("postgresql", "sqlite")}
