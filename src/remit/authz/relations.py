"""Relationships that give a right: the half of the one authorizer that roles do not cover
(DESIGN.md, "One authorizer"; decision 0026).

Roles grant tasks (``decide``). These relationships grant the rest, each defined once here:

- **self**: the parties of a request are its target and its requestor (``PARTIES``). They may
  see it and cancel it, and never decide it (spec §5.6: nobody approves their own request).
  ``is_party`` and ``party_clause``/``not_party_clause`` are read from the same two columns.
- **manager** and **second-level manager**: ``manager_at`` walks a user's ``manager_id`` chain
  (stage approvers ``requestorManager``/``targetManager`` with ``managerLevel``); ``is_manager``
  is the same walk asked the other way (a manager requests or removes for a direct report).
- **sponsor**: the internal or external sponsors of a connected organization (``sponsors``).
- **resource owner** and **site administrator**: ``owns_group`` (an ownership delivered by an
  access package counts until its ``valid_until``), ``owns_application``,
  ``administers_site``.
- **approver of a stage**: named on the stage as a primary approver, or as an escalation
  approver once the stage has escalated, directly or through a group, and not a party of the
  request. ``_decides`` is the one clause: the prebuilt ``may_decide`` statement (bind
  parameters), the approvals list ``pending_for`` (joined columns) and ``explain``
  (``named_on_request``, as a column) all build on it.

How a stage's approvers come to be named is here too (``name_approvers``): each subjectSet of
the policy resolves to principals through the predicates above, and the row records why
(``NamedAs``), so that ``explain_approval`` can say it later in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    and_,
    bindparam,
    or_,
    select,
)
from sqlalchemy.orm import Session

from remit.authz.actor import Actor
from remit.authz.decide import can
from remit.authz.tasks import Task
from remit.db import HotSelect, among_param, listed
from remit.models.directory import ApplicationOwner, GroupOwner, SiteAdmin, User
from remit.models.external import ConnectedOrganizationSponsor
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest, StageApprover
from remit.models.vocabulary import ApproverTier, RequestState, StageStatus

R = AssignmentRequest

# ---------------------------------------------------------------- self

# The parties of a request: its columns, and their words.
PARTIES: tuple[tuple[str, str], ...] = (("target_id", "target"), ("requestor_id", "requestor"))


def party_role(actor: Actor, request: AssignmentRequest) -> str | None:
    """The actor's part in the request, "requestor" or "target" (a self-request's requestor is
    named), or None."""
    for column, word in reversed(PARTIES):
        if getattr(request, column) == actor.user_id:
            return word
    return None


def is_party(actor: Actor, request: AssignmentRequest) -> bool:
    """Whether the actor is the request's requestor or its target (self)."""
    return party_role(actor, request) is not None


def party_clause(actor: Actor) -> ColumnElement[bool]:
    """SQL: requests of which the actor is a party (``is_party``)."""
    return or_(*(getattr(R, column) == actor.user_id for column, _ in PARTIES))


def not_party_clause(actor: Actor) -> ColumnElement[bool]:
    """SQL: requests of which the actor is no party (NULL requestor or target included)."""
    return and_(*(getattr(R, column).is_distinct_from(actor.user_id) for column, _ in PARTIES))


def holds(actor: Actor, assignment: Assignment) -> bool:
    """Whether the actor is the user who holds the assignment (self)."""
    return assignment.target_id == actor.user_id


def holder_clause(actor: Actor) -> ColumnElement[bool]:
    """SQL: the assignments the actor holds (``holds``)."""
    return Assignment.target_id == actor.user_id


# ---------------------------------------------------------------- manager


def manager_at(session: Session, user: User | None, level: int = 1) -> User | None:
    """The user's manager (``level`` 1), second-level manager (2), and so on; None when the
    chain stops before."""
    person = user
    for _ in range(level):
        person = session.get(User, person.manager_id) if person and person.manager_id else None
    return person


def is_manager(session: Session, manager_id: str, report: User | None, level: int = 1) -> bool:
    """Whether ``manager_id`` is ``report``'s manager at ``level`` (``manager_at``, asked from
    the manager's side: the last step needs no read)."""
    below = manager_at(session, report, level - 1) if level > 1 else report
    return is_direct_manager(manager_id, below)


def is_direct_manager(manager_id: str | None, report: User | None) -> bool:
    """Whether ``manager_id`` is ``report``'s own manager (``is_manager`` at level 1, which
    reads nothing)."""
    return manager_id is not None and report is not None and report.manager_id == manager_id


def manages(session: Session, actor: Actor, report_id: str | None, level: int = 1) -> bool:
    """``is_manager`` for the actor and a user known by id."""
    report = session.get(User, report_id) if report_id else None
    return is_manager(session, actor.user_id, report, level)


# ---------------------------------------------------------------- sponsor


def sponsors(session: Session, organization_id: str | None, kind: str) -> list[tuple[str, str]]:
    """The (principal id, principal type) of the ``kind`` ("internal" or "external") sponsors
    of a connected organization."""
    if organization_id is None:
        return []
    rows = session.execute(
        select(
            ConnectedOrganizationSponsor.principal_id,
            ConnectedOrganizationSponsor.principal_type,
        ).where(
            ConnectedOrganizationSponsor.organization_id == organization_id,
            ConnectedOrganizationSponsor.kind == kind,
        )
    ).all()
    return [(pid, ptype) for pid, ptype in rows]


# ---------------------------------------------------------------- resource owners


def owns_group(session: Session, group_id: str, user_id: str, now: datetime) -> bool:
    """Whether the user owns the group at ``now``: an ownership delivered by an access package
    counts only until its ``valid_until`` (expired access is never honoured, even unswept)."""
    edge = session.get(GroupOwner, (group_id, user_id))
    return edge is not None and (edge.valid_until is None or edge.valid_until > now)


def owns_application(session: Session, application_id: str, user_id: str) -> bool:
    """Whether the user is an owner of the application."""
    return session.get(ApplicationOwner, (application_id, user_id)) is not None


def administers_site(session: Session, site_id: str, user_id: str) -> bool:
    """Whether the user is an administrator of the site."""
    return session.get(SiteAdmin, (site_id, user_id)) is not None


def may_manage_application(session: Session, actor: Actor, application_id: str) -> bool:
    """An application's owners change it, and application administrators any application."""
    return can(actor, Task.APPLICATIONS_MANAGE) or owns_application(
        session, application_id, actor.user_id
    )


def may_manage_site(session: Session, actor: Actor, site_id: str) -> bool:
    """A site's administrators change it, and SharePoint administrators any site."""
    return can(actor, Task.SITES_MANAGE) or administers_site(session, site_id, actor.user_id)


# ---------------------------------------------------------------- why an approver is named


@dataclass(frozen=True)
class NamedAs:
    """One reason a principal was named on a stage: the subjectSet kind (without Graph's
    prefix), the manager level for manager kinds, and whether it came from the fallbacks."""

    kind: str
    level: int | None = None
    fallback: bool = False

    def code(self) -> str:
        text = self.kind if self.level is None else f"{self.kind}:{self.level}"
        return f"fallback:{text}" if self.fallback else text

    @classmethod
    def parse(cls, code: str) -> NamedAs:
        fallback = code.startswith("fallback:")
        kind, _, level = code.removeprefix("fallback:").partition(":")
        return cls(kind, int(level) if level.isdigit() else None, fallback)


def named_as_codes(reasons: Sequence[NamedAs]) -> str:
    """The column's value: each reason once, in the order found."""
    return ",".join(dict.fromkeys(r.code() for r in reasons))[:255]


def parse_named_as(value: str | None) -> list[NamedAs]:
    return [NamedAs.parse(code) for code in value.split(",") if code] if value else []


class Named(NamedTuple):
    principal_id: str
    principal_type: str  # user | group
    why: NamedAs


class SubjectSet(Protocol):
    """A policy's subjectSet as the lifecycle reads it (``models.policy_settings.SubjectSet``)."""

    @property
    def kind(self) -> str: ...  # "singleUser", without Graph's prefix
    @property
    def user_id(self) -> str | None: ...
    @property
    def group_id(self) -> str | None: ...
    @property
    def manager_level(self) -> int | None: ...


MANAGERS = {"requestorManager", "targetManager"}
SPONSORS = {"internalSponsors", "externalSponsors"}
DYNAMIC = {*MANAGERS, *SPONSORS, "targetUserSponsors"}


def name_approvers(
    session: Session,
    target_id: str | None,
    subjects: Sequence[SubjectSet],
    fallbacks: Sequence[SubjectSet],
) -> list[Named]:
    """Approver principals for a list of subjectSets; fallbacks stand in for dynamic ones
    that resolve to nobody, or when nobody is found at all (spec §5.6)."""
    found: list[Named] = []
    dynamic_missing = False
    for subject in subjects:
        resolved = _one(session, target_id, subject, fallback=False)
        if not resolved and subject.kind in DYNAMIC:
            dynamic_missing = True
        found.extend(resolved)
    if dynamic_missing or not found:
        for subject in fallbacks:
            found.extend(_one(session, target_id, subject, fallback=True))
    return found


def _one(
    session: Session, target_id: str | None, subject: SubjectSet, *, fallback: bool
) -> list[Named]:
    kind = subject.kind
    level: int | None = None
    found: list[tuple[str, str]] = []
    if kind == "singleUser" and subject.user_id:
        user = session.get(User, subject.user_id)
        found = [(user.id, "user")] if user is not None and user.account_enabled else []
    elif kind == "groupMembers" and subject.group_id:
        found = [(subject.group_id, "group")]
    elif kind in DYNAMIC:
        # Dynamic approvers are found from the request's target (read only for them).
        target = session.get(User, target_id) if target_id else None
        if kind in MANAGERS:
            level = int(subject.manager_level or 1)
            person = manager_at(session, target, level)
            found = [(person.id, "user")] if person is not None and person.account_enabled else []
        elif kind in SPONSORS:
            org = target.connected_organization_id if target else None
            found = sponsors(session, org, "internal" if "internal" in kind else "external")
        # targetUserSponsors: remit keeps no sponsors on users; fallbacks apply
    why = NamedAs(kind, level, fallback)
    return [Named(pid, ptype, why) for pid, ptype in found]


# ---------------------------------------------------------------- approver of a stage


def _decides(escalated: ColumnElement[bool]) -> ColumnElement[bool]:
    """A stage approver row that may decide the stage now: a primary approver, or an
    escalation approver once the stage has escalated (spec §5.6)."""
    return or_(StageApprover.tier == ApproverTier.PRIMARY, escalated)


def open_clause() -> ColumnElement[bool]:
    """SQL: the stage is the open one of a request waiting for approval."""
    return and_(
        ApprovalStage.status == StageStatus.IN_PROGRESS, R.state == RequestState.PENDING_APPROVAL
    )


def is_open(request: AssignmentRequest, stage: ApprovalStage) -> bool:
    """``open_clause`` for rows already read."""
    return (
        stage.status == StageStatus.IN_PROGRESS and request.state == RequestState.PENDING_APPROVAL
    )


def may_decide(
    session: Session, actor: Actor, request: AssignmentRequest, stage: ApprovalStage
) -> bool:
    """Whether the actor is an approver of ``stage`` now (whether the stage is still open is
    the caller's conditional update). One prebuilt statement, none for a party."""
    if is_party(actor, request):
        return False
    params = {
        "stage": stage.id,
        "escalated": bool(stage.escalated),
        "principals": listed(actor.principal_ids),
    }
    return bool(_MAY_DECIDE.in_session(session, params))


def pending_for(actor: Actor) -> Select[str]:
    """SQL: ids of the requests with an open stage the actor may decide (``may_decide``, and
    the stage open): the approvals waiting for the actor."""
    stage = ApprovalStage
    return (
        select(stage.request_id)
        .join(StageApprover, StageApprover.stage_id == stage.id)
        .join(R, R.id == stage.request_id)
        .where(
            open_clause(),
            StageApprover.principal_id.in_(actor.principal_ids),
            _decides(stage.escalated.is_(True)),
            not_party_clause(actor),
        )
    )


def is_approver_of(session: Session, actor: Actor, request_id: str) -> bool:
    """Whether the actor is named on any stage of the request, in any tier (it may then see
    the request and its approval, one at a time)."""
    params = {"request": request_id, "principals": listed(actor.principal_ids)}
    return bool(_APPROVER_OF.in_session(session, params))


def may_see_request(session: Session, actor: Actor, request: AssignmentRequest) -> bool:
    """A request is seen by its parties, by readers of requests in its catalog and by anyone
    named to approve one of its stages."""
    return (
        is_party(actor, request)
        or can(actor, Task.REQUEST_READ, request.catalog_id)
        or is_approver_of(session, actor, request.id)
    )


def may_see_approval(session: Session, actor: Actor, request: AssignmentRequest) -> bool:
    """A request's approval is seen by its approvers and by readers of requests in its
    catalog (its parties see the request, not the approval)."""
    return is_approver_of(session, actor, request.id) or can(
        actor, Task.REQUEST_READ, request.catalog_id
    )


# Asked on every decision and every read of an approval: built once per engine.
_MAY_DECIDE = HotSelect(
    lambda dialect: (
        select(StageApprover.principal_id)
        .where(
            StageApprover.stage_id == bindparam("stage"),
            _decides(bindparam("escalated", type_=Boolean)),
            among_param(dialect, StageApprover.principal_id, "principals"),
        )
        .limit(1)
    )
)
_APPROVER_OF = HotSelect(
    lambda dialect: (
        select(StageApprover.principal_id)
        .join(ApprovalStage, ApprovalStage.id == StageApprover.stage_id)
        .where(
            ApprovalStage.request_id == bindparam("request"),
            among_param(dialect, StageApprover.principal_id, "principals"),
        )
        .limit(1)
    )
)


class NamedRow(NamedTuple):
    """One row naming the actor (or a group it is in) on a stage of a request."""

    stage_index: int
    principal_id: str
    principal_type: str
    tier: str
    named_as: str | None
    decides: bool  # ``_decides`` for this row, as ``may_decide`` would answer for its stage


def named_on_request(session: Session, actor: Actor, request_id: str) -> list[NamedRow]:
    """Where the actor is named on the request's stages, each row with ``_decides`` read as a
    column: what ``explain`` says comes from the clause ``may_decide`` runs."""
    stage = ApprovalStage
    rows = session.execute(
        select(
            stage.stage_index,
            StageApprover.principal_id,
            StageApprover.principal_type,
            StageApprover.tier,
            StageApprover.named_as,
            _decides(stage.escalated.is_(True)).label("decides"),
        )
        .join(stage, stage.id == StageApprover.stage_id)
        .where(
            stage.request_id == request_id,
            StageApprover.principal_id.in_(actor.principal_ids),
        )
        .order_by(stage.stage_index, StageApprover.tier.desc(), StageApprover.principal_id)
    ).all()
    return [NamedRow(i, pid, ptype, tier, why, bool(d)) for i, pid, ptype, tier, why, d in rows]
