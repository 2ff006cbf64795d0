"""The worker: claims due jobs by lease, runs their handlers, retries, gives up, schedules.

A job's life (docs/decisions/0011):

- **claim** — one short write transaction marks up to ``worker_batch`` due jobs ``running``
  with this worker's lease and counts the attempt. Due is queued with ``run_after <= now``, or
  running with a lease that ran out (its worker died). PostgreSQL claims with
  ``FOR UPDATE SKIP LOCKED``, so any number of ``remit worker`` processes share the queue; on
  SQLite the write transaction (``BEGIN IMMEDIATE``) is the one writer.
- **run** — the handler runs in a write transaction of its own, which first locks the job row
  if the lease is still ours (so on PostgreSQL a long job is not taken over while its worker
  lives), and in the end finishes the job in the same transaction: deleted on success. If the
  lease is gone by then, everything the handler did is rolled back; the other worker's run
  counts. An ``io`` kind (email, webhooks) is the exception: its handler only reads, outside
  any write transaction (a slow peer never holds SQLite's write lock), and its row is finished
  right after the call in a short transaction of its own. That is at least once: a crash
  between the call and that commit repeats the call. A ``stepwise`` kind (delivery to remote
  targets) opens its own short write transactions (``Steps.write``, each checking the lease
  as above) and calls the network between them; its row is finished in a transaction of its
  own once the handler returns.
- **retry** — ``RetryLater`` commits the handler's work and queues the job again after its
  delay; that attempt does not count towards ``max_attempts`` (a job may wait on something as
  long as its handler thinks fit). Any other exception rolls the work back and queues the job
  again after an exponential backoff with jitter (up to an hour), recording a one-line error.
  After the last attempt (the smaller of the job row's and the kind's ``max_attempts``) the
  job is ``failed`` and the kind's ``on_give_up`` runs. ``remit jobs retry`` queues it again.
- **periodic** — each kind registered with ``@periodic`` has exactly one row, with the dedupe
  key ``periodic:{name}``, which it keeps while running. The scheduler step inserts the row
  when it is missing (due at once); a successful run re-arms the same row for the next slot
  (a multiple of ``every`` since the Unix epoch) instead of deleting it. So there is never more
  than one per kind, whatever the number of workers or their clocks. A periodic job that gives
  up stays visible as failed, and a fresh row is armed for the next slot.
"""

from __future__ import annotations

import copy
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, Delete, Update, and_, bindparam, case, null, select
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from remit.authz.actor import system_actor
from remit.clock import Clock, utcnow
from remit.context import Ctx
from remit.db import Database
from remit.errors import Busy
from remit.faults import crash_point
from remit.jobs import handlers
from remit.jobs.queue import enqueue
from remit.jobs.registry import REGISTRY, Handler, JobKind, RetryLater, StepHandler
from remit.models.jobs import Job
from remit.models.vocabulary import JobStatus
from remit.settings import Settings

PERIODIC_PREFIX = "periodic:"
MAX_BACKOFF_SECONDS = 3600.0
_ERROR_CHARS = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def periodic_key(name: str) -> str:
    """The dedupe key held by the one row of a periodic kind."""
    return PERIODIC_PREFIX + name


def next_slot(now: datetime, every: timedelta) -> datetime:
    """The first multiple of ``every`` since the Unix epoch that is later than ``now``."""
    return _EPOCH + ((now - _EPOCH) // every + 1) * every


def default_worker_id() -> str:
    """Host, process and a random suffix: unique among live workers, readable in ``jobs list``."""
    return f"{socket.gethostname()[:50]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ClaimedJob:
    """A job as claimed: ``attempts`` already counts the attempt about to run."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    dedupe_key: str | None


# A claimed job's row while this worker's lease on it holds (parameters: ``Worker._mine``). Built
# once: building the clause costs more than SQLite takes to run the statement.
_MINE = and_(
    Job.id == bindparam("job_id"),
    Job.lease_owner == bindparam("owner"),
    Job.status == JobStatus.RUNNING,
)
_LOCK = select(Job.id).where(_MINE).with_for_update()
_FINISH = sql_delete(Job).where(_MINE)


class _LeaseLost(Exception):
    """Another worker holds the job now; what this one did must not count."""


# Userinfo and query strings of URLs (webhook signatures, tokens), and "password=…"-like pairs.
_URL_SECRETS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?:[^\s/@]*@)?(?P<rest>[^\s?#]*)\S*")
_PAIR_SECRETS = re.compile(
    r"(?i)\b(?P<name>password|passwd|pwd|secret|token|api[_-]?key|authorization|signature)"
    r"(?P<sep>[\"']?\s*[=:]\s*)\S+"
)


class Worker:
    """One worker loop. Several may share a ``Database`` (threads) or a queue (processes)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        handlers.load_all()
        self.db = db
        self.clock = clock
        self.worker_id = (worker_id or default_worker_id())[:80]
        self.batch = settings.worker_batch
        self.lease = timedelta(seconds=settings.worker_lease_seconds)
        self.poll_seconds = settings.worker_poll_seconds
        # Values that must never reach last_error or the logs, whatever an exception says.
        self._secrets = tuple(s for s in (settings.smtp_password,) if s)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._actor = system_actor("worker")
        self._log = structlog.get_logger("remit.jobs").bind(worker=self.worker_id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ loop

    def run_once(self, limit: int | None = None) -> int:
        """Schedule periodic kinds, claim one batch and run it; the number of jobs run."""
        self.schedule()
        return self.run(self.claim(limit))

    def drain(self, max_rounds: int = 100) -> int:
        """Run batches until nothing is due (by this worker's clock); the number of jobs run."""
        total = 0
        for _ in range(max_rounds):
            ran = self.run_once()
            if ran == 0:
                break
            total += ran
        return total

    def run_forever(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set, waiting ``worker_poll_seconds`` whenever the queue is idle.

        A job in progress finishes; claimed jobs not started yet are handed back to the queue.
        """
        failures = 0
        while not stop.is_set():
            try:
                self.schedule()
                claimed = self.claim()
                self.run(claimed, stop)
                failures = 0
            except Exception as exc:  # the database went away, most likely: wait and try again
                failures += 1
                self._log.error("worker loop failed", error=self.describe(exc))
                stop.wait(min(self.poll_seconds * 2**failures, 60.0))
                continue
            if len(claimed) < self.batch:
                stop.wait(self.poll_seconds)

    def start_thread(self) -> threading.Thread:
        """Run ``run_forever`` in a daemon thread until ``stop()``."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("this worker is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run_forever,
            args=(self._stop,),
            name=f"remit-worker-{self.worker_id}",
            daemon=True,
        )
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread started by ``start_thread``, after the job in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ------------------------------------------------------------------ scheduling

    def schedule(self) -> int:
        """Insert the row of every periodic kind that has none; the number found missing.

        One indexed read when nothing is missing, which is every call but the first.
        """
        kinds = {periodic_key(k.name): k for k in REGISTRY.values() if k.every is not None}
        if not kinds:
            return 0
        with self.db.read() as conn:
            present = set(
                conn.execute(select(Job.dedupe_key).where(Job.dedupe_key.in_(kinds))).scalars()
            )
        missing = [(key, kind) for key, kind in kinds.items() if key not in present]
        if missing:
            with self.db.write() as session:
                now = self.clock()
                for key, kind in missing:
                    # Another worker may insert it first: the dedupe key makes this a no-op then.
                    enqueue(
                        session,
                        kind.name,
                        {},
                        now=now,
                        dedupe_key=key,
                        max_attempts=kind.max_attempts,
                    )
        return len(missing)

    # ------------------------------------------------------------------ claiming

    def claim(self, limit: int | None = None) -> list[ClaimedJob]:
        """Lease up to ``limit`` (default ``worker_batch``) due jobs to this worker."""
        limit = limit or self.batch
        with self.db.write() as session:
            now = self.clock()
            # Two index range scans, not one OR: with an OR the database reads and sorts every
            # due job to return the first few, which costs memory in the length of the queue.
            # SQLite renders no FOR UPDATE: its write transaction already excludes other writers.
            queued = session.execute(
                select(Job.run_after, Job.id)
                .where(Job.status == JobStatus.QUEUED, Job.run_after <= now)
                .order_by(Job.run_after, Job.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            abandoned = session.execute(
                select(Job.run_after, Job.id)
                .where(Job.status == JobStatus.RUNNING, Job.lease_until < now)
                .order_by(Job.run_after, Job.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            ids = [job_id for _, job_id in sorted([*queued, *abandoned])[:limit]]
            if not ids:
                return []
            _changed(
                session,
                sql_update(Job)
                .where(Job.id.in_(ids))
                .values(
                    status=JobStatus.RUNNING,
                    lease_owner=self.worker_id,
                    lease_until=now + self.lease,
                    attempts=Job.attempts + 1,
                    # Claimed, a job no longer absorbs new work; a periodic row keeps its key.
                    dedupe_key=case(
                        (Job.dedupe_key.startswith(PERIODIC_PREFIX), Job.dedupe_key),
                        else_=null(),
                    ),
                    updated_at=now,
                ),
            )
            rows = session.execute(
                select(
                    Job.id,
                    Job.kind,
                    Job.payload,
                    Job.attempts,
                    Job.max_attempts,
                    Job.dedupe_key,
                )
                .where(Job.id.in_(ids))
                .order_by(Job.run_after, Job.id)
            ).all()
        crash_point("job.after_claim")
        return [ClaimedJob(*row) for row in rows]

    # ------------------------------------------------------------------ running

    def run(self, claimed: Sequence[ClaimedJob], stop: threading.Event | None = None) -> int:
        """Run claimed jobs in order; the number run (jobs whose lease was lost do not count).

        If ``stop`` is set, the jobs not started yet go back to the queue.
        """
        ran = 0
        with ExitStack() as shared:
            entered: set[str] = set()
            for i, claimed_job in enumerate(claimed):
                if stop is not None and stop.is_set():
                    self._release(claimed[i:])
                    break
                kind = REGISTRY.get(claimed_job.kind)
                if kind is not None and kind.batch is not None and kind.name not in entered:
                    shared.enter_context(kind.batch())  # what this batch's jobs of it share
                    entered.add(kind.name)
                if self._run_one(claimed_job):
                    ran += 1
        return ran

    def _run_one(self, job: ClaimedJob) -> bool:
        kind = REGISTRY.get(job.kind)
        if kind is None:
            self._give_up(job, None, f"unknown job kind {job.kind!r}")
            return True
        limit = min(job.max_attempts, kind.max_attempts)
        if job.attempts > limit:
            # Only a lease that ran out gets here: every failure that raised was counted.
            self._give_up(
                job,
                kind,
                f"gave up after {limit} attempts: the lease ran out "
                "(the worker stopped, or the job takes longer than the lease)",
            )
            return True
        try:
            if kind.steps is not None:
                self._run_steps(job, kind, kind.steps)
            elif kind.handler is not None and kind.io:
                self._run_io(job, kind, kind.handler)
            elif kind.handler is not None:
                with self.db.write() as session:
                    if not self._lock(session, job):
                        raise _LeaseLost
                    ctx = Ctx(session, self._actor, self.clock())
                    try:
                        kind.handler(ctx, copy.deepcopy(job.payload))
                    except RetryLater as later:
                        self._retry_later(session, job, later)
                    else:
                        crash_point("job.before_finish")
                        self._succeed(session, job, kind)
        except _LeaseLost:
            self._log.warning("job lease lost", job_id=job.id, kind=job.kind)
            return False
        except Busy:
            # Too busy to begin a transaction: not the job's failure, and no attempt spent.
            self._log.info("job deferred: the database is busy", job_id=job.id, kind=job.kind)
            self._give_back(job)
            return False
        except Exception as exc:
            self._fail(job, kind, limit, exc)
        return True

    def _run_io(self, job: ClaimedJob, kind: JobKind, handler: Handler) -> None:
        """A handler that talks to the network (SMTP, webhooks) runs outside any write
        transaction, so a slow peer never holds SQLite's one write lock; the job row is finished
        afterwards in a short transaction of its own. At least once: a crash between the call
        and that commit repeats the call (the receiver de-duplicates by delivery id)."""
        with Session(self.db.engine) as session:
            ctx = Ctx(session, self._actor, self.clock())
            try:
                handler(ctx, copy.deepcopy(job.payload))
            except RetryLater as later:
                session.rollback()
                with self.db.write() as done:
                    self._retry_later(done, job, later)
                return
            session.rollback()  # reads only: nothing of the handler's is committed
        with self.db.write() as done:
            self._succeed(done, job, kind)  # conditional on the lease: no lock needed first

    def _run_steps(self, job: ClaimedJob, kind: JobKind, handler: StepHandler) -> None:
        """A handler that opens its own short write transactions (``Steps``) and calls the
        network between them with nothing open; the job row is finished afterwards in a
        transaction of its own. What its transactions committed stays, whatever happens next:
        a lost lease ends the run at its next transaction, an exception retries the job, and
        a crash before the row is finished runs the handler again."""
        try:
            handler(_Steps(self, job), copy.deepcopy(job.payload))
        except RetryLater as later:
            with self.db.write() as done:
                self._retry_later(done, job, later)
            return
        with self.db.write() as done:
            crash_point("job.before_finish")
            self._succeed(done, job, kind)  # conditional on the lease: no lock needed first

    def _mine(self, job: ClaimedJob) -> dict[str, Any]:
        """The parameters of ``_MINE`` for ``job``."""
        return {"job_id": job.id, "owner": self.worker_id}

    def _lock(self, session: Session, job: ClaimedJob) -> bool:
        """Whether the lease is still ours; on PostgreSQL, also hold the row until the end."""
        return session.execute(_LOCK, self._mine(job)).first() is not None

    def _succeed(self, session: Session, job: ClaimedJob, kind: JobKind) -> None:
        now = self.clock()
        if kind.every is not None and job.dedupe_key == periodic_key(kind.name):
            run_after = next_slot(now, kind.every)
            done = self._requeue(session, job, now, run_after, attempts=0, last_error=None)
        else:
            done = _changed(session, _FINISH, self._mine(job))
        if done == 0:
            raise _LeaseLost

    def _requeue(
        self, session: Session, job: ClaimedJob, now: datetime, run_after: datetime, **values: Any
    ) -> int:
        """Put a job this worker still leases back in the queue, due at ``run_after``, with
        ``values`` (attempts, last error) set; 0 if the lease was lost."""
        return self._let_go(
            session, job, now, status=JobStatus.QUEUED, run_after=run_after, **values
        )

    def _let_go(self, session: Session, job: ClaimedJob, now: datetime, **values: Any) -> int:
        """Give up this worker's lease on ``job``, setting ``values`` (its status and what goes
        with it); 0 if the lease was lost already."""
        stmt = sql_update(Job).where(_MINE)
        values = {"lease_owner": None, "lease_until": None, "updated_at": now, **values}
        return _changed(session, stmt.values(**values), self._mine(job))

    def _retry_later(self, session: Session, job: ClaimedJob, later: RetryLater) -> None:
        now = self.clock()
        changed = self._requeue(
            session,
            job,
            now,
            now + max(later.delay, timedelta(0)),
            attempts=Job.attempts - 1,  # waiting is not failing
            last_error=self._clip(f"retry later: {later.reason}"),
        )
        if changed == 0:
            raise _LeaseLost

    def _fail(self, job: ClaimedJob, kind: JobKind, limit: int, exc: Exception) -> None:
        error = self.describe(exc)
        if job.attempts >= limit:
            self._give_up(job, kind, error)
            return
        delay = self.backoff(job.attempts)
        with self.db.write() as session:
            now = self.clock()
            changed = self._requeue(session, job, now, now + delay, last_error=error)
        if changed == 0:
            self._log.warning("job lease lost", job_id=job.id, kind=job.kind)
            return
        self._log.warning(
            "job failed",
            job_id=job.id,
            kind=job.kind,
            attempt=job.attempts,
            max_attempts=limit,
            retry_in_seconds=round(delay.total_seconds(), 1),
            error=error,
        )

    def _give_up(self, job: ClaimedJob, kind: JobKind | None, error: str) -> None:
        """Mark the job failed and run ``on_give_up``, in one transaction of their own."""
        try:
            with self.db.write() as session:
                now = self.clock()
                if not self._mark_failed(session, job, kind, error, now):
                    raise _LeaseLost
                if kind is not None and kind.on_give_up is not None:
                    kind.on_give_up(
                        Ctx(session, self._actor, now), copy.deepcopy(job.payload), error
                    )
        except _LeaseLost:
            self._log.warning("job lease lost", job_id=job.id, kind=job.kind)
            return
        except Exception as exc:
            # The job is failed all the same; the hook's failure is part of its story.
            error = self._clip(f"{error}; on_give_up failed: {self.describe(exc)}")
            with self.db.write() as session:
                self._mark_failed(session, job, kind, error, self.clock())
        self._log.error(
            "job gave up", job_id=job.id, kind=job.kind, attempts=job.attempts, error=error
        )

    def _mark_failed(
        self,
        session: Session,
        job: ClaimedJob,
        kind: JobKind | None,
        error: str,
        now: datetime,
    ) -> bool:
        changed = self._let_go(
            session, job, now, status=JobStatus.FAILED, last_error=error, dedupe_key=None
        )
        every = kind.every if kind is not None else None
        if changed and every is not None and job.dedupe_key == periodic_key(job.kind):
            # The failed row gave its key up: arm a fresh one, at the next slot.
            enqueue(
                session,
                job.kind,
                {},
                now=now,
                run_after=next_slot(now, every),
                dedupe_key=job.dedupe_key,
                max_attempts=job.max_attempts,
            )
        return changed > 0

    def _give_back(self, job: ClaimedJob) -> None:
        """Queue a job that could not begin again, as if never claimed: the worker waits for
        its turn as often as it takes while the lease lasts (past it, the job is claimable
        anyway, and nothing of it ran)."""
        until = time.monotonic() + self.lease.total_seconds()
        while time.monotonic() < until:
            try:
                self._release([job])
                return
            except Busy:
                continue

    def _release(self, jobs: Sequence[ClaimedJob]) -> None:
        """Hand claimed jobs that were not started back to the queue, as if never claimed."""
        now = self.clock()
        with self.db.write() as session:
            _changed(
                session,
                sql_update(Job)
                .where(
                    Job.id.in_([j.id for j in jobs]),
                    Job.lease_owner == self.worker_id,
                    Job.status == JobStatus.RUNNING,
                )
                .values(
                    status=JobStatus.QUEUED,
                    attempts=Job.attempts - 1,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                ),
            )

    # ------------------------------------------------------------------ policy

    def backoff(self, attempts: int) -> timedelta:
        """The wait after failed attempt number ``attempts``: 2^n s (at most an hour), jittered.

        The jitter (between half and all of it) keeps jobs that failed together, say while a
        directory was down, from all coming back in the same second.
        """
        ceiling = min(2.0 ** min(attempts, 32), MAX_BACKOFF_SECONDS)
        return timedelta(seconds=self._rng.uniform(ceiling / 2, ceiling))

    def describe(self, exc: BaseException) -> str:
        """One line for ``last_error`` and the logs: the class and the first line of the message,
        with configured secrets, URL credentials and query strings, and ``password=…`` pairs
        taken out. (SQLAlchemy puts SQL and parameters after the first line.)"""
        lines = str(exc).strip().splitlines()
        message = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        for value in self._secrets:
            message = message.replace(value, "***")
        message = _URL_SECRETS.sub(r"\g<scheme>\g<rest>", message)
        message = _PAIR_SECRETS.sub(r"\g<name>\g<sep>***", message)
        return self._clip(message)

    @staticmethod
    def _clip(message: str) -> str:
        return message if len(message) <= _ERROR_CHARS else message[: _ERROR_CHARS - 1] + "…"


class _Steps:
    """``registry.Steps`` for one run of a stepwise job."""

    def __init__(self, worker: Worker, job: ClaimedJob) -> None:
        self._worker = worker
        self._job = job
        self.lease = worker.lease

    @contextmanager
    def write(self, *, leased: bool = True) -> Iterator[Ctx]:
        with self._worker.db.write() as session:
            if leased and not self._worker._lock(session, self._job):
                raise _LeaseLost
            yield Ctx(session, self._worker._actor, self._worker.clock())

    def now(self) -> datetime:
        return self._worker.clock()


def _changed(session: Session, stmt: Update | Delete, params: dict[str, Any] | None = None) -> int:
    """Run a bulk UPDATE/DELETE; the number of rows it touched."""
    result = session.execute(stmt.execution_options(synchronize_session=False), params)
    return cast("CursorResult[Any]", result).rowcount
