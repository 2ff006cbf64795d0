"""Putting work on the queue, inside the caller's transaction (the transactional outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from remit.db import insert_or_ignore
from remit.faults import crash_point
from remit.models.jobs import Job
from remit.models.vocabulary import JobStatus

_INSERT = insert(cast(Table, Job.__table__))


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    run_after: datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 8,
) -> None:
    """Queue a job, committed or rolled back with the change that needs it.

    With ``dedupe_key``, nothing is added while a job with that key is still queued (not yet
    claimed): one queued "sync this subject" covers every change made before it runs.
    """
    values = {
        "kind": kind,
        "payload": payload,
        "status": JobStatus.QUEUED,
        "run_after": run_after or now,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": now,
        "updated_at": now,
        "dedupe_key": dedupe_key,
    }
    if dedupe_key is None:
        # Past the ORM's bulk insert (a job row relates to nothing the session holds).
        session.connection().execute(_INSERT, values)
    else:
        insert_or_ignore(session, Job, [values], ["dedupe_key"])
    crash_point("job.after_enqueue")
