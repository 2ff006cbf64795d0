"""The expiry sweep, set-based: a chunk of due assignments ends in a fixed number of statements.

``expire_chunk`` leaves the same end state and records as ending each assignment through
``assignments.end`` (``jobs.expire_due``), in about fifteen statements per chunk instead of a few
dozen per assignment:

1. the oldest due assignments are chosen (up to ``limit``); on PostgreSQL their subjects' locks
   (``locks.lock_subjects``) are taken first, in one statement, in the same sorted order; then one
   ``UPDATE … RETURNING`` ends those still active and due (one a removal ended meanwhile is
   skipped). ``expired_at`` is the instant access ended, ``expires_at``, which is also what the
   API shows for an assignment whose end passed before the sweep reached it;
2. the subjects' grant rows are recounted at once (``delivery._holders`` as one grouped query):
   a role stays while another active, unexpired assignment of the subject needs it;
3. revocations through the builtin connector are applied in SQL (one ``DELETE`` per directory
   table); those of other local connectors, and rows that were out of line with the assignments
   before the sweep (one that becomes desired again, or whose expiry moves), go through
   ``delivery.apply`` with the ORM, as in the per-assignment path; remote revocations stay
   pending, with a ``lifecycle.sync_subject`` job for the subject (``delivery.schedule_sync``);
4. one ``systemRemove`` request per assignment (``INSERT … SELECT``), fulfilled unless a remote
   revocation waits, and one "Remove access package assignment" audit event each (appended with
   the rest at commit, ``audit.pending``); earlier removal requests of the subjects that nothing
   waits for any more complete, as ``assignments._finish_removals`` would complete them;
5. one "access ended" email job per assignment (``INSERT … SELECT``; the payload that
   ``notify.email.send_later`` queues) unless its policy mutes notifications; policies with
   custom extensions go through ``notices.access_ended``, and governed guests who lost their last
   assignment through ``notices.after_last_assignment``.

One difference from the per-assignment path, on purpose: a subject with two due assignments that
share a role. Ended one by one, the first end revokes the role and re-derives the states of the
subject's other active assignments, which puts the second (and its fulfilled add request) back to
"delivering"; the add request stays so after the second ends. Here both end together and their
add requests stay fulfilled.

Each call runs in the caller's transaction; ``CHUNK`` keeps SQLite's write lock short. ``sweep``
runs chunks in transactions of their own until none is due.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    bindparam,
    case,
    delete,
    distinct,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from remit.authz.actor import Actor, system_actor
from remit.catalogs.models import ResourceRole
from remit.connectors.base import ConnectorError, RoleRef
from remit.connectors.builtin import BuiltinConnector
from remit.connectors.registry import connector_for
from remit.context import Ctx
from remit.db import Database, insert_or_ignore, new_id
from remit.directory.models import (
    AppRoleAssignment,
    Group,
    GroupMember,
    GroupOwner,
    SiteRole,
    SiteRoleMember,
    User,
)
from remit.faults import crash_point
from remit.jobs.models import Job
from remit.lifecycle import delivery, notices
from remit.lifecycle.assignments import REMOVE_TYPES, TARGET
from remit.lifecycle.models import Assignment, AssignmentRequest, ResourceGrant
from remit.notify import email
from remit.packages.models import AccessPackage, ResourceRoleScope
from remit.policies.models import AssignmentPolicy

# Assignments per chunk (one transaction). SQLite holds its one write lock for a chunk: keep it
# to tens of milliseconds. PostgreSQL locks only the chunk's rows.
CHUNK = {"sqlite": 250, "postgresql": 1000}
REASON = "expired"
_SLICE = 2000  # values per IN list: well under either engine's limit on bound parameters

A = cast(Table, Assignment.__table__)
G = cast(Table, ResourceGrant.__table__)
R = cast(Table, AssignmentRequest.__table__)
JOBS = cast(Table, Job.__table__)
PACKAGES = cast(Table, AccessPackage.__table__)

# A random (version 4) UUID in SQL, as ``new_id`` makes them in Python.
_UUID = {
    "postgresql": "gen_random_uuid()::text",
    "sqlite": "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
    "substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || "
    "substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))",
}
_JSON_OBJECT = {"postgresql": func.json_build_object, "sqlite": func.json_object}


@dataclass(frozen=True)
class Ended:
    """An assignment this chunk ended, as the ``UPDATE … RETURNING`` gave it back."""

    id: str
    target_id: str
    package_id: str
    catalog_id: str
    policy_id: str | None
    expires_at: datetime


@dataclass
class Chunk:
    """What one call did: how many due assignments it chose (``due``; fewer than its limit: no
    more are due) and ended (fewer, if a removal got to some first), the latest expiry among
    them, roles revoked (and of those, how many wait for a remote connector), email jobs queued."""

    due: int = 0
    ended: int = 0
    last_expiry: datetime | None = None
    revoked: int = 0
    pending_remote: int = 0
    emails: int = 0


@dataclass
class _Grant:
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


_READ = [
    G.c[name]
    for name in _Grant.__dataclass_fields__
    if name not in ("attempts", "last_error", "outcome")
]


Key = tuple[str, str, str]  # (subject, origin system, role origin id)


def chunk_size(dialect: str) -> int:
    return CHUNK.get(dialect, 250)


def expire_due(ctx: Ctx, *, limit: int | None = None) -> int:
    """End up to ``limit`` (default: a chunk) due assignments; how many (as ``jobs.expire_due``
    answers: a full chunk means there may be more)."""
    return expire_chunk(ctx, limit=limit).ended


def sweep(
    db: Database,
    clock: Callable[[], datetime],
    *,
    chunk: int | None = None,
    actor: Actor | None = None,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> int:
    """Expire everything due, a chunk per transaction; the number of assignments ended.

    Each chunk starts at the previous one's latest expiry, so it does not walk again over the
    index entries of the assignments ended before it.
    """
    who = actor or system_actor("worker")
    size = chunk or chunk_size(db.dialect)
    since: datetime | None = None
    total = 0
    while True:
        with db.write() as session:
            done = expire_chunk(Ctx(session, who, clock()), limit=size, since=since)
        total += done.ended
        if on_chunk is not None:
            on_chunk(done)
        if done.due < size:
            return total
        since = done.last_expiry


def expire_chunk(ctx: Ctx, *, limit: int | None = None, since: datetime | None = None) -> Chunk:
    """End up to ``limit`` (default: a chunk) due assignments; with ``since``, of those due at or
    after it."""
    session = ctx.session
    session.flush()
    due, ended = _claim(ctx, limit or chunk_size(_dialect(session)), since)
    if not ended:
        return Chunk(due, 0, since)
    crash_point("expiry.after_transition")
    package_ids = {a.package_id for a in ended}
    names: dict[str, str] = dict(
        session.execute(
            select(PACKAGES.c.id, PACKAGES.c.display_name).where(PACKAGES.c.id.in_(package_ids))
        ).all()
    )
    roles = delivery.package_roles(session, package_ids)
    subjects = sorted({a.target_id for a in ended})
    wanted = {
        (a.target_id, r.origin_system, r.role_origin_id): r
        for a in ended
        for r in roles[a.package_id]
    }
    grants = _grants(ctx, subjects, wanted)
    result = Chunk(due, len(ended), max(a.expires_at for a in ended))
    sync = _recount(ctx, subjects, wanted, grants, result)
    crash_point("removal.after_revoke")
    request_ids = _requests(ctx, ended, roles, grants)
    _audit(ctx, ended, names, request_ids)
    _finish_other_removals(ctx, subjects, grants, set(request_ids.values()))
    for subject in sorted(sync):
        delivery.schedule_sync(ctx, subject)
    result.emails = _notify(ctx, ended, names)
    _guests(ctx, subjects)
    return result


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _among(session: Session, column: Any, values: Iterable[str]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``= ANY`` of one array parameter, which spares
    rendering and parsing a placeholder per value."""
    if _dialect(session) == "postgresql":
        return cast(ColumnElement[bool], column == sa.any_(literal(list(values), ARRAY(String))))
    return cast(ColumnElement[bool], column.in_(values))


def _slices(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _SLICE):
        yield items[i : i + _SLICE]


# ---------------------------------------------------------------------------- assignments


def _claim(ctx: Ctx, limit: int, since: datetime | None) -> tuple[int, list[Ended]]:
    """Choose up to ``limit`` due assignments, lock their subjects, end those still due and
    active; how many were chosen, and those ended (oldest first)."""
    due = select(A.c.id, A.c.target_id).where(
        A.c.active_key.is_not(None), A.c.expires_at <= ctx.now
    )
    if since is not None:
        due = due.where(A.c.expires_at >= since)
    chosen = ctx.session.execute(due.order_by(A.c.expires_at, A.c.id).limit(limit)).all()
    if not chosen:
        return 0, []
    _lock_subjects(ctx, [target for _, target in chosen])
    ended: list[Ended] = []
    for part in _slices([aid for aid, _ in chosen]):
        stmt = (
            update(A)
            .where(
                _among(ctx.session, A.c.id, part),
                A.c.active_key.is_not(None),
                A.c.expires_at <= ctx.now,
            )
            .values(
                state="expired",
                status="Expired",
                active_key=None,
                expired_at=A.c.expires_at,
                modified_at=ctx.now,
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
            )
        )
        ended += [Ended(*row) for row in ctx.session.execute(stmt)]
    ended.sort(key=lambda a: (a.expires_at, a.id))
    return len(chosen), ended


def _lock_subjects(ctx: Ctx, keys: Iterable[str]) -> None:
    """``locks.lock_subjects`` in one round trip: the same advisory locks (the same key for the
    same subject), taken in the same sorted order. A no-op on SQLite."""
    wanted = sorted({k.lower() for k in keys if k})
    if not wanted or _dialect(ctx.session) != "postgresql":
        return
    ctx.session.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(hashtextextended('remit-subject:' || k, 0))"
            " FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS t(k, n) ORDER BY n"
        ),
        {"keys": wanted},
    )


# ---------------------------------------------------------------------------- grants


def _grants(ctx: Ctx, subjects: list[str], wanted: dict[Key, RoleRef]) -> dict[Key, _Grant]:
    """Every grant row of the subjects, locked (PostgreSQL) in the order ``delivery`` locks them;
    the ``wanted`` rows that are missing are created first, as ``delivery._locked_grants`` does."""
    found = _read_grants(ctx.session, subjects)
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
        found = _read_grants(ctx.session, subjects)
    return found


def _read_grants(session: Session, subjects: list[str]) -> dict[Key, _Grant]:
    found: dict[Key, _Grant] = {}
    for part in _slices(subjects):
        query = (
            select(*_READ)
            .where(_among(session, G.c.subject_id, part))
            .order_by(G.c.subject_id, G.c.origin_system, G.c.role_origin_id)
        )
        if _dialect(session) == "postgresql":
            query = query.with_for_update()
        for row in session.execute(query):
            g = _Grant(*row)
            found[(g.subject_id, g.origin_system, g.role_origin_id)] = g
    return found


def _live_holders(ctx: Ctx, subjects: list[str]) -> dict[Key, tuple[int, datetime | None, bool]]:
    """``delivery._holders`` for every role of the subjects at once: how many active, unexpired
    assignments need it, the latest expiry among them, and whether one never expires."""
    counts: dict[Key, tuple[int, datetime | None, bool]] = {}
    for part in _slices(subjects):
        rows = ctx.session.execute(
            select(
                Assignment.target_id,
                ResourceRole.origin_system,
                ResourceRole.origin_id,
                func.count(distinct(Assignment.id)),
                func.max(Assignment.expires_at),
                func.max(case((Assignment.expires_at.is_(None), 1), else_=0)),
            )
            .join(
                ResourceRoleScope,
                ResourceRoleScope.access_package_id == Assignment.access_package_id,
            )
            .join(ResourceRole, ResourceRole.id == ResourceRoleScope.role_id)
            .where(
                _among(ctx.session, Assignment.target_id, part),
                Assignment.active_key.is_not(None),
                or_(Assignment.expires_at.is_(None), Assignment.expires_at > ctx.now),
            )
            .group_by(Assignment.target_id, ResourceRole.origin_system, ResourceRole.origin_id)
        )
        for subject, system, role, count, latest, never in rows:
            counts[(subject, system, role)] = (int(count), latest, bool(never))
    return counts


def _recount(
    ctx: Ctx,
    subjects: list[str],
    wanted: dict[Key, RoleRef],
    grants: dict[Key, _Grant],
    result: Chunk,
) -> set[str]:
    """``delivery.recompute`` and ``apply(local_only=True)`` for the chunk's (subject, role)
    rows; returns the subjects left with a pending grant (each needs a sync job)."""
    live = _live_holders(ctx, subjects)
    revoked: list[_Grant] = []
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
    builtin: list[_Grant] = []
    for g in revoked:
        try:
            connector = connector_for(g.origin_system)
        except ConnectorError as e:
            _failed(g, str(e))
            continue
        if isinstance(connector, BuiltinConnector):
            builtin.append(g)
        elif connector.local:
            g.outcome = "orm"
    _revoke_builtin(ctx.session, builtin)
    _write_grants(ctx, list(grants.values()))
    pending = _apply_with_orm(ctx, [g for g in grants.values() if g.outcome == "orm"])
    result.revoked = len(revoked)
    result.pending_remote = sum(1 for g in revoked if g.pending)
    return pending | {g.subject_id for g in revoked if g.outcome == "pending"}


def _failed(g: _Grant, error: str) -> None:
    """``delivery._failed`` for a permanent error."""
    g.attempts += 1
    g.last_error = error[:500]
    g.applied_generation, g.applied_state = g.generation, "failed"
    g.outcome = "failed"


_EDGES: dict[str, tuple[Any, Any, Any]] = {
    "member": (GroupMember.__table__, GroupMember.group_id, GroupMember.member_id),
    "owner": (GroupOwner.__table__, GroupOwner.group_id, GroupOwner.user_id),
    "app": (
        AppRoleAssignment.__table__,
        AppRoleAssignment.app_role_id,
        AppRoleAssignment.principal_id,
    ),
    "site": (SiteRoleMember.__table__, SiteRoleMember.site_role_id, SiteRoleMember.user_id),
}


def _revoke_builtin(session: Session, revoked: list[_Grant]) -> None:
    """``BuiltinConnector.revoke`` for many rows: one DELETE by primary key per directory table,
    executed for many rows (on SQLite far cheaper than one DELETE with a list of pairs, which
    would scan the table)."""
    if not revoked:
        return
    groups = _existing(
        session, Group.id, {g.resource_origin_id for g in revoked if g.origin_system == "AadGroup"}
    )
    sites = _existing(
        session,
        SiteRole.id,
        {g.role_origin_id for g in revoked if g.origin_system == "SharePointOnline"},
    )
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for g in revoked:
        if g.origin_system == "AadGroup":
            if g.resource_origin_id not in groups:
                _failed(g, f"group {g.resource_origin_id} no longer exists")
                continue
            kind = "owner" if g.role_origin_id.startswith("Owner_") else "member"
            edges[kind].add((g.resource_origin_id, g.subject_id))
        elif g.origin_system == "AadApplication":
            edges["app"].add((g.role_origin_id, g.subject_id))
        elif g.origin_system == "SharePointOnline":
            if g.role_origin_id not in sites:
                _failed(g, f"site role {g.role_origin_id} no longer exists")
                continue
            edges["site"].add((g.role_origin_id, g.subject_id))
        else:
            _failed(g, f"no connector for {g.origin_system}")
            continue
        g.applied_generation, g.applied_state = g.generation, "revoked"
        g.outcome = "revoked"
    conn = session.connection()
    for kind, pairs in edges.items():
        table, role_column, subject_column = _EDGES[kind]
        stmt = delete(table).where(
            role_column == bindparam("e_role"), subject_column == bindparam("e_subject")
        )
        # Straight to the driver's executemany: the values are plain strings, and SQLAlchemy's
        # handling of each row's parameters costs more than SQLite takes to delete the row.
        compiled = stmt.compile(dialect=conn.dialect)
        rows = [{"e_role": role, "e_subject": subject} for role, subject in sorted(pairs)]
        order = compiled.positiontup or []
        params = [tuple(r[k] for k in order) for r in rows] if compiled.positional else rows
        conn.exec_driver_sql(compiled.string, params)


def _existing(session: Session, column: Any, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    return set(session.execute(select(column).where(column.in_(ids))).scalars())


def _write_grants(ctx: Ctx, rows: list[_Grant]) -> None:
    """Write the recounted rows back: set-based for the usual outcomes, row by row for the
    rest. A row whose desire did not change keeps its ``updated_at``, as the ORM leaves it."""
    by_outcome: dict[str, list[_Grant]] = defaultdict(list)
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
        for part in _slices([g.id for g in by_outcome[outcome]]):
            ctx.session.execute(update(G).where(_among(ctx.session, G.c.id, part)).values(**values))
    counted: dict[int, list[str]] = defaultdict(list)
    for g in by_outcome["counted"]:
        counted[g.holders].append(g.id)
    for holders, ids in counted.items():
        for part in _slices(ids):
            ctx.session.execute(
                update(G).where(_among(ctx.session, G.c.id, part)).values(holders=holders)
            )
    if by_outcome["failed"]:
        fields = ["holders", "desired", "valid_until", "generation", "applied_generation"]
        fields += ["applied_state", "attempts", "last_error"]
        ctx.session.execute(
            update(G)
            .where(G.c.id == bindparam("g_id"))
            .values({f: bindparam(f"g_{f}") for f in fields} | {"updated_at": ctx.now}),
            [
                {"g_id": g.id} | {f"g_{f}": getattr(g, f) for f in fields}
                for g in by_outcome["failed"]
            ],
        )


def _apply_with_orm(ctx: Ctx, rows: list[_Grant]) -> set[str]:
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


# ---------------------------------------------------------------------------- records


def _requests(
    ctx: Ctx, ended: list[Ended], roles: dict[str, list[RoleRef]], grants: dict[Key, _Grant]
) -> dict[str, str]:
    """The ``systemRemove`` record of each assignment, fulfilled unless a revocation waits;
    returns their ids by assignment."""
    waiting = {
        a.id
        for a in ended
        if any(
            (g := grants.get((a.target_id, r.origin_system, r.role_origin_id))) is not None
            and g.pending
            for r in roles[a.package_id]
        )
    }
    now = literal(ctx.now, R.c.created_at.type)
    uuid = literal_column(_UUID[_dialect(ctx.session)], String)
    columns = ["id", "request_type", "state", "status", "access_package_id", "catalog_id"]
    columns += ["policy_id", "assignment_id", "target_id", "answers", "schedule", "created_at"]
    columns += ["completed_at", "version"]
    found: dict[str, str] = {}
    for done, ids in ((False, waiting), (True, {a.id for a in ended} - waiting)):
        for part in _slices(sorted(ids)):
            source = select(
                uuid,
                literal("systemRemove", String),
                literal("delivered" if done else "delivering", String),
                literal("Fulfilled" if done else "Accepted", String),
                A.c.access_package_id,
                A.c.catalog_id,
                A.c.policy_id,
                A.c.id,
                A.c.target_id,
                literal([], R.c.answers.type),
                literal({}, R.c.schedule.type),
                now,
                now if done else null(),
                literal(1, Integer),
            ).where(_among(ctx.session, A.c.id, part))
            stmt = insert(R).from_select(columns, source).returning(R.c.id, R.c.assignment_id)
            found.update({assignment: rid for rid, assignment in ctx.session.execute(stmt)})
    return found


def _audit(
    ctx: Ctx, ended: list[Ended], names: dict[str, str], request_ids: dict[str, str]
) -> None:
    """One "Remove access package assignment" per assignment, as ``assignments.end`` writes it
    (``Ctx.audit``: appended to the chain, all at once, when the transaction commits)."""
    for a in ended:
        ctx.audit(
            "Remove access package assignment",
            operation_type="Delete",
            target_type=TARGET,
            target_id=a.id,
            target_name=names.get(a.package_id, a.package_id),
            catalog_id=a.catalog_id,
            subject_id=a.target_id,
            details={"reason": REASON, "requestId": request_ids[a.id]},
        )


def _finish_other_removals(
    ctx: Ctx, subjects: list[str], grants: dict[Key, _Grant], mine: set[str]
) -> None:
    """``assignments._finish_removals`` for removal requests of the subjects made before."""
    waiting: list[tuple[str, str, str | None]] = []
    for part in _slices(subjects):
        rows = ctx.session.execute(
            select(R.c.id, R.c.target_id, R.c.assignment_id).where(
                _among(ctx.session, R.c.target_id, part),
                R.c.state == "delivering",
                R.c.request_type.in_(REMOVE_TYPES),
            )
        )
        waiting += [(rid, target, a) for rid, target, a in rows if rid not in mine]
    if not waiting:
        return
    packages: dict[str, str] = dict(
        ctx.session.execute(
            select(A.c.id, A.c.access_package_id).where(A.c.id.in_({a for _, _, a in waiting if a}))
        ).all()
    )
    roles = delivery.package_roles(ctx.session, set(packages.values()))
    done = [
        rid
        for rid, target, assignment in waiting
        if not any(
            (g := grants.get((target, r.origin_system, r.role_origin_id))) is not None and g.pending
            for r in roles.get(packages.get(assignment or "", ""), [])
        )
    ]
    if done:
        ctx.session.execute(
            update(R)
            .where(R.c.id.in_(done))
            .values(state="delivered", status="Fulfilled", completed_at=ctx.now)
        )


def _notify(ctx: Ctx, ended: list[Ended], names: dict[str, str]) -> int:
    """``notices.access_ended`` for each assignment: the email jobs in ``INSERT … SELECT``s,
    policies with custom extensions one by one."""
    policies: dict[str, tuple[bool, bool]] = {}
    policy_ids = {a.policy_id for a in ended if a.policy_id}
    if policy_ids:
        for pid, notification, extensions in ctx.session.execute(
            select(
                AssignmentPolicy.id,
                AssignmentPolicy.notification_settings,
                AssignmentPolicy.custom_extension_stage_settings,
            ).where(AssignmentPolicy.id.in_(policy_ids))
        ):
            muted = bool((notification or {}).get("isAssignmentNotificationDisabled"))
            policies[pid] = (muted, bool(extensions))
    mailed: list[str] = []
    for a in ended:
        muted, extended = policies.get(a.policy_id or "", (False, False))
        if extended:
            notices.access_ended(ctx, _as_assignment(a), names[a.package_id], REASON)
        elif not muted:
            mailed.append(a.id)
    dialect = _dialect(ctx.session)
    obj = _JSON_OBJECT[dialect]
    payload = obj(
        text("template"), text("access_ended"),
        text("user_id"), A.c.target_id,
        text("data"), obj(
            text("package"), PACKAGES.c.display_name,
            text("reason"), text(REASON),
            text("assignment_id"), A.c.id,
        ),
        text("message_id"), literal_column(_UUID[dialect], String),
        text("queued_at"), text(ctx.now.isoformat()),
    )  # fmt: skip
    now = literal(ctx.now, JOBS.c.created_at.type)
    columns = ["kind", "payload", "status", "run_after", "attempts", "max_attempts"]
    columns += ["created_at", "updated_at"]
    for part in _slices(mailed):
        source = (
            select(
                literal(email.EMAIL_JOB, String),
                payload,
                literal("queued", String),
                now,
                literal(0, Integer),
                literal(email.EMAIL_ATTEMPTS, Integer),
                now,
                now,
            )
            .select_from(A.join(PACKAGES, PACKAGES.c.id == A.c.access_package_id))
            .where(_among(ctx.session, A.c.id, part))
        )
        ctx.session.execute(insert(JOBS).from_select(columns, source))
    return len(mailed)


def text(value: str) -> ColumnElement[str]:
    """A string parameter whose type the database knows (PostgreSQL's JSON functions ask)."""
    return sa.cast(literal(value, String), String)


def _as_assignment(a: Ended) -> Assignment:
    """A transient copy for ``notices`` (never added to the session)."""
    return Assignment(
        id=a.id,
        access_package_id=a.package_id,
        catalog_id=a.catalog_id,
        policy_id=a.policy_id,
        target_id=a.target_id,
        expires_at=a.expires_at,
    )


def _guests(ctx: Ctx, subjects: list[str]) -> None:
    """``notices.after_last_assignment`` for the governed guests among the subjects."""
    for part in _slices(subjects):
        guests = ctx.session.execute(
            select(User.id)
            .where(
                _among(ctx.session, User.id, part),
                User.user_type == "Guest",
                User.subject_lifecycle == "governed",
                User.blocked_at.is_(None),
            )
            .order_by(User.id)
        ).scalars()
        for user_id in list(guests):
            notices.after_last_assignment(ctx, user_id)
