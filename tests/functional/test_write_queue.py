"""The writers of a process take turns on SQLite (``db.WriteQueue``, decision 0029): first come,
first served; a writer that waits longer than ``write_wait_seconds`` is refused with ``Busy`` and
changes nothing (503 + Retry-After from the API, exit 75 from the CLI). Real threads, a real
database, the app through HTTP; nothing here is timed but the refusal's own short wait."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from remit.db import Database, WriteQueue
from remit.errors import Busy
from remit.jobs.queue import enqueue
from remit.jobs.runner import Worker
from remit.models.audit import AuditEvent
from remit.models.catalogs import Catalog
from remit.models.jobs import Job
from remit.models.vocabulary import JobStatus
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant, upn

SHORT_WAIT = 0.3  # seconds a refused writer waits here before it is refused


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (a thread reaching the queue); a generous bound, not a timing."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.001)


@pytest.fixture
def lite(db: Database) -> Database:
    if not db.is_sqlite:
        pytest.skip("the writer queue is SQLite's; PostgreSQL orders writers by row locks")
    return db


@pytest.fixture
def short_wait(lite: Database) -> Iterator[Database]:
    """The test database with writers refused after ``SHORT_WAIT`` seconds, as the setting
    ``write_wait_seconds`` makes them."""
    queue = lite.write_queue
    assert queue is not None
    kept = queue.wait_seconds
    queue.wait_seconds = SHORT_WAIT
    yield lite
    queue.wait_seconds = kept


def queued_writers(
    queue: WriteQueue, n: int, work: Callable[[int], None]
) -> list[threading.Thread]:
    """Start ``n`` threads one after another, each calling ``work(i)``; each has joined the
    queue before the next starts, so ``i`` is the order of arrival."""
    threads: list[threading.Thread] = []
    for i in range(n):
        thread = threading.Thread(target=work, args=(i,))
        thread.start()
        until(lambda i=i: queue.waiting == i + 1, f"writer {i} waiting")  # type: ignore[misc]
        threads.append(thread)
    return threads


def test_writers_take_their_turns_in_the_order_they_came(lite: Database) -> None:
    queue = lite.write_queue
    assert queue is not None
    served: list[int] = []

    def write(i: int) -> None:
        with lite.write() as session:
            session.execute(select(func.count()).select_from(Catalog))
            served.append(i)

    with lite.write() as session:
        session.connection()  # BEGIN IMMEDIATE: this thread holds the database
        threads = queued_writers(queue, 8, write)
    for thread in threads:
        thread.join()
    assert served == list(range(8))
    assert queue.waiting == 0


def test_a_late_writer_never_takes_the_turn_of_one_already_waiting() -> None:
    queue = WriteQueue(30.0)
    order: list[str] = []
    queue.acquire()
    first = threading.Thread(
        target=lambda: (queue.acquire(), order.append("first"), queue.release())
    )
    first.start()
    until(lambda: queue.waiting == 1, "the first waiter queued")
    # Handed over on release: the turn is the waiter's before this thread can ask again.
    queue.release()
    queue.acquire()
    order.append("late")
    queue.release()
    first.join()
    assert order == ["first", "late"]


def test_a_writer_that_waits_too_long_is_refused_and_leaves_the_queue() -> None:
    queue = WriteQueue(SHORT_WAIT)
    queue.acquire()
    refused: list[BaseException] = []

    def wait() -> None:
        try:
            queue.acquire()
        except Busy as exc:
            refused.append(exc)
        else:
            queue.release()

    thread = threading.Thread(target=wait)
    thread.start()
    thread.join()
    assert len(refused) == 1
    assert isinstance(refused[0], Busy)
    assert queue.waiting == 0
    queue.release()
    # The refused writer left no ghost behind: the next one is served at once.
    other = threading.Thread(target=lambda: (queue.acquire(), queue.release()))
    other.start()
    other.join()
    queue.acquire()
    queue.release()


def test_a_write_inside_a_write_of_the_same_thread_is_in_the_same_turn(lite: Database) -> None:
    """Reentrant: the inner write does not wait for its own thread (the outer one has not touched
    the database yet, which SQLite allows), and the turn passes on only when the outer one ends."""
    queue = lite.write_queue
    assert queue is not None
    served: list[str] = []

    def other() -> None:
        with lite.write() as session:
            session.connection()
            served.append("other")

    with lite.write():
        with lite.write() as inner:
            inner.execute(select(func.count()).select_from(Catalog))
            thread = threading.Thread(target=other)
            thread.start()
            until(lambda: queue.waiting == 1, "the other writer queued")
        served.append("inner done")
        assert queue.waiting == 1  # the outer write still holds the turn
    thread.join()
    assert served == ["inner done", "other"]
    assert queue.waiting == 0


def test_postgresql_has_no_process_queue(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("PostgreSQL only")
    assert db.write_queue is None


def counts(db: Database) -> tuple[int, int]:
    with db.read() as conn:
        catalogs = conn.execute(select(func.count()).select_from(Catalog)).scalar_one()
        events = conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    return catalogs, events


def test_the_api_answers_503_with_retry_after_and_changes_nothing(
    tenant: Tenant, short_wait: Database
) -> None:
    headers = tenant.headers("mamta")
    body = {"displayName": "Queued", "description": "made after a 503"}
    before = counts(short_wait)
    with short_wait.write() as session:
        session.connection()  # another writer of this process holds the turn
        refused = tenant.client.post(f"{EM}/catalogs", json=body, headers=headers)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    error = refused.json()["error"]
    assert error["code"] == "serviceNotAvailable"
    assert "retry" in error["message"]
    assert error["innerError"]["request-id"]
    assert counts(short_wait) == before  # the transaction never began
    # The same call, made again, simply succeeds.
    again = tenant.client.post(f"{EM}/catalogs", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert counts(short_wait)[0] == before[0] + 1


def test_the_job_worker_waits_its_turn_too(
    tenant: Tenant, short_wait: Database, settings: Settings, clock: SteppingClock
) -> None:
    worker = Worker(short_wait, settings, clock=clock)
    refused: list[BaseException] = []

    def claim() -> None:
        try:
            worker.claim()
        except Busy as exc:
            refused.append(exc)

    with short_wait.write() as session:
        session.connection()  # a request of this process holds the turn
        thread = threading.Thread(target=claim)
        thread.start()
        thread.join()
    assert len(refused) == 1
    worker.drain()  # its turn comes once the other writer is done


def test_a_job_refused_as_busy_goes_back_to_the_queue_without_spending_an_attempt(
    tenant: Tenant, short_wait: Database, settings: Settings, clock: SteppingClock
) -> None:
    """Too busy to begin is not the job's failure: it is queued again as if never claimed,
    with no attempt counted and no error recorded."""
    worker = Worker(short_wait, settings, clock=clock)
    worker.drain()  # the periodic jobs' first runs, out of the way
    with short_wait.write() as session:
        enqueue(
            session,
            "lifecycle.activate_scheduled",
            {"request_id": "00000000-0000-0000-0000-00000000dead"},
            now=clock(),
        )
    claimed = worker.claim()
    assert [j.kind for j in claimed] == ["lifecycle.activate_scheduled"]
    queue = short_wait.write_queue
    assert queue is not None
    refused = queue.refused
    ran: list[int] = []
    with short_wait.write() as session:
        session.connection()  # a request of this process holds the turn past the job's wait
        thread = threading.Thread(target=lambda: ran.append(worker.run(claimed)))
        thread.start()
        until(lambda: queue.refused > refused, "the job refused as busy")
    thread.join()  # it gives the job back in a turn of its own
    assert ran == [0]
    with short_wait.session() as session:
        job = session.execute(select(Job).where(Job.id == claimed[0].id)).scalar_one()
        assert (job.status, job.attempts, job.last_error) == (JobStatus.QUEUED, 0, None)
    assert worker.drain() >= 1  # its turn comes once the other writer is done
    with short_wait.session() as session:
        assert session.get(Job, claimed[0].id) is None  # run and finished


def test_the_cli_answers_one_line_and_exit_75_when_the_database_stays_busy(
    tenant: Tenant, lite: Database, settings: Settings
) -> None:
    """Another process (this one) holds SQLite's write lock for longer than the command's
    ``REMIT_WRITE_WAIT_SECONDS``: SQLite's busy handler gives up, and the command says so."""
    env = {
        **os.environ,
        "REMIT_DATABASE_URL": lite.url,
        "REMIT_DATA_DIR": str(settings.data_dir),
        "REMIT_WRITE_WAIT_SECONDS": "0.5",
        "COLUMNS": "200",
    }
    before = counts(lite)
    with lite.write() as session:
        session.connection()  # BEGIN IMMEDIATE: this process holds the database
        done = subprocess.run(
            [sys.executable, "-m", "remit", "--as", upn("mamta"), "catalog", "create", "Busy"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == 75, (done.stdout, done.stderr)
    # One line for people (the structured warning log beside it goes to stderr, as all logs do).
    said = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert said == [
        "remit: error: the database is busy with other changes; nothing was changed, retry shortly"
    ], done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert counts(lite) == before
