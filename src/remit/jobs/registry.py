"""What each kind of job does. Domain packages register their handlers here (``jobs.py`` beside
their domain); the runner only looks them up.

A handler runs in one write transaction with the system actor and must be idempotent: a job may
run twice (a lease that ran out; a crash after the work but before the commit is impossible,
since the job row is finished in the same transaction). An ``io`` handler (one that calls the
network) runs outside any write transaction instead, and its row is finished just after it: a
crash in between repeats the call. It raises ``RetryLater`` to be run again
after a delay with its changes so far committed, or any other exception to have its changes
rolled back and the job retried with backoff, up to ``max_attempts``; then ``on_give_up`` runs
(in a transaction of its own) and the job stays visible as failed.

- ``RetryLater`` does not count against ``max_attempts``: waiting is not failing. A handler that
  may wait for long bounds the wait itself (a deadline in its payload, say).
- A job gives up after the smaller of its kind's ``max_attempts`` and the one given to
  ``enqueue``.
- A periodic handler receives ``{}``. Each periodic kind has one job row, re-armed for the next
  multiple of ``every`` (since the Unix epoch) after each run; the first run is due at once.
- ``batch`` (a context manager factory) is entered before the first job of the kind in a
  claimed batch and left when the batch ends: the email kind sends a batch over one SMTP
  connection that way. Each job is still finished on its own, right after its call. Entering
  and leaving it must not raise (the runner runs it outside any job's error handling): what
  may fail belongs in the handler.
- On SQLite the handler's transaction holds the database's one write lock: keep network calls
  short (a timeout of a few seconds) and never wait for anything else inside a handler.

The runner is ``remit.jobs.runner`` (docs/decisions/0011-job-runner.md).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from remit.context import Ctx

Handler = Callable[[Ctx, dict[str, Any]], None]
GiveUp = Callable[[Ctx, dict[str, Any], str], None]


class RetryLater(Exception):  # a signal, not an error: hence no "Error" in its name
    """Commit what the handler did, and run the job again after ``delay``."""

    def __init__(self, delay: timedelta, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    max_attempts: int = 8
    on_give_up: GiveUp | None = None
    # Periodic kinds are enqueued by every worker's scheduler, at most one queued at a time.
    every: timedelta | None = None
    # Network I/O (email, webhooks): run outside a write transaction; reads only.
    io: bool = False
    # Entered around the jobs of this kind in one claimed batch (from the first to the end of
    # the batch): what they may share, such as one SMTP connection.
    batch: Callable[[], AbstractContextManager[object]] | None = None


REGISTRY: dict[str, JobKind] = {}


def job(
    name: str,
    *,
    max_attempts: int = 8,
    on_give_up: GiveUp | None = None,
    io: bool = False,
    batch: Callable[[], AbstractContextManager[object]] | None = None,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in REGISTRY:
            raise ValueError(f"job kind {name!r} is registered twice")
        REGISTRY[name] = JobKind(name, handler, max_attempts, on_give_up, io=io, batch=batch)
        return handler

    return register


def periodic(name: str, *, every: timedelta, max_attempts: int = 3) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in REGISTRY:
            raise ValueError(f"job kind {name!r} is registered twice")
        REGISTRY[name] = JobKind(name, handler, max_attempts, None, every)
        return handler

    return register
