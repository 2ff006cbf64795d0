"""Why a user may or may not approve a request, in words (``remit explain --request``,
``GET /remit/explain?request=``; decision 0026).

The verdict is ``relations.may_decide`` on the open stage, read through the same clause
(``relations.named_on_request`` selects ``_decides`` as a column) and the same self rule
(``relations.party_role``); the words come from the reasons recorded when each stage started
(``StageApprover.named_as``). Refusals come first, as in ``authz.groups``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.authz.actor import Actor
from remit.authz.relations import (
    NamedAs,
    NamedRow,
    is_open,
    named_on_request,
    parse_named_as,
    party_role,
)
from remit.models.directory import Group, User
from remit.models.lifecycle import ApprovalStage, AssignmentRequest
from remit.models.policies import AssignmentPolicy
from remit.models.vocabulary import ApproverTier, StageStatus


@dataclass(frozen=True)
class ApprovalExplanation:
    allowed: bool
    request_id: str
    stage: int | None  # the open stage, counted from 1; None when none is open
    reasons: tuple[str, ...]  # refusals first
    summary: str  # "<name> may approve: <first reason>"


_LEVELS = {1: "manager", 2: "second-level manager", 3: "third-level manager"}


def explain_approval(
    session: Session, subject: Actor, subject_name: str, request: AssignmentRequest
) -> ApprovalExplanation:
    """Whether ``subject`` may approve or deny ``request`` now, and why (module doc)."""
    stages = list(
        session.execute(
            select(ApprovalStage)
            .where(ApprovalStage.request_id == request.id)
            .order_by(ApprovalStage.stage_index)
        ).scalars()
    )
    current = next((s for s in stages if is_open(request, s)), None)
    status = {s.stage_index: s.status for s in stages}
    rows = named_on_request(session, subject, request.id)
    policy = session.get(AssignmentPolicy, request.policy_id) if request.policy_id else None
    words = _Words(session, request, rows, policy.display_name if policy else None)
    refused: list[str] = []
    reasons: list[str] = []
    if current is None:
        refused.append(f"the request is not waiting for approval (it is {request.state})")
    party = party_role(subject, request)
    if party is not None:
        refused.append(f"they are the {party}: nobody approves or denies their own request")
    # The grounds first (the rows that decide the open stage), then what else names them.
    here = current.stage_index if current is not None else None
    for row in sorted(rows, key=lambda r: not (r.stage_index == here and r.decides)):
        line = words.named(row)
        if row.stage_index != here:
            decided = status.get(row.stage_index) == StageStatus.COMPLETED
            later = "decided" if decided else "not started"
            line += f"; that stage is {later}"
        reasons.append(line)
    if current is not None:
        named = [r for r in rows if r.stage_index == here]
        n = current.stage_index + 1
        if not named:
            refused.append(f"not named as an approver of stage {n} (the open stage)")
        elif not any(r.decides for r in named):
            refused.append(
                f"named only as an escalation approver of stage {n} (the open stage), and the "
                "stage has not escalated"
            )
    allowed = not refused
    ordered = (*refused, *reasons) if refused else tuple(reasons)
    verdict = "may approve" if allowed else "may not approve"
    summary = f"{subject_name} {verdict}: {ordered[0]}" if ordered else f"{subject_name} {verdict}"
    return ApprovalExplanation(
        allowed,
        request.id,
        current.stage_index + 1 if current is not None else None,
        ordered,
        summary,
    )


class _Words:
    """The names a sentence needs, read once: the groups named, the target, the policy."""

    def __init__(
        self,
        session: Session,
        request: AssignmentRequest,
        rows: list[NamedRow],
        policy_name: str | None,
    ) -> None:
        groups = {r.principal_id for r in rows if r.principal_type == "group"}
        self.groups: dict[str, str] = (
            dict(
                session.execute(
                    select(Group.id, Group.display_name).where(Group.id.in_(groups))
                ).all()
            )
            if groups
            else {}
        )
        self.request = request
        target = session.get(User, request.target_id) if request.target_id else None
        self.target = target.display_name if target is not None else request.target_email
        self.policy = f"policy '{policy_name}'" if policy_name else "its policy"

    def named(self, row: NamedRow) -> str:
        """E.g. "manager of the requestor, named at stage 1 of policy 'P' (primary)"."""
        whys = parse_named_as(row.named_as)
        group = (
            f"member of group {self.groups.get(row.principal_id, row.principal_id)}"
            if row.principal_type == "group"
            else None
        )
        if whys:
            relation = "; ".join(w for w in dict.fromkeys(self._why(w, group) for w in whys) if w)
        else:  # named before the reasons were recorded
            relation = group or ""
        tier = str(row.tier)
        if tier == ApproverTier.ESCALATION:
            tier += ", the stage has escalated" if row.decides else ", not escalated"
        where = f"named at stage {row.stage_index + 1} of {self.policy} ({tier})"
        return f"{relation}, {where}" if relation else where

    def _why(self, why: NamedAs, group: str | None) -> str:
        kind = why.kind
        if kind == "singleUser":
            text = ""  # named in person: "named at stage ..." says it all
        elif kind == "groupMembers":
            text = group or "member of the group named"
        elif kind in ("requestorManager", "targetManager"):
            level = why.level or 1
            rank = _LEVELS.get(level, f"level-{level} manager")
            text = f"{rank} of {self._whose(kind)}"
        elif kind in ("internalSponsors", "externalSponsors"):
            sponsor = "an internal" if kind == "internalSponsors" else "an external"
            text = f"{sponsor} sponsor of the target's connected organization"
            text = f"{group}, {text}" if group else text.removeprefix("an ").removeprefix("a ")
        else:
            text = f"named as {kind}"
        if why.fallback:
            return f"{text}, as a fallback approver" if text else "a fallback approver"
        return text

    def _whose(self, kind: str) -> str:
        """Managers are found from the target: who that is, in the request's own terms."""
        r = self.request
        if kind == "requestorManager" and r.requestor_id in (None, r.target_id):
            return "the requestor"
        return f"the target, {self.target}" if self.target else "the target"
