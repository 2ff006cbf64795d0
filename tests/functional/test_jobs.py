"""The job runner on a real database: leases, retries, give-up, periodic kinds, many workers,
and the ``remit worker`` / ``remit jobs`` commands. Time moves only when a test moves it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from remit.audit.chain import verify
from remit.authz.actor import Actor, system_actor
from remit.context import Ctx
from remit.db import Database, new_id
from remit.errors import Conflict, Forbidden, Invalid, NotFound
from remit.jobs import handlers
from remit.jobs.operations import list_jobs, retry_job
from remit.jobs.queue import enqueue
from remit.jobs.registry import REGISTRY, RetryLater, job, periodic
from remit.jobs.runner import ClaimedJob, Worker, next_slot, periodic_key
from remit.models.audit import AuditEvent
from remit.models.jobs import Job
from remit.settings import Settings
from tests.conftest import SteppingClock

OK = "test.jobs.ok"
BOOM = "test.jobs.boom"
LATER = "test.jobs.later"
STEAL = "test.jobs.steal"
TICK = "test.jobs.tick"
TICK_BOOM = "test.jobs.tick-boom"
CALL = "test.jobs.call"
PEEK = "test.jobs.peek"
RAN = "Test job ran"
GAVE_UP = "Test job gave up"


@dataclass
class Probe:
    """What the test handlers saw, from any thread."""

    calls: Counter[Any] = field(default_factory=Counter)
    gave_up: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    ran: threading.Event = field(default_factory=threading.Event)
    seen: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ctx: Ctx, kind: str, payload: dict[str, Any]) -> None:
        key = (kind, payload.get("n"))
        with self.lock:
            self.calls[key] += 1
        ctx.audit(
            RAN,
            operation_type="Add",
            target_type="TestJob",
            target_id=f"{kind}:{payload.get('n')}",
        )
        self.ran.set()

    def register_periodic(self, name: str, *, fails: bool = False) -> None:
        """A periodic kind every ten minutes (only for the tests about them: others would see
        it run)."""

        @periodic(name, every=timedelta(minutes=10))
        def tick(ctx: Ctx, payload: dict[str, Any]) -> None:
            assert payload == {}
            self.record(ctx, name, payload)
            if fails:
                raise RuntimeError("sweep failed")


@pytest.fixture
def probe() -> Iterator[Probe]:
    """The test kinds, alone in the registry while the test runs (whatever else is imported)."""
    handlers.load_all()  # imported now, so that building a Worker registers nothing later
    saved = dict(REGISTRY)
    REGISTRY.clear()
    p = Probe()

    @job(OK)
    def ok(ctx: Ctx, payload: dict[str, Any]) -> None:
        p.record(ctx, OK, payload)

    def give_up(ctx: Ctx, payload: dict[str, Any], error: str) -> None:
        p.gave_up.append((payload, error))
        ctx.audit(GAVE_UP, operation_type="Update", target_type="TestJob", target_id=error[:100])

    @job(BOOM, max_attempts=3, on_give_up=give_up)
    def boom(ctx: Ctx, payload: dict[str, Any]) -> None:
        p.record(ctx, BOOM, payload)
        raise ValueError(payload.get("message", "boom"))

    @job(LATER)
    def later(ctx: Ctx, payload: dict[str, Any]) -> None:
        p.record(ctx, LATER, payload)
        if p.calls[(LATER, payload.get("n"))] == 1:
            raise RetryLater(timedelta(minutes=5), "waiting for the directory")

    @job(STEAL)
    def steal(ctx: Ctx, payload: dict[str, Any]) -> None:
        p.record(ctx, STEAL, payload)
        # What another worker's claim does once this one's lease has run out.
        ctx.session.execute(update(Job).where(Job.kind == STEAL).values(lease_owner="thief"))

    @job(CALL, io=True)
    def call(ctx: Ctx, payload: dict[str, Any]) -> None:  # a network call: it only reads
        with p.lock:
            p.calls[(CALL, payload.get("n"))] += 1

    @job(PEEK)
    def peek(ctx: Ctx, payload: dict[str, Any]) -> None:
        p.seen.append(sorted(ctx.session.execute(select(Job.kind)).scalars()))

    yield p
    REGISTRY.clear()
    REGISTRY.update(saved)


@pytest.fixture
def make_worker(db: Database, settings: Settings, clock: SteppingClock) -> Callable[..., Worker]:
    def make(name: str = "w1", **overrides: Any) -> Worker:
        return Worker(
            db, settings.model_copy(update=overrides), clock=clock, worker_id=f"test-{name}"
        )

    return make


def put(db: Database, clock: SteppingClock, kind: str, payload: dict[str, Any], **kw: Any) -> None:
    with db.write() as session:
        enqueue(session, kind, payload, now=clock(), **kw)


def rows(db: Database) -> list[Job]:
    with db.write() as session:
        return list(session.execute(select(Job).order_by(Job.id)).scalars())


def the_job(db: Database) -> Job:
    (found,) = rows(db)
    return found


def by_id(db: Database, job_id: int) -> Job:
    return next(j for j in rows(db) if j.id == job_id)


def audited(db: Database, activity: str = RAN) -> list[str]:
    with db.read() as conn:
        return list(
            conn.execute(
                select(AuditEvent.target_id).where(AuditEvent.activity == activity)
            ).scalars()
        )


# ---------------------------------------------------------------- running and finishing


def test_success_deletes_the_job_and_runs_as_the_worker(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    put(db, clock, OK, {"n": 1})
    put(db, clock, OK, {"n": 2}, run_after=clock() + timedelta(hours=1))

    assert worker.run_once() == 1
    assert probe.calls == {(OK, 1): 1}
    assert [j.payload for j in rows(db)] == [{"n": 2}]  # the one not due yet
    with db.read() as conn:
        actor = conn.execute(select(AuditEvent.actor_name).where(AuditEvent.activity == RAN))
        assert actor.scalar_one() == "worker"

    clock.advance(hours=1)
    assert worker.drain() == 1
    assert rows(db) == []
    assert sorted(audited(db)) == [f"{OK}:1", f"{OK}:2"]
    with db.read() as conn:
        assert verify(conn).ok


def test_failure_backs_off_then_fails_and_gives_up(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(smtp_password="s3cr3t-smtp")
    message = (
        "could not post to https://user:pw@hooks.example/x?sig=abc as smtp s3cr3t-smtp "
        "(password=hunter2)\nsecond line [parameters: secret]"
    )
    put(db, clock, BOOM, {"n": 1, "message": message})

    assert worker.run_once() == 1
    failed_once = the_job(db)
    assert failed_once.status == "queued"
    assert failed_once.attempts == 1
    assert failed_once.lease_owner is None
    assert clock() + timedelta(seconds=1) <= failed_once.run_after <= clock() + timedelta(seconds=2)
    error = failed_once.last_error or ""
    assert error.startswith("ValueError: could not post to https://hooks.example/x")
    for secret in ("pw@", "sig=abc", "s3cr3t-smtp", "hunter2", "second line", "\n"):
        assert secret not in error
    assert audited(db) == []  # the handler's work was rolled back

    assert worker.run_once() == 0  # backing off
    clock.advance(hours=1)
    assert worker.run_once() == 1
    failed_twice = the_job(db)
    assert (failed_twice.status, failed_twice.attempts) == ("queued", 2)
    assert (
        clock() + timedelta(seconds=2) <= failed_twice.run_after <= clock() + timedelta(seconds=4)
    )
    assert probe.gave_up == []

    clock.advance(hours=1)
    assert worker.run_once() == 1  # the third and last attempt (the kind's max_attempts)
    failed = the_job(db)
    assert (failed.status, failed.attempts, failed.lease_owner) == ("failed", 3, None)
    assert probe.gave_up == [({"n": 1, "message": message}, failed.last_error)]
    assert len(audited(db, GAVE_UP)) == 1  # on_give_up's work is committed
    assert audited(db) == []

    clock.advance(hours=1)
    assert worker.run_once() == 0  # failed jobs stay put
    assert probe.calls == {(BOOM, 1): 3}


def test_backoff_doubles_up_to_an_hour_with_jitter(make_worker: Callable[..., Worker]) -> None:
    worker = make_worker()
    for attempts, ceiling in ((1, 2), (5, 32), (11, 2048), (12, 3600), (40, 3600)):
        for _ in range(20):
            assert ceiling / 2 <= worker.backoff(attempts).total_seconds() <= ceiling


def test_retry_later_keeps_the_work_and_does_not_count_as_an_attempt(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    put(db, clock, LATER, {"n": 1}, max_attempts=1)

    assert worker.run_once() == 1
    waiting = the_job(db)
    assert (waiting.status, waiting.attempts, waiting.lease_owner) == ("queued", 0, None)
    assert waiting.run_after == clock() + timedelta(minutes=5)
    assert waiting.last_error == "retry later: waiting for the directory"
    assert audited(db) == [f"{LATER}:1"]  # committed

    clock.advance(minutes=4)
    assert worker.run_once() == 0
    clock.advance(minutes=1)
    assert worker.run_once() == 1  # max_attempts=1 and yet it ran a second time
    assert rows(db) == []
    assert audited(db) == [f"{LATER}:1", f"{LATER}:1"]


def test_an_unknown_kind_fails_visibly(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    put(db, clock, "test.jobs.nobody-handles-this", {"n": 1})
    assert make_worker().run_once() == 1
    failed = the_job(db)
    assert failed.status == "failed"
    assert failed.last_error == "unknown job kind 'test.jobs.nobody-handles-this'"


# ---------------------------------------------------------------- leases


def test_an_expired_lease_lets_another_worker_take_over(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    first = make_worker("a", worker_lease_seconds=30)
    second = make_worker("b", worker_lease_seconds=30)
    put(db, clock, OK, {"n": 7})

    claimed = first.claim()
    assert [c.payload for c in claimed] == [{"n": 7}]
    leased = the_job(db)
    assert (leased.status, leased.lease_owner, leased.attempts) == ("running", "test-a", 1)
    assert leased.lease_until == clock() + timedelta(seconds=30)
    assert second.run_once() == 0  # the lease holds

    clock.advance(seconds=31)  # the first worker is presumed dead
    assert second.run_once() == 1
    assert rows(db) == []

    assert first.run(claimed) == 0  # the first worker comes back: its lease is gone
    assert probe.calls == {(OK, 7): 1}
    assert audited(db) == [f"{OK}:7"]


def test_a_network_call_is_finished_before_the_batch_goes_on(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    """At least once, and no wider than the call in progress: the row of a successful network
    call is gone before the next job of the batch runs, so a worker that dies later in the
    batch (or whose lease runs out) makes no call twice."""
    put(db, clock, CALL, {"n": 1})
    put(db, clock, PEEK, {"n": 2})
    assert make_worker().run_once() == 2
    assert probe.seen == [[PEEK]]
    assert probe.calls == {(CALL, 1): 1}
    assert rows(db) == []


def test_a_network_call_whose_lease_was_taken_over_leaves_the_row_alone(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    """An io job's row is finished only while the lease is this worker's (the DELETE's own
    condition): a worker that took the job over meanwhile keeps it."""
    kind = "test.jobs.call-taken-over"

    @job(kind, io=True)
    def call(ctx: Ctx, payload: dict[str, Any]) -> None:
        with db.write() as session:  # another worker's claim, once this one's lease ran out
            session.execute(update(Job).where(Job.kind == kind).values(lease_owner="thief"))

    put(db, clock, kind, {"n": 1})
    assert make_worker().run_once() == 0  # the call does not count as this worker's
    taken = the_job(db)
    assert (taken.status, taken.lease_owner) == ("running", "thief")


def test_a_late_finish_after_losing_the_lease_is_rolled_back(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    put(db, clock, STEAL, {"n": 1})
    assert make_worker().run_once() == 0
    assert probe.calls == {(STEAL, 1): 1}  # the handler ran ...
    assert audited(db) == []  # ... and everything it did was rolled back
    stolen = the_job(db)
    assert (stolen.status, stolen.lease_owner) == ("running", "test-w1")  # untouched


def test_a_job_that_keeps_losing_its_worker_gives_up(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    put(db, clock, OK, {"n": 1}, max_attempts=2)
    for name in ("a", "b"):
        assert len(make_worker(name, worker_lease_seconds=30).claim()) == 1
        clock.advance(seconds=31)
    assert make_worker("c").run_once() == 1
    failed = the_job(db)
    assert failed.status == "failed"
    assert "lease ran out" in (failed.last_error or "")
    assert probe.calls == {}


def test_stopping_hands_unstarted_jobs_back(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    for n in range(3):
        put(db, clock, OK, {"n": n})
    claimed = worker.claim()
    stop = threading.Event()
    stop.set()
    assert worker.run(claimed, stop) == 0
    assert [(j.status, j.attempts, j.lease_owner) for j in rows(db)] == [("queued", 0, None)] * 3
    assert worker.drain() == 3


def test_a_background_thread_runs_jobs_until_stopped(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(worker_poll_seconds=0.05)
    worker.start_thread()
    try:
        put(db, clock, OK, {"n": 1})
        assert probe.ran.wait(60)
    finally:
        worker.stop()
    assert probe.calls == {(OK, 1): 1}
    assert audited(db) == [f"{OK}:1"]


# ---------------------------------------------------------------- dedupe and periodic kinds


def test_dedupe_holds_while_queued_and_lets_go_once_claimed(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    put(db, clock, OK, {"n": 1}, dedupe_key="sync:alice")
    put(db, clock, OK, {"n": 2}, dedupe_key="sync:alice")
    assert [(j.payload, j.dedupe_key) for j in rows(db)] == [({"n": 1}, "sync:alice")]

    worker = make_worker()
    claimed = worker.claim()
    assert the_job(db).dedupe_key is None
    put(db, clock, OK, {"n": 3}, dedupe_key="sync:alice")  # changes made after the claim
    assert [j.payload for j in rows(db)] == [{"n": 1}, {"n": 3}]
    assert worker.run(claimed) == 1
    assert worker.drain() == 1
    assert probe.calls == {(OK, 1): 1, (OK, 3): 1}


def test_a_periodic_kind_has_one_row_whatever_the_number_of_workers(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    probe.register_periodic(TICK)
    workers = [make_worker("a"), make_worker("b")]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda w: [w.schedule() for _ in range(10)], workers))
    armed = the_job(db)
    assert (armed.kind, armed.payload, armed.status) == (TICK, {}, "queued")
    assert armed.dedupe_key == periodic_key(TICK)
    assert armed.run_after == clock()  # a kind never run is due at once

    assert workers[0].run_once() == 1
    rearmed = the_job(db)
    assert rearmed.id == armed.id
    assert rearmed.status == "queued"
    assert rearmed.attempts == 0
    assert rearmed.run_after == next_slot(clock(), timedelta(minutes=10)) > clock()
    assert workers[1].run_once() == 0
    assert workers[0].run_once() == 0
    assert len(rows(db)) == 1

    clock.now = rearmed.run_after
    assert workers[1].run_once() == 1
    assert workers[0].run_once() == 0
    assert probe.calls == {(TICK, None): 2}
    assert len(rows(db)) == 1


def test_a_periodic_kind_that_gives_up_stays_visible_and_is_armed_again(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    probe.register_periodic(TICK_BOOM, fails=True)
    worker = make_worker()
    for _ in range(3):  # @periodic's max_attempts
        assert worker.run_once() == 1
        clock.advance(hours=1)
    failed, armed = rows(db)
    assert (failed.kind, failed.status, failed.dedupe_key) == (TICK_BOOM, "failed", None)
    assert failed.last_error == "RuntimeError: sweep failed"
    assert (armed.kind, armed.status, armed.attempts) == (TICK_BOOM, "queued", 0)
    assert armed.dedupe_key == periodic_key(TICK_BOOM)
    assert armed.run_after == next_slot(clock() - timedelta(hours=1), timedelta(minutes=10))


def test_the_slots_of_a_periodic_kind() -> None:
    at = datetime(2025, 3, 1, 12, 34, 56, tzinfo=UTC)
    assert next_slot(at, timedelta(minutes=10)) == datetime(2025, 3, 1, 12, 40, tzinfo=UTC)
    assert next_slot(at, timedelta(days=1)) == datetime(2025, 3, 2, tzinfo=UTC)
    on_slot = datetime(2025, 3, 1, 12, 40, tzinfo=UTC)
    assert next_slot(on_slot, timedelta(minutes=10)) == datetime(2025, 3, 1, 12, 50, tzinfo=UTC)


# ---------------------------------------------------------------- many workers


def test_several_workers_run_each_of_500_jobs_exactly_once(
    db: Database, settings: Settings, clock: SteppingClock, probe: Probe
) -> None:
    with db.write() as session:
        for n in range(500):
            enqueue(session, OK, {"n": n}, now=clock())
    claims: Counter[int] = Counter()
    lock = threading.Lock()

    class Counting(Worker):
        def claim(self, limit: int | None = None) -> list[ClaimedJob]:
            claimed = super().claim(limit)
            with lock:
                claims.update(c.id for c in claimed)
            return claimed

    workers = [
        Counting(db, settings.model_copy(update={"worker_batch": 7}), clock=clock, worker_id=w)
        for w in ("w1", "w2", "w3", "w4")
    ]
    with ThreadPoolExecutor(len(workers)) as pool:
        ran = list(pool.map(lambda w: w.drain(max_rounds=1000), workers))

    assert len(claims) == 500
    assert set(claims.values()) == {1}  # no job was ever leased to two workers
    assert sum(ran) == 500
    assert rows(db) == []
    assert probe.calls == Counter({(OK, n): 1 for n in range(500)})
    done = audited(db)
    assert len(done) == 500
    assert set(done) == {f"{OK}:{n}" for n in range(500)}
    with db.read() as conn:
        assert verify(conn).ok


# ---------------------------------------------------------------- operations


def test_retry_job_requeues_a_failed_job_and_audits_it(
    db: Database, clock: SteppingClock, probe: Probe, make_worker: Callable[..., Worker]
) -> None:
    put(db, clock, "test.jobs.unknown", {"n": 1})
    put(db, clock, OK, {"n": 2}, run_after=clock() + timedelta(days=1))
    make_worker().run_once()
    failed_id = next(j.id for j in rows(db) if j.status == "failed")
    queued_id = next(j.id for j in rows(db) if j.status == "queued")
    clock.advance(minutes=1)

    with db.write() as session:
        ctx = Ctx(session, system_actor("test"), clock())
        assert [j.id for j in list_jobs(ctx, status="failed")] == [failed_id]
        assert [j.id for j in list_jobs(ctx, kind=OK)] == [queued_id]
        assert len(list_jobs(ctx)) == 2
        with pytest.raises(Invalid):
            list_jobs(ctx, status="done")
        retried = retry_job(ctx, failed_id)
        assert (retried.status, retried.attempts, retried.run_after) == ("queued", 0, clock())
        with pytest.raises(Conflict):
            retry_job(ctx, queued_id)
        with pytest.raises(NotFound):
            retry_job(ctx, 999_999)

    with db.read() as conn:
        event = (
            conn.execute(select(AuditEvent).where(AuditEvent.activity == "Retry job"))
            .one()
            ._mapping
        )
    assert event["target_id"] == str(failed_id)
    assert event["actor_name"] == "test"
    assert event["details"]["before"]["status"] == "failed"


def test_only_administrators_see_and_retry_jobs(
    db: Database, clock: SteppingClock, make_worker: Callable[..., Worker], probe: Probe
) -> None:
    put(db, clock, "test.jobs.unknown", {"n": 1})
    make_worker().run_once()
    nobody = Actor(user_id=new_id(), name="nobody")
    with db.write() as session:
        ctx = Ctx(session, nobody, clock())
        with pytest.raises(Forbidden):
            list_jobs(ctx)
        with pytest.raises(Forbidden):
            retry_job(ctx, the_job(db).id)
    assert the_job(db).status == "failed"


# ---------------------------------------------------------------- the commands


def test_worker_once_jobs_list_and_retry_through_the_cli(
    db: Database, settings: Settings, clock: SteppingClock
) -> None:
    env = {
        **os.environ,
        "REMIT_DATABASE_URL": db.url,
        "REMIT_DATA_DIR": str(settings.data_dir),
        "COLUMNS": "250",
    }

    def remit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "remit", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    # The worker process knows only the real kinds: this one fails there, visibly.
    put(db, clock, "test.jobs.cli", {"n": 1})
    job_id = the_job(db).id

    listed = remit("jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert "test.jobs.cli" in listed.stdout
    assert "queued" in listed.stdout

    worked = remit("worker", "--once")
    assert worked.returncode == 0, worked.stderr
    assert "job(s) run" in worked.stdout
    assert "job gave up" in worked.stderr  # the log line (logs go to stderr)
    # (Real periodic kinds may have run and been re-armed beside it.)
    assert by_id(db, job_id).status == "failed"

    listed = remit("jobs", "list", "--failed")
    assert listed.returncode == 0, listed.stderr
    assert "Failed jobs" in listed.stdout
    assert "unknown job kind 'test.jobs.cli'" in listed.stdout

    retried = remit("jobs", "retry", str(job_id))
    assert retried.returncode == 0, retried.stderr
    assert f"job {job_id} (test.jobs.cli) queued again" in retried.stdout
    assert (by_id(db, job_id).status, by_id(db, job_id).attempts) == ("queued", 0)

    again = remit("jobs", "retry", str(job_id))
    assert again.returncode == 1
    assert again.stderr.strip() == f"remit: error: job {job_id} is queued, not failed"
