"""The lifecycle's jobs: delivery, scheduled starts, and the periodic sweeps (expiry, approval
timers, expiry reminders, auto-assignment). Each runs in one transaction (``jobs.runner``) and
is idempotent, but for delivery, which calls remote targets between short transactions of its
own (``stepwise``: claim, call, record; ``lifecycle.delivery``). The sweeps work in bounded
chunks and ask to run again while work remains. The expiry sweep ends a chunk of assignments
set-based (``lifecycle.sweep``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from remit.authz import relations
from remit.context import Ctx
from remit.jobs.registry import RetryLater, Steps, job, periodic, stepwise
from remit.lifecycle import approvals, assignments, auto, delivery, notices, sweep
from remit.lifecycle.locks import lock_subjects
from remit.lifecycle.schedule import REMINDERS
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy
from remit.models.policy_settings import schedule_of
from remit.models.vocabulary import GrantState, RequestState, StageStatus

CHUNK = 500
NOW = timedelta(0)


def _sync_gave_up(ctx: Ctx, payload: dict[str, Any], error: str) -> None:
    """The sync job itself kept failing (not a target: those retry inside it). Its pending
    grants are marked failed (and their claims dropped), so their assignments read
    deliveryFailed or partiallyDelivered and an administrator can reprocess them, instead of
    "delivering" for ever."""
    subject_id = payload["subject_id"]
    lock_subjects(ctx, [subject_id])
    for grant in delivery.pending_grants(ctx.session, subject_id):
        if grant.claim_token is not None and (grant.claimed_until or ctx.now) > ctx.now:
            continue  # a call of another run is in flight: its record decides this row
        grant.attempts += 1
        grant.last_error = f"delivery gave up: {error}"[:500]
        grant.applied_generation = grant.generation
        grant.applied_state = GrantState.FAILED
        grant.claim_token = grant.claimed_generation = grant.claimed_until = None
        grant.updated_at = ctx.now
    assignments.refresh_states(ctx, subject_id)


# Claim-call-record rounds per run while desires change during the calls; then the job is
# queued again at once (each round applied the newest desire of its moment).
ROUNDS = 3


@stepwise(delivery.SYNC_JOB, max_attempts=8, on_give_up=_sync_gave_up)
def sync_subject(steps: Steps, payload: dict[str, Any]) -> None:
    """Apply the subject's pending grants: local targets in the first transaction; remote ones
    claimed there, called with no transaction open, and recorded in a second one
    (``delivery.claim``, ``call``, ``record``). A desire that changed during a call is applied
    by the next round."""
    subject_id = payload["subject_id"]
    wait: timedelta | None = None
    reason = "some resource roles could not be delivered yet"
    for _ in range(ROUNDS):
        with steps.write() as ctx:
            claimed = delivery.claim(ctx, subject_id, lease=steps.lease)
            assignments.refresh_states(ctx, subject_id)
        wait = claimed.retry_after
        if claimed.busy_until is not None:
            wait = _sooner(wait, max(claimed.busy_until - steps.now(), timedelta(seconds=1)))
            reason = "a call for some resource roles is in flight elsewhere"
        if not claimed.calls:
            break
        outcomes = delivery.call(claimed, steps.now())
        # Guarded by the claim token (only rows still carrying this run's token are touched),
        # so the outcome lands even if another worker took the job over during the call.
        with steps.write(leased=False) as ctx:
            recorded = delivery.record(ctx, subject_id, claimed, outcomes)
            assignments.refresh_states(ctx, subject_id)
        wait = _sooner(wait, recorded.retry_after)
        if not recorded.superseded or wait is not None:
            break
    else:
        wait, reason = NOW, "desires changed during the calls"
    if wait is not None:
        raise RetryLater(wait, reason)


def _sooner(a: timedelta | None, b: timedelta | None) -> timedelta | None:
    return b if a is None else a if b is None else min(a, b)


@job("lifecycle.activate_scheduled")
def activate_scheduled(ctx: Ctx, payload: dict[str, Any]) -> None:
    request = ctx.session.get(AssignmentRequest, payload["request_id"])
    if request is None:
        return
    lock_subjects(ctx, [request.target_id or request.target_email])
    ctx.session.refresh(request)
    if request.state != RequestState.SCHEDULED:
        return  # cancelled meanwhile, or already activated
    package = ctx.session.get(AccessPackage, request.access_package_id)
    if package is None:
        return
    schedule = schedule_of(request)
    request.schedule = schedule.model_copy(update={"start_date_time": None}).stored()
    assignments.activate(ctx, request, package)


@periodic("lifecycle.expiry_sweep", every=timedelta(minutes=1))
def expiry_sweep(ctx: Ctx, payload: dict[str, Any]) -> None:
    """One chunk of the set-based sweep (``lifecycle.sweep``) per run, in the run's transaction;
    a full chunk asks to run again at once, so a backlog drains a transaction at a time."""
    size = sweep.chunk_size(ctx.session.get_bind().dialect.name)
    if sweep.expire_chunk(ctx, limit=size).due >= size:
        raise RetryLater(NOW, "more assignments to expire")


@periodic("lifecycle.approval_timers", every=timedelta(minutes=1))
def approval_timers(ctx: Ctx, payload: dict[str, Any]) -> None:
    stages = list(
        ctx.session.execute(
            select(ApprovalStage)
            .where(
                ApprovalStage.status == StageStatus.IN_PROGRESS,
                or_(
                    ApprovalStage.deny_at <= ctx.now,
                    and_(
                        ApprovalStage.escalate_at <= ctx.now,
                        ApprovalStage.escalated.is_(False),
                    ),
                ),
            )
            .order_by(ApprovalStage.started_at)
            .limit(CHUNK)
        ).scalars()
    )
    for stage in stages:
        request = ctx.session.get(AssignmentRequest, stage.request_id)
        if request is None:
            continue
        lock_subjects(ctx, [request.target_id or request.target_email])
        ctx.session.refresh(request)
        ctx.session.refresh(stage)
        if not relations.is_open(request, stage):
            continue
        package = ctx.session.get(AccessPackage, request.access_package_id)
        name = package.display_name if package else request.access_package_id
        if stage.deny_at is not None and stage.deny_at <= ctx.now:
            approvals.time_out(ctx, request, stage, name)
        else:
            approvals.escalate(ctx, request, stage, name)
    if len(stages) >= CHUNK:
        raise RetryLater(NOW, "more approval timers due")


@periodic("lifecycle.expiry_reminders", every=timedelta(minutes=15))
def expiry_reminders(ctx: Ctx, payload: dict[str, Any]) -> None:
    """The 14-day and 1-day reminders (docs/decisions/0021), each at most once per end.

    Of the reminders due for an assignment only the nearest is sent, and the earlier ones are
    settled with it (a sweep that was down does not send "14 days" and "tomorrow" together).
    One whose moment came before the assignment took its current end was settled unsent when
    the end was set (``schedule.passed_reminders``): an assignment of 20 hours hears of
    neither. Rows are claimed ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never
    remind of the same assignment; SQLite has one writer.
    """
    due_now = or_(
        *(
            and_(
                Assignment.expires_at <= ctx.now + r.ahead,
                Assignment.reminders_sent.op("&")(r.bit) == 0,
            )
            for r in REMINDERS
        )
    )
    due = list(
        ctx.session.execute(
            select(Assignment)
            .where(Assignment.active_key.is_not(None), Assignment.expires_at > ctx.now, due_now)
            .order_by(Assignment.expires_at, Assignment.id)
            .limit(CHUNK)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    for a in due:
        ends = a.expires_at
        opened = [r for r in REMINDERS if ends is not None and ends - r.ahead <= ctx.now]
        if ends is None or not opened:
            continue  # not so selected: for the type checker
        nearest = opened[0]
        settled = 0
        for r in opened:
            settled |= r.bit
        sent_before = a.reminders_sent
        a.reminders_sent = sent_before | settled
        if sent_before & nearest.bit:
            continue
        package = ctx.session.get(AccessPackage, a.access_package_id)
        name = package.display_name if package else a.access_package_id
        notices.expiring(ctx, a, name, nearest.days)
    if len(due) >= CHUNK:
        raise RetryLater(NOW, "more reminders due")


@periodic("lifecycle.auto_assignment", every=timedelta(minutes=5))
def auto_assignment(ctx: Ctx, payload: dict[str, Any]) -> None:
    policies = list(
        ctx.session.execute(
            select(AssignmentPolicy).where(AssignmentPolicy.auto_assignment_key.is_not(None))
        ).scalars()
    )
    for policy in policies:
        auto.evaluate(ctx, policy)
