"""Deleting governed guests whose time has come (spec §7.2).

The sweep runs every five minutes, one chunk per transaction: a full chunk asks to be run again
at once, so a backlog drains without holding SQLite's writer lock for long. A guest given access
again before its date is skipped (``restore_on_new_assignment`` also clears the date). With a
zero delay, ``on_last_assignment_ended`` queues ``external.delete_guest`` for that one guest.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from remit.context import Ctx
from remit.external import guests
from remit.jobs.registry import RetryLater, job, periodic

SWEEP = "external.delete_blocked_guests"
CHUNK = 500


@periodic(SWEEP, every=timedelta(minutes=5))
def delete_blocked_guests(ctx: Ctx, _payload: dict[str, Any]) -> None:
    deleted = guests.delete_due_guests(ctx, limit=CHUNK)
    if deleted == CHUNK:
        raise RetryLater(timedelta(0), f"deleted {CHUNK} guests; more may be due")


@job(guests.DELETE_ONE)
def delete_guest(ctx: Ctx, payload: dict[str, Any]) -> None:
    # Idempotent: a guest already deleted, or given access again, is simply not due.
    guests.delete_due_guests(ctx, limit=1, user_ids=[str(payload.get("userId", ""))])
