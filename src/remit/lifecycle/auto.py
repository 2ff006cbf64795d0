"""Automatic assignment (spec §5.9): users matching a policy's rule get the package
(``systemAdd``); those who stop matching lose it after the grace period (``systemRemove``),
if the policy says so. Evaluated in the database, set-based, by the periodic job."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from remit.context import Ctx
from remit.errors import DomainError
from remit.lifecycle import assignments, requests
from remit.lifecycle.locks import lock_subjects
from remit.models.directory import User
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.policies import AssignmentPolicy
from remit.models.policy_settings import AutomaticRequestSettings, settings_of
from remit.models.vocabulary import RequestType
from remit.policies import rules
from remit.policies.subjects import ATTRIBUTE_RULE_MEMBERS

LIMIT = 15_000  # assignments per auto-assignment policy (spec §9)


def evaluate(ctx: Ctx, policy: AssignmentPolicy) -> tuple[int, int]:
    """Bring one policy's assignments in line with its rule; returns (added, removed)."""
    typed = settings_of(policy)
    settings = typed.automatic or AutomaticRequestSettings()
    rule_text = next((t.membership_rule for t in typed.targets(ATTRIBUTE_RULE_MEMBERS)), None)
    if not rule_text:
        return 0, 0
    rule = rules.parse(rule_text)
    matching = set(
        ctx.session.execute(
            select(User.id).where(rule.to_sql(), User.account_enabled.is_(True)).limit(LIMIT)
        ).scalars()
    )
    held = {
        a.target_id: a
        for a in ctx.session.execute(
            select(Assignment).where(
                Assignment.policy_id == policy.id, Assignment.active_key.is_not(None)
            )
        ).scalars()
    }
    open_adds = set(
        ctx.session.execute(
            select(AssignmentRequest.target_id).where(
                AssignmentRequest.access_package_id == policy.access_package_id,
                AssignmentRequest.open_key.is_not(None),
            )
        ).scalars()
    )
    added = removed = 0
    # Every subject this run may touch is locked up front, in order (lifecycle.locks).
    lock_subjects(ctx, (matching - set(held) - open_adds) | set(held))
    if settings.request_access_for_allowed_targets:
        for user_id in sorted(matching - set(held) - open_adds):
            if len(held) + added >= LIMIT:
                break
            try:
                with ctx.session.begin_nested():
                    requests.submit(
                        ctx,
                        kind=RequestType.SYSTEM_ADD,
                        package_id=policy.access_package_id,
                        policy_id=policy.id,
                        target_id=user_id,
                    )
                added += 1
            except DomainError:
                continue  # e.g. an incompatible package or an active assignment elsewhere
    grace = settings.grace_period_before_access_removal or timedelta(0)
    for user_id, a in sorted(held.items()):
        if user_id in matching:
            a.out_of_scope_since = None
            continue
        if not settings.remove_access_when_target_leaves_allowed_targets:
            continue
        if a.out_of_scope_since is None:
            a.out_of_scope_since = ctx.now
        if ctx.now - a.out_of_scope_since >= grace:
            request = requests.system_remove_record(ctx, a)
            assignments.end(ctx, a, reason="leftScope", request=request)
            removed += 1
    return added, removed
