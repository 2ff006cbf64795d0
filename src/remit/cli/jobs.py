"""``remit worker`` and ``remit jobs``: run the job queue, look at it, retry failed jobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from remit.cli.common import console, database, list_table, say, settings, unit
from remit.models.vocabulary import JobStatus

if TYPE_CHECKING:
    from remit.db import Database
    from remit.jobs.runner import Worker
    from remit.models.jobs import Job
    from remit.settings import Settings

jobs_app = typer.Typer(
    help="The job queue (delivery, expiry, notifications).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``jobs`` to the ``remit`` command."""
    app.command("worker")(worker)
    app.add_typer(jobs_app, name="jobs")


@contextmanager
def in_process_worker(s: Settings, db: Database) -> Iterator[Worker | None]:
    """One worker thread beside the API while the block runs, if ``worker_in_process``.

    ``remit serve`` runs it in its own process, whatever the number of API processes; the log
    line says which process that is.
    """
    if not s.worker_in_process:
        yield None
        return
    import os

    import structlog

    from remit.jobs.handlers import load_all
    from remit.jobs.runner import Worker

    load_all()
    from remit.notify import config

    config.configure(s)
    running = Worker(db, s)
    running.start_thread()
    structlog.get_logger("remit.jobs").info(
        "jobs.worker_started", worker=running.worker_id, pid=os.getpid()
    )
    try:
        yield running
    finally:
        running.stop()


def worker(
    threads: Annotated[int, typer.Option(min=1, max=64, help="worker loops in this process")] = 1,
    once: Annotated[
        bool, typer.Option("--once", help="run every job that is due, then exit")
    ] = False,
) -> None:
    """Run jobs against the configured database (more workers: more processes, on PostgreSQL)."""
    import signal

    from remit import logs
    from remit.jobs.handlers import load_all
    from remit.jobs.runner import Worker
    from remit.notify import config

    s = settings()
    logs.configure(s.log_level)
    config.configure(s)
    load_all()
    with database(s) as db:
        workers = [Worker(db, s) for _ in range(threads)]
        if once:
            console.print(f"{_drain(workers)} job(s) run", highlight=False)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        for w in workers:
            w.start_thread()
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            for w in workers:
                w.stop()


def _drain(workers: list[Worker]) -> int:
    if len(workers) == 1:
        return workers[0].drain(max_rounds=1000)
    totals: list[int] = []
    errors: list[BaseException] = []

    def drain(w: Worker) -> None:
        try:
            totals.append(w.drain(max_rounds=1000))
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    running = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for t in running:
        t.start()
    for t in running:
        t.join()
    if errors:
        raise errors[0]
    return sum(totals)


@jobs_app.command("list")
def jobs_list(
    failed: Annotated[bool, typer.Option("--failed", help="only failed jobs")] = False,
    kind: Annotated[str | None, typer.Option(help="only jobs of this kind")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Jobs waiting, running or failed (a job that succeeds is deleted)."""
    from remit.jobs.operations import list_jobs

    list_table(
        "Failed jobs" if failed else "Jobs",
        ["Id", "Kind", "Status", "Attempts", "Run after", "Lease owner", "Last error"],
        lambda ctx: list_jobs(
            ctx, status=JobStatus.FAILED if failed else None, kind=kind, limit=limit
        ),
        _job_row,
    )


def _job_row(job: Job) -> tuple[Any, ...]:
    return (
        job.id,
        job.kind,
        job.status,
        f"{job.attempts}/{job.max_attempts}",
        job.run_after.isoformat(timespec="seconds"),
        job.lease_owner,
        job.last_error,
    )


@jobs_app.command("retry")
def jobs_retry(job_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Queue a failed job again, due now, with its attempts reset."""
    from remit.jobs.operations import retry_job

    with unit() as ctx:
        job = retry_job(ctx, job_id)
        say(f"job {job.id} ({job.kind}) queued again")
