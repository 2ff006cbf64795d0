"""What each kind of job does. Domain packages register their handlers here (``jobs.py`` beside
their domain); the runner only looks them up.

A handler runs in one write transaction with the system actor and must be idempotent: a job may
run twice (a lease that ran out; a crash after the work but before the commit is impossible,
since the job row is finished in the same transaction). It raises ``RetryLater`` to be run
again after a delay with its changes so far committed, or any other exception to have its
changes rolled back and the job retried with backoff, up to ``max_attempts``; then
``on_give_up`` runs (in a transaction of its own) and the job stays visible as failed.

Two other modes, for handlers that call the network (a slow peer must never hold SQLite's one
write lock, nor a PostgreSQL transaction and its row locks):

- ``io`` (email, webhooks): the handler only reads, in a session outside any write
  transaction, and its row is finished just after it: a crash in between repeats the call.
- ``stepwise`` (delivery to remote targets): the handler gets ``Steps`` instead of a ``Ctx``
  and opens short write transactions of its own (``steps.write()``), each committed when its
  block ends, and calls the network between them with nothing open. Each transaction first
  checks (and on PostgreSQL holds) the job's lease, as a plain handler's does; if the lease is
  gone the transaction rolls back and the run ends there, and what earlier transactions did
  stays: each one must leave the data consistent on its own (claim, call, record). The row is
  finished in a transaction of its own after the handler returns: a crash before that runs
  the handler again, so it must find out from the data what is left to do. ``RetryLater`` and
  other exceptions are handled as for any handler, except that the committed steps stay.

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
- On SQLite a plain handler's transaction holds the database's one write lock: never call the
  network or wait for anything inside one (that is what ``io`` and ``stepwise`` are for).

The runner is ``remit.jobs.runner`` (docs/decisions/0011-job-runner.md).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from remit.context import Ctx


class Steps(Protocol):
    """What a ``stepwise`` handler gets instead of one transaction."""

    # How long the job's lease runs: a claim the handler makes on its own rows should not
    # outlast it by much (a worker that died holds its claims until they run out).
    lease: timedelta

    def write(self, *, leased: bool = True) -> AbstractContextManager[Ctx]:
        """A short write transaction, committed when the block ends (rolled back if it
        raises); refused, ending the run, once the job's lease is lost. ``leased=False`` is
        for a step guarded by something of its own, which must land even if another worker
        took the job meanwhile: recording the outcome of a call made on rows this run claimed
        under its own token."""

    def now(self) -> datetime:
        """The worker's clock."""


Handler = Callable[[Ctx, dict[str, Any]], None]
StepHandler = Callable[[Steps, dict[str, Any]], None]
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
    # Run in one write transaction (or, ``io``, in a read session); None for a stepwise kind.
    handler: Handler | None
    max_attempts: int = 8
    on_give_up: GiveUp | None = None
    # Periodic kinds are enqueued by every worker's scheduler, at most one queued at a time.
    every: timedelta | None = None
    # Network I/O (email, webhooks): run outside a write transaction; reads only.
    io: bool = False
    # Entered around the jobs of this kind in one claimed batch (from the first to the end of
    # the batch): what they may share, such as one SMTP connection.
    batch: Callable[[], AbstractContextManager[object]] | None = None
    # A stepwise kind's handler (instead of ``handler``): its own short write transactions.
    steps: StepHandler | None = None

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.steps is None):
            raise ValueError(f"job kind {self.name!r} needs a handler or steps, not both")


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


def stepwise(
    name: str, *, max_attempts: int = 8, on_give_up: GiveUp | None = None
) -> Callable[[StepHandler], StepHandler]:
    """Register a handler that runs its own short write transactions (``Steps``)."""

    def register(handler: StepHandler) -> StepHandler:
        if name in REGISTRY:
            raise ValueError(f"job kind {name!r} is registered twice")
        REGISTRY[name] = JobKind(name, None, max_attempts, on_give_up, steps=handler)
        return handler

    return register


def periodic(name: str, *, every: timedelta, max_attempts: int = 3) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in REGISTRY:
            raise ValueError(f"job kind {name!r} is registered twice")
        REGISTRY[name] = JobKind(name, handler, max_attempts, None, every)
        return handler

    return register
