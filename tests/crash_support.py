"""The lifecycle steps of the crash-consistency tests (QUALITY.md R7), and the process that dies.

A step is one unit of work as a client or the worker makes it: one write transaction through
the same use cases the API calls (``submit``, ``decide_stage``), or a worker draining the queue.
The test runs each step in its own process first, with ``REMIT_CRASH_AT`` naming a point that
the step passes, so it dies there (``os._exit(77)``); then it runs the same steps again in its
own process, as the restarted client and worker would.

Importing remit takes well over a second, so a *zygote* imports it once and forks one process
per crash; each fork opens its own connections, sets ``REMIT_CRASH_AT`` and runs one step:

    python -m tests.crash_support serve      # JSON lines in, {"rc": exit code} lines out

To reproduce one crash by hand, against any database:

    REMIT_CRASH_AT=job.after_claim python -m tests.crash_support once '{"url": ..., ...}'

with the JSON object of ``request()`` (``step``, ``url``, ``now``, ``data_dir``, ``ids``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from remit.authz.actor import load_actor
from remit.clock import FixedClock
from remit.context import Ctx
from remit.db import Database
from remit.jobs.runner import Worker
from remit.lifecycle import operations, requests
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest
from remit.notify import config
from remit.settings import Settings

CLIENT_STEPS = ("submit", "approve1", "approve2", "admin_add", "remove")
WORKER_STEPS = ("deliver", "expire")
ADD_TYPES = ("userAdd", "adminAdd")


def request(
    step: str, *, url: str, now: datetime, data_dir: Path, ids: dict[str, str]
) -> dict[str, Any]:
    """What the crashing process needs to run ``step``: all JSON."""
    return {
        "step": step,
        "url": url,
        "now": now.isoformat(),
        "data_dir": str(data_dir),
        "ids": ids,
    }


def run_step(
    db: Database, settings: Settings, now: datetime, step: str, ids: dict[str, str]
) -> None:
    """Run one step; raises ``Conflict`` when a retried client step had already been done.

    ``ids``: ``user`` (the run's target), ``package``, ``contractors`` (a policy without
    approval), ``omar`` and ``mamta`` (the two approvers), ``alex`` (assignment manager).
    """
    if step in WORKER_STEPS:
        Worker(db, settings, clock=FixedClock(now), worker_id=f"crash-{os.getpid()}").drain()
        return
    user, package = ids["user"], ids["package"]
    actor = {
        "submit": user,
        "approve1": ids["omar"],
        "approve2": ids["mamta"],
        "admin_add": ids["alex"],
        "remove": ids["alex"],
    }[step]
    with db.write() as session:
        ctx = Ctx(session, load_actor(session.connection(), actor, now=now), now)
        if step == "submit":
            requests.submit(
                ctx,
                kind="userAdd",
                package_id=package,
                target_id=user,
                justification="Working on the 2027 campaign",
            )
        elif step == "admin_add":
            requests.submit(
                ctx,
                kind="adminAdd",
                package_id=package,
                policy_id=ids["contractors"],
                target_id=user,
            )
        elif step in ("approve1", "approve2"):
            add = session.execute(
                select(AssignmentRequest).where(
                    AssignmentRequest.target_id == user,
                    AssignmentRequest.access_package_id == package,
                    AssignmentRequest.request_type == "userAdd",
                )
            ).scalar_one()
            index = 0 if step == "approve1" else 1
            stage = session.execute(
                select(ApprovalStage).where(
                    ApprovalStage.request_id == add.id, ApprovalStage.stage_index == index
                )
            ).scalar_one()
            # decide_stage answers Conflict when the stage was decided already.
            operations.decide_stage(
                ctx, add.id, stage.id, result="Approve", justification="campaign staff"
            )
        else:  # remove: the assignment the client saw; refused (Conflict) once it has ended
            assignment = session.execute(
                select(Assignment.id).where(
                    Assignment.target_id == user, Assignment.access_package_id == package
                )
            ).scalar_one()
            requests.submit(ctx, kind="adminRemove", assignment_id=assignment)


def _run(job: dict[str, Any]) -> None:
    """Run one step as its own process would: fresh connections, the step, nothing else."""
    data_dir = Path(job["data_dir"])
    settings = Settings(data_dir=data_dir, database_url=job["url"])
    config.configure(settings)
    db = Database(job["url"])
    run_step(db, settings, datetime.fromisoformat(job["now"]), job["step"], job["ids"])
    db.dispose()


def _child(job: dict[str, Any], point: str | None) -> int:
    """In the forked process: run the job with the crash point armed. Never returns."""
    if point:
        os.environ["REMIT_CRASH_AT"] = point
    else:
        os.environ.pop("REMIT_CRASH_AT", None)
    try:
        _run(job)
    except BaseException:  # reported to the test through the exit code and stderr
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)


def serve() -> None:
    """The zygote: remit imported once; one fork per line of stdin, its exit code answered."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the steps print (logs) goes to stderr, not into the answers
    from remit.jobs import handlers

    handlers.load_all()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(job, job.get("point"))
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
        answers.flush()


def main(argv: list[str]) -> None:
    if argv[:1] == ["serve"]:
        serve()
    elif argv[:1] == ["once"] and len(argv) == 2:
        _run(json.loads(argv[1]))  # REMIT_CRASH_AT from the environment
    else:
        sys.exit("usage: python -m tests.crash_support serve | once JSON")


if __name__ == "__main__":
    main(sys.argv[1:])
