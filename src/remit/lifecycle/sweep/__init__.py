"""The expiry sweep: a chunk of due assignments ends in a fixed number of statements.

The periodic job ``lifecycle.expiry_sweep`` (``lifecycle.jobs``) runs ``expire_chunk`` once per
run, in the job's transaction, and asks to run again at once while a full chunk was due. A chunk
leaves the same end state and records as ending each of its assignments through
``assignments.end``, in about fifteen statements instead of a few dozen per assignment:

1. ``claim`` — the oldest due assignments (up to ``limit``, from the partial index of active
   assignments by end) are ended by one conditional ``UPDATE … RETURNING``; on PostgreSQL their
   subjects' locks (``locks.lock_subjects``) are taken first, in one statement, and one that a
   removal ended meanwhile is skipped. ``expired_at`` is the instant access ended,
   ``expires_at``, which is also what the API showed once that instant had passed;
2. ``grants`` — the subjects' grant rows are recounted at once (read by ``grant_rows``): a
   role stays while another active, unexpired assignment of the subject needs it; revocations
   of local targets are applied by their connector's ``revoke_many``, one call per target (the
   builtin one: one DELETE per directory table), remote ones wait for a
   ``lifecycle.sync_subject`` job of the subject;
3. ``records`` — one ``systemRemove`` request per assignment (``INSERT … SELECT``), fulfilled
   unless a remote revocation waits, and one "Remove access package assignment" audit event
   each (appended with the rest at commit, ``audit.pending``); the add request of an assignment
   that ends undelivered is canceled (and audited); earlier removal requests of the subjects that
   nothing waits for any more complete;
4. ``notify`` — one "access ended" email job per assignment (``INSERT … SELECT``) unless its
   policy mutes notifications; policies with custom extensions go through
   ``notices.access_ended``, and governed guests who lost their last assignment through
   ``notices.after_last_assignment``.

One difference from the per-assignment path, on purpose: a subject with two due assignments that
share a role. Ended one by one, the first end revokes the role and re-derives the states of the
subject's other active assignments, which puts the second (and its fulfilled add request) back to
"delivering"; the add request stays so after the second ends. Here both end together and their
add requests stay fulfilled.

``CHUNK`` keeps SQLite's one write lock short. ``sweep`` runs chunks in transactions of their
own until none is due (the job does the same, a run per chunk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from remit.authz.actor import Actor, system_actor
from remit.context import Ctx
from remit.db import Database, dialect
from remit.faults import crash_point
from remit.lifecycle import delivery
from remit.lifecycle.sweep import grants, notify, records
from remit.lifecycle.sweep.claim import claim
from remit.models.packages import AccessPackage

# Assignments per chunk (one transaction). SQLite holds its one write lock for a chunk: keep it
# to tens of milliseconds (400: ~36 ms p50 in the P5 bench at N=100,000; decision 0017).
# PostgreSQL locks only the chunk's rows and subjects.
CHUNK = {"sqlite": 400, "postgresql": 1000}


@dataclass
class Chunk:
    """What one call did: how many due assignments it chose (``due``; fewer than its limit: no
    more are due) and ended (fewer, if a removal got to some first), roles revoked (and of
    those, how many wait for a remote connector), email jobs queued."""

    due: int = 0
    ended: int = 0
    revoked: int = 0
    pending_remote: int = 0
    emails: int = 0


def chunk_size(dialect_name: str) -> int:
    return CHUNK.get(dialect_name, CHUNK["sqlite"])


def expire_chunk(ctx: Ctx, *, limit: int | None = None) -> Chunk:
    """End up to ``limit`` (default: a chunk) due assignments, in the caller's transaction."""
    session = ctx.session
    session.flush()
    due, ended = claim(ctx, limit or chunk_size(dialect(session)))
    if not ended:
        return Chunk(due)
    crash_point("expiry.after_transition")
    package_ids = {a.package_id for a in ended}
    names: dict[str, str] = dict(
        session.execute(
            select(AccessPackage.id, AccessPackage.display_name).where(
                AccessPackage.id.in_(package_ids)
            )
        ).all()
    )
    roles = delivery.package_roles(session, package_ids)
    subjects = sorted({a.target_id for a in ended})
    wanted = {
        (a.target_id, r.origin_system, r.role_origin_id): r
        for a in ended
        for r in roles[a.package_id]
    }
    recount = grants.recount(ctx, subjects, wanted)
    crash_point("removal.after_revoke")
    waiting = {a.id for a in ended if recount.waiting(a.target_id, roles[a.package_id])}
    request_ids = records.removal_requests(ctx, ended, waiting)
    records.audit_removals(ctx, ended, names, request_ids)
    records.close_undelivered_adds(ctx, ended)
    records.finish_other_removals(ctx, subjects, recount, set(request_ids.values()))
    for subject in sorted(recount.sync):
        delivery.schedule_sync(ctx, subject)
    emails = notify.access_ended(ctx, ended, names)
    notify.last_assignments(ctx, subjects)
    return Chunk(due, len(ended), recount.revoked, recount.pending_remote, emails)


def sweep(
    db: Database,
    clock: Callable[[], datetime],
    *,
    chunk: int | None = None,
    actor: Actor | None = None,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> int:
    """Expire everything due, a chunk per transaction; the number of assignments ended."""
    who = actor or system_actor("worker")
    size = chunk or chunk_size(db.dialect)
    total = 0
    while True:
        with db.write() as session:
            done = expire_chunk(Ctx(session, who, clock()), limit=size)
        total += done.ended
        if on_chunk is not None:
            on_chunk(done)
        if done.due < size:
            return total
