"""Approval settings of a policy (spec §5.6): 1 to 3 stages, approvers, fallbacks, escalation.

Stored form::

    {"isApprovalRequiredForAdd", "isApprovalRequiredForUpdate", "isRequestorJustificationRequired",
     "stages": [{"durationBeforeAutomaticDenial": "P14D", "isApproverJustificationRequired",
                 "isEscalationEnabled", "durationBeforeEscalation": "PT0S", "primaryApprovers",
                 "fallbackPrimaryApprovers", "escalationApprovers", "fallbackEscalationApprovers"}]}

Stages given while approval is off are kept (checked the same way) but do not run; escalation
approvers given while escalation is off likewise (decision 0013).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from remit.errors import Invalid
from remit.policies import fields as f
from remit.policies import subjects as s
from remit.policies.fields import at

APPROVER_LISTS = (
    "primaryApprovers",
    "fallbackPrimaryApprovers",
    "escalationApprovers",
    "fallbackEscalationApprovers",
)
REQUIRED_FLAGS = (
    "isApprovalRequiredForAdd",
    "isApprovalRequiredForUpdate",
    "isRequestorJustificationRequired",
)
MAX_STAGES = 3
DEFAULT_DECISION = "P14D"
# The decision timeout: no maximum is documented (spec §5.6); 90 days is remit's cap.
MIN_DECISION = timedelta(days=1)
MAX_DECISION = timedelta(days=90)
# Forwarding no earlier than a day; a stage that forwards lasts at least 4 days (spec §9).
MIN_ESCALATION = timedelta(days=1)
MIN_DECISION_WITH_ESCALATION = timedelta(days=4)


def parse(value: Any) -> dict[str, Any]:
    path = "requestApprovalSettings"
    src = f.obj(value, path)
    out: dict[str, Any] = f.flags(src, path, dict.fromkeys(REQUIRED_FLAGS, False))
    where = at(path, "stages")
    raw = src.get("stages")
    if isinstance(raw, list) and len(raw) > MAX_STAGES:
        raise Invalid(f"{where} holds at most {MAX_STAGES} stages", target=where)
    stages = [
        _stage(item, at(where, i))
        for i, item in enumerate(f.items(src, "stages", path, max_items=MAX_STAGES))
    ]
    required = out["isApprovalRequiredForAdd"] or out["isApprovalRequiredForUpdate"]
    if required and not stages:
        raise Invalid(
            f"{where} must hold 1 to {MAX_STAGES} stages when approval is required", target=where
        )
    # Each dynamic approver (manager of a level, each kind of sponsor) serves once per policy.
    seen: dict[tuple[str, int | None], str] = {}
    for i, stage in enumerate(stages):
        for key in ("primaryApprovers", "escalationApprovers"):
            for j, approver in enumerate(stage[key]):
                kind = s.kind(approver)
                if kind in s.DYNAMIC_APPROVERS:
                    here = at(at(at(where, i), key), j)
                    ident = (kind, approver.get("managerLevel"))
                    if ident in seen:
                        raise Invalid(
                            f"{here}: {kind} already approves at {seen[ident]}", target=here
                        )
                    seen[ident] = here
    out["stages"] = stages
    return out


def _stage(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        raise Invalid(f"{path} must be an approval stage", target=path)
    src = f.obj(value, path)
    decision_at = at(path, "durationBeforeAutomaticDenial")
    decision = f.duration(src.get("durationBeforeAutomaticDenial") or DEFAULT_DECISION, decision_at)
    if not MIN_DECISION <= decision <= MAX_DECISION:
        raise Invalid(
            f"{decision_at} must be from {MIN_DECISION.days} to {MAX_DECISION.days} days",
            target=decision_at,
        )
    escalation_at = at(path, "durationBeforeEscalation")
    escalation = f.duration(src.get("durationBeforeEscalation") or "PT0S", escalation_at)
    out: dict[str, Any] = {
        "durationBeforeAutomaticDenial": f.iso_duration(decision),
        "isApproverJustificationRequired": f.flag(
            src, "isApproverJustificationRequired", path, False
        ),
        "isEscalationEnabled": f.flag(src, "isEscalationEnabled", path, False),
        "durationBeforeEscalation": f.iso_duration(escalation),
        "primaryApprovers": s.parse_list(src, "primaryApprovers", path, s.APPROVERS),
        "fallbackPrimaryApprovers": s.parse_list(
            src, "fallbackPrimaryApprovers", path, s.FALLBACKS
        ),
        "escalationApprovers": s.parse_list(src, "escalationApprovers", path, s.APPROVERS),
        "fallbackEscalationApprovers": s.parse_list(
            src, "fallbackEscalationApprovers", path, s.FALLBACKS
        ),
    }
    if not out["primaryApprovers"]:
        where = at(path, "primaryApprovers")
        raise Invalid(f"{where} must name at least one approver", target=where)
    _needs_fallback(out, path, "primaryApprovers", "fallbackPrimaryApprovers")
    if out["isEscalationEnabled"]:
        if not out["escalationApprovers"]:
            where = at(path, "escalationApprovers")
            raise Invalid(
                f"{where} must name at least one approver when escalation is enabled", target=where
            )
        if escalation < MIN_ESCALATION:
            raise Invalid(f"{escalation_at} must be at least 1 day", target=escalation_at)
        if decision < MIN_DECISION_WITH_ESCALATION or decision <= escalation:
            raise Invalid(
                f"{decision_at} must be at least 4 days and longer than durationBeforeEscalation "
                "when escalation is enabled",
                target=decision_at,
            )
        _needs_fallback(out, path, "escalationApprovers", "fallbackEscalationApprovers")
    return out


def _needs_fallback(stage: dict[str, Any], path: str, approvers: str, fallbacks: str) -> None:
    dynamic = [s.kind(a) for a in stage[approvers] if s.kind(a) in s.DYNAMIC_APPROVERS]
    if dynamic and not stage[fallbacks]:
        where = at(path, fallbacks)
        raise Invalid(f"{where} is required when {approvers} include {dynamic[0]}", target=where)
