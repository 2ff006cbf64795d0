"""Looking at the job queue and retrying failed jobs (``remit jobs``).

Both need ``Task.SETTINGS_UPDATE``, the tenant-wide administration task held by the Identity
Governance Administrator and the Global Administrator: payloads name users and packages across
every catalog, and retrying a delivery changes access.
"""

from __future__ import annotations

from sqlalchemy import select

from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.errors import Conflict, Invalid, NotFound
from remit.models.jobs import Job
from remit.models.vocabulary import Activity, JobStatus

STATUSES = tuple(JobStatus)


def list_jobs(
    ctx: Ctx, *, status: str | None = None, kind: str | None = None, limit: int = 100
) -> list[Job]:
    """Jobs in the queue (successful jobs are deleted, so these are pending or failed), oldest
    first."""
    authorize(ctx.actor, Task.SETTINGS_UPDATE)
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", target="status")
    if not 1 <= limit <= 1000:
        raise Invalid("limit must be between 1 and 1000", target="limit")
    query = select(Job).order_by(Job.id).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return list(ctx.session.execute(query).scalars())


def retry_job(ctx: Ctx, job_id: int) -> Job:
    """Queue a failed job again, due now, with its attempts reset (its last error is kept)."""
    authorize(ctx.actor, Task.SETTINGS_UPDATE)
    job = ctx.session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status != JobStatus.FAILED:
        raise Conflict(f"job {job_id} is {job.status}, not failed")
    before = {"status": job.status, "attempts": job.attempts, "lastError": job.last_error}
    job.status = JobStatus.QUEUED
    job.attempts = 0
    job.run_after = ctx.now
    job.lease_owner = None
    job.lease_until = None
    job.updated_at = ctx.now
    ctx.session.flush()
    ctx.audit(
        Activity.RETRY_JOB,
        operation_type="Update",
        target_type="Job",
        target_id=str(job.id),
        target_name=job.kind,
        before=before,
        after={"status": job.status, "attempts": job.attempts},
    )
    return job
