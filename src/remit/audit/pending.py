"""Audit events wait in the session until its transaction commits, then go to the chain at once.

Why: appending locks the chain's head row. Taken in the middle of a transaction, that lock sits
between the domain rows an operation locks before and after it, and two operations that touch
the same rows in another order deadlock through it on PostgreSQL (an approval against a cancel,
an expiry against a removal). Appended last, inside the commit, the head is always the last lock
taken, so it never takes part in a cycle; and the chain's order is the commit order.

Events added inside a savepoint that rolls back are dropped with it; a rolled-back transaction
drops them all. Reading the audit table inside the same transaction does not see them yet.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from remit.audit import chain

_PENDING = "remit.audit.pending"
# Where each open savepoint began in the pending list, to drop what it added if it rolls back.
_MARKS: weakref.WeakKeyDictionary[SessionTransaction, int] = weakref.WeakKeyDictionary()


def add(session: Session, fields: dict[str, Any]) -> None:
    """Queue one event (the keyword arguments of ``chain.append``) for this transaction."""
    session.info.setdefault(_PENDING, []).append(fields)


@event.listens_for(Session, "after_transaction_create")
def _mark(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        _MARKS[transaction] = len(session.info.get(_PENDING, ()))


@event.listens_for(Session, "after_soft_rollback")
def _drop(session: Session, previous: SessionTransaction) -> None:
    pending: list[dict[str, Any]] | None = session.info.get(_PENDING)
    if not pending:
        return
    if previous.nested:
        mark = _MARKS.get(previous)
        if mark is not None:
            del pending[mark:]
    else:
        pending.clear()


@event.listens_for(Session, "before_commit")
def _append(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: its events wait for the outer commit
    pending: list[dict[str, Any]] | None = session.info.pop(_PENDING, None)
    if pending:
        chain.append_many(session, pending)
