"""The chunk's resource grants: recounted all at once, local revocations applied set-based.

``delivery.settle`` (recount, then apply what local connectors can), as ``assignments.end`` runs it
for one ended assignment, for every (subject, role) of the chunk: the subjects' grant rows are read
in one statement (locked on PostgreSQL, in the order ``delivery`` locks them), their live holders
counted in one grouped query (``grant_rows``), and the rows written back by outcome in a few
set-based UPDATEs. Revocations go to each local target's connector in one ``revoke_many`` (the
builtin one: one DELETE per directory table), the path a single removal takes too; rows that were
out of line with the assignments before the sweep (one that becomes desired again, or whose expiry
moves) go through ``delivery.apply`` with the ORM. Remote revocations stay pending, for the
subject's sync job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, update

from remit.connectors import registry
from remit.connectors.base import ConnectorError, Revocation, RoleRef
from remit.context import Ctx
from remit.db import among
from remit.faults import crash_point
from remit.lifecycle import delivery
from remit.lifecycle.sweep import grant_rows
from remit.lifecycle.sweep.grant_rows import G, Grant, Key
from remit.models.lifecycle import ResourceGrant
from remit.models.vocabulary import GrantState


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
    revoke(ctx, revoked, wanted)
    _write(ctx, list(grants.values()))
    result = Recount(grants)
    orm = [g for g in grants.values() if g.outcome == "orm"]
    result.sync = _apply_with_orm(ctx, orm, wanted)
    result.sync |= {g.subject_id for g in revoked if g.pending}
    result.revoked = len(revoked)
    result.pending_remote = sum(1 for g in revoked if g.pending)
    return result


def revoke(ctx: Ctx, revoked: list[Grant], wanted: dict[Key, RoleRef]) -> None:
    """The revocations of local targets, one ``revoke_many`` per target (the builtin one:
    one DELETE per directory table); those of remote targets stay pending."""
    by_target: dict[str, list[Grant]] = defaultdict(list)
    for g in revoked:
        by_target[g.target_id].append(g)
    if not by_target:
        return
    found = registry.connectors(ctx.session, by_target)
    for target_id, rows in by_target.items():
        connector = found[target_id]
        if isinstance(connector, ConnectorError):
            for g in rows:
                g.fail(str(connector))
            continue
        if not connector.local:
            continue  # the subject's sync job calls it
        items = [Revocation(g.subject_id, _role(g, wanted)) for g in rows]
        crash_point("connector.before_call")
        outcomes = connector.revoke_many(ctx.session, items)
        crash_point("connector.after_call")
        for g, error in zip(rows, outcomes, strict=True):
            if error is None:
                g.applied_generation, g.applied_state = g.generation, GrantState.REVOKED
                g.outcome = "revoked"
            else:
                g.fail(str(error), permanent=error.permanent)


def _role(g: Grant, wanted: dict[Key, RoleRef]) -> RoleRef:
    """The row's role, with the target that delivered it."""
    name = wanted[(g.subject_id, g.origin_system, g.role_origin_id)].display_name
    return RoleRef(g.origin_system, g.resource_origin_id, g.role_origin_id, name, g.target_id)


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
    applied = {"applied_generation": G.c.generation + 1, "applied_state": GrantState.REVOKED}
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


def _apply_with_orm(ctx: Ctx, rows: list[Grant], wanted: dict[Key, RoleRef]) -> set[str]:
    """Write these recounted rows through the ORM and ``delivery.apply`` them (local only);
    the subjects left with one pending."""
    if not rows:
        return set()
    loaded: list[ResourceGrant] = []
    for g in rows:
        grant = ctx.session.get(ResourceGrant, g.id, populate_existing=True)
        if grant is None:  # pragma: no cover - read (and locked on PostgreSQL) just before
            continue
        role = wanted[(g.subject_id, g.origin_system, g.role_origin_id)]
        if (
            g.desired
            and not grant.desired
            and delivery.moves_to(
                grant.target_id,
                applied_state=grant.applied_state,
                pending=grant.applied_generation < grant.generation,
                claimed=grant.claim_token is not None,
                role=role,
            )
        ):
            grant.target_id = role.target_id
        grant.holders, grant.desired, grant.valid_until = g.holders, g.desired, g.valid_until
        grant.generation, grant.attempts, grant.last_error = g.generation, 0, None
        grant.updated_at = ctx.now
        loaded.append(grant)
    retry = delivery.apply(ctx, loaded)
    ctx.session.flush()
    for g, grant in zip(rows, loaded, strict=True):
        g.applied_generation, g.applied_state = grant.applied_generation, grant.applied_state
    return {g.subject_id for g in rows if retry or g.pending}
