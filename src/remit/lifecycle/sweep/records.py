"""The chunk's records: a ``systemRemove`` request and an audit event per assignment, the add
requests of undelivered assignments closed, earlier removals completed."""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import Integer, String, Table, bindparam, insert, literal, select, update
from sqlalchemy.sql.dml import ReturningInsert

from remit.connectors.base import RoleRef
from remit.context import Ctx
from remit.db import among, among_param, dialect, listed
from remit.ids import ordered_head
from remit.lifecycle import delivery
from remit.lifecycle.events import ASSIGNMENT, REQUEST
from remit.lifecycle.kinds import ADD_TYPES, REMOVE_TYPES
from remit.lifecycle.sweep.claim import REASON, Ended
from remit.lifecycle.sweep.grants import Recount
from remit.lifecycle.sweep.sql import uuid
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.vocabulary import Activity, RequestState, RequestType

A = cast(Table, Assignment.__table__)
R = cast(Table, AssignmentRequest.__table__)
_COLUMNS = ["id", "request_type", "state", "status", "access_package_id", "catalog_id"]
_COLUMNS += ["policy_id", "assignment_id", "target_id", "answers", "schedule", "created_at"]
_COLUMNS += ["completed_at", "version"]


def removal_requests(ctx: Ctx, ended: list[Ended], waiting: set[str]) -> dict[str, str]:
    """The ``systemRemove`` record of each assignment (``requests.system_remove_record``), made
    from the assignment rows in ``INSERT … SELECT``s: fulfilled, or accepted and delivering for
    those in ``waiting`` (a revocation waits for a remote connector). Their ids by assignment."""
    session = ctx.session
    stmt = _insert_removals(dialect(session))
    found: dict[str, str] = {}
    for done, ids in ((False, waiting), (True, {a.id for a in ended} - waiting)):
        if not ids:
            continue
        params = {
            "head": ordered_head(),
            "state": RequestState.DELIVERED if done else RequestState.DELIVERING,
            "status": "Fulfilled" if done else "Accepted",
            "now": ctx.now,
            "completed_at": ctx.now if done else None,
            "ids": listed(sorted(ids)),
        }
        found.update({assignment: rid for rid, assignment in session.execute(stmt, params)})
    return found


@functools.cache
def _insert_removals(dialect_name: str) -> ReturningInsert[Any, Any]:
    """Built once per engine (its parameters named), as statement construction would cost a
    chunk more than running it."""
    source = select(
        uuid(dialect_name, bindparam("head", type_=String)),
        literal(RequestType.SYSTEM_REMOVE, String),
        bindparam("state", type_=String),
        bindparam("status", type_=String),
        A.c.access_package_id,
        A.c.catalog_id,
        A.c.policy_id,
        A.c.id,
        A.c.target_id,
        literal([], R.c.answers.type),
        literal({}, R.c.schedule.type),
        bindparam("now", type_=R.c.created_at.type),
        bindparam("completed_at", type_=R.c.completed_at.type),
        literal(1, Integer),
    ).where(among_param(dialect_name, A.c.id, "ids"))
    return insert(R).from_select(_COLUMNS, source).returning(R.c.id, R.c.assignment_id)


def audit_removals(
    ctx: Ctx, ended: list[Ended], names: dict[str, str], request_ids: dict[str, str]
) -> None:
    """One "Remove access package assignment" per assignment, as ``assignments.end`` writes it
    (``Ctx.audit``: appended to the chain, all at once, when the transaction commits)."""
    for a in ended:
        ctx.audit(
            Activity.REMOVE_ASSIGNMENT,
            operation_type="Delete",
            target_type=ASSIGNMENT,
            target_id=a.id,
            target_name=names.get(a.package_id, a.package_id),
            catalog_id=a.catalog_id,
            subject_id=a.target_id,
            details={"reason": REASON, "requestId": request_ids[a.id]},
        )


def close_undelivered_adds(ctx: Ctx, ended: list[Ended]) -> None:
    """``assignments._close_undelivered_add``: the add request of an assignment that ends while
    still being delivered is over too (canceled, its open key freed), and audited."""
    session = ctx.session
    ids = {a.request_id for a in ended if a.request_id}
    if not ids:
        return
    adds = session.execute(
        select(R.c.id, R.c.catalog_id, R.c.target_id)
        .where(
            among(session, R.c.id, ids),
            R.c.state == RequestState.DELIVERING,
            R.c.request_type.in_(ADD_TYPES),
        )
        .order_by(R.c.id)
    ).all()
    if not adds:
        return
    session.execute(
        update(R)
        .where(among(session, R.c.id, [rid for rid, _, _ in adds]))
        .values(
            state=RequestState.CANCELED,
            status=f"AssignmentEnded:{REASON}",
            completed_at=ctx.now,
            open_key=None,
        )
    )
    for rid, catalog_id, target_id in adds:
        ctx.audit(
            Activity.CANCEL_REQUEST,
            operation_type="Update",
            target_type=REQUEST,
            target_id=rid,
            catalog_id=catalog_id,
            subject_id=target_id,
            details={"reason": f"the assignment ended before delivery ({REASON})"},
        )


def finish_other_removals(ctx: Ctx, subjects: list[str], recount: Recount, mine: set[str]) -> None:
    """``assignments._finish_removals`` for the subjects' removal requests made before this
    chunk (``mine`` are its own): each completes once none of its package's roles waits."""
    session = ctx.session
    rows = session.execute(
        select(R.c.id, R.c.target_id, R.c.assignment_id).where(
            among(session, R.c.target_id, subjects),
            R.c.state == RequestState.DELIVERING,
            R.c.request_type.in_(REMOVE_TYPES),
        )
    )
    waiting = [(rid, target, a) for rid, target, a in rows if rid not in mine]
    if not waiting:
        return
    packages: dict[str, str] = dict(
        session.execute(
            select(A.c.id, A.c.access_package_id).where(A.c.id.in_({a for _, _, a in waiting if a}))
        ).all()
    )
    roles: dict[str, list[RoleRef]] = delivery.package_roles(session, set(packages.values()))
    done = [
        rid
        for rid, target, assignment in waiting
        if not recount.waiting(target, roles.get(packages.get(assignment or "", ""), []))
    ]
    if done:
        session.execute(
            update(R)
            .where(R.c.id.in_(done))
            .values(state=RequestState.DELIVERED, status="Fulfilled", completed_at=ctx.now)
        )
