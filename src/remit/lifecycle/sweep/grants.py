"""The chunk's resource grants: recounted all at once, local revocations applied in SQL.

``delivery.settle`` (recount, then apply what local connectors can), as ``assignments.end`` runs it
for one ended assignment, for every (subject, role) of the chunk: the subjects' grant rows are read
in one statement (locked on PostgreSQL, in the order ``delivery`` locks them), their live holders
counted in one grouped query (``grant_rows``), and the rows written back by outcome in a few
set-based UPDATEs. Revocations through the builtin connector are one DELETE per directory table
(``revoke``); those of other local connectors, and rows that were out of line with the assignments
before the sweep (one that becomes desired again, or whose expiry moves), go through
``delivery.apply`` with the ORM. Remote revocations stay pending, for the subject's sync job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, update

from remit.connectors.base import ConnectorError, RoleRef
from remit.connectors.builtin import BuiltinConnector
from remit.connectors.registry import connector_for
from remit.context import Ctx
from remit.db import among
from remit.lifecycle import delivery
from remit.lifecycle.sweep import grant_rows, revoke
from remit.lifecycle.sweep.grant_rows import G, Grant, Key
from remit.models.lifecycle import ResourceGrant


@dataclass
class Recount:
    """The chunk's grant rows after the recount, the subjects left with one pending (each
    needs a sync job), and how many roles were revoked (of those, how many wait for a remote
    connector)."""

    grants: dict[Key, Grant]
    sync: set[str] = field(default_factory=set)
    revoked: int = 0
    pending_remote: int = 0

    def waiting(self, subject: str, roles: Sequence[RoleRef]) -> bool:
        """Whether one of these roles of the subject still waits to be applied."""
        for r in roles:
            g = self.grants.get((subject, r.origin_system, r.role_origin_id))
            if g is not None and g.pending:
                return True
        return False


def recount(ctx: Ctx, subjects: list[str], wanted: dict[Key, RoleRef]) -> Recount:
    """Bring the ``wanted`` (subject, role) rows in line with the subjects' active assignments
    and apply what is local."""
    grants = grant_rows.locked(ctx, subjects, wanted)
    live = delivery.live_holders(ctx.session, subjects, ctx.now)
    revoked: list[Grant] = []
    for key in sorted(wanted):
        g = grants[key]
        count, latest, never = live.get(key, (0, None, False))
        desired = count > 0
        valid_until = None if (not desired or never) else latest
        if g.holders != count:
            g.holders, g.outcome = count, "counted"
        if desired != g.desired or (desired and valid_until != g.valid_until):
            g.desired, g.valid_until = desired, valid_until
            g.generation += 1
            g.attempts, g.last_error = 0, None
            g.outcome = "pending"
            if desired:
                g.outcome = "orm"  # out of line before the sweep: granted (again) as usual
            else:
                revoked.append(g)
    builtin: list[Grant] = []
    for g in revoked:
        try:
            connector = connector_for(g.origin_system)
        except ConnectorError as e:
            g.fail(str(e))
            continue
        if isinstance(connector, BuiltinConnector):
            builtin.append(g)
        elif connector.local:
            g.outcome = "orm"
    revoke.builtin(ctx.session, builtin)
    _write(ctx, list(grants.values()))
    result = Recount(grants)
    result.sync = _apply_with_orm(ctx, [g for g in grants.values() if g.outcome == "orm"])
    result.sync |= {g.subject_id for g in revoked if g.outcome == "pending"}
    result.revoked = len(revoked)
    result.pending_remote = sum(1 for g in revoked if g.pending)
    return result


def _write(ctx: Ctx, rows: list[Grant]) -> None:
    """Write the recounted rows back: set-based for the usual outcomes, row by row for the
    rest. A row whose desire did not change keeps its ``updated_at``, as the ORM leaves it."""
    session = ctx.session
    by_outcome: dict[str, list[Grant]] = defaultdict(list)
    for g in rows:
        by_outcome[g.outcome].append(g)
    ended = {
        "holders": 0,
        "desired": False,
        "valid_until": None,
        "generation": G.c.generation + 1,
        "attempts": 0,
        "last_error": None,
        "updated_at": ctx.now,
    }
    applied = {"applied_generation": G.c.generation + 1, "applied_state": "revoked"}
    for outcome, values in (("revoked", {**ended, **applied}), ("pending", ended)):
        if by_outcome[outcome]:
            ids = [g.id for g in by_outcome[outcome]]
            session.execute(update(G).where(among(session, G.c.id, ids)).values(**values))
    counted: dict[int, list[str]] = defaultdict(list)
    for g in by_outcome["counted"]:
        counted[g.holders].append(g.id)
    for holders, ids in counted.items():
        session.execute(update(G).where(among(session, G.c.id, ids)).values(holders=holders))
    if by_outcome["failed"]:
        fields = ["holders", "desired", "valid_until", "generation", "applied_generation"]
        fields += ["applied_state", "attempts", "last_error"]
        session.execute(
            update(G)
            .where(G.c.id == bindparam("g_id"))
            .values({f: bindparam(f"g_{f}") for f in fields} | {"updated_at": ctx.now}),
            [
                {"g_id": g.id} | {f"g_{f}": getattr(g, f) for f in fields}
                for g in by_outcome["failed"]
            ],
        )


def _apply_with_orm(ctx: Ctx, rows: list[Grant]) -> set[str]:
    """Write these recounted rows through the ORM and ``delivery.apply`` them (local only);
    the subjects left with one pending."""
    if not rows:
        return set()
    loaded: list[ResourceGrant] = []
    for g in rows:
        grant = ctx.session.get(ResourceGrant, g.id, populate_existing=True)
        if grant is None:  # pragma: no cover - read (and locked on PostgreSQL) just before
            continue
        grant.holders, grant.desired, grant.valid_until = g.holders, g.desired, g.valid_until
        grant.generation, grant.attempts, grant.last_error = g.generation, 0, None
        grant.updated_at = ctx.now
        loaded.append(grant)
    retry = delivery.apply(ctx, loaded, local_only=True)
    ctx.session.flush()
    for g, grant in zip(rows, loaded, strict=True):
        g.applied_generation, g.applied_state = grant.applied_generation, grant.applied_state
    return {g.subject_id for g in rows if retry or g.pending}
