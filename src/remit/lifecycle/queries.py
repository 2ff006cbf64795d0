"""Reading the lifecycle: requests, approvals and assignments, each list and each detail with its
visibility and its authorization.

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries),
and the use cases find the object they change through here too, so that "who may see it" is
written once. Who may see what:

- a request: its target and its requestor, readers of requests in its catalog and, one request
  at a time, anyone named to approve one of its stages (lists show them what awaits them through
  ``On.APPROVER`` instead);
- an approval: the approvers named on its stages, and readers of requests in its catalog;
- an assignment: its target, and readers of assignments in its catalog.

Anything else is ``NotFound``, never ``Forbidden``: a refusal would tell that it exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select

from remit import listing, validation
from remit.authz import relations
from remit.authz.decide import can
from remit.authz.tasks import Task
from remit.authz.visibility import catalog_filter
from remit.context import Ctx
from remit.errors import Invalid, NotFound
from remit.lifecycle import approvals
from remit.listing import F, ListOptions, Page
from remit.models.directory import User
from remit.models.lifecycle import ApprovalStage, Assignment, AssignmentRequest
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy
from remit.models.vocabulary import AssignmentState, StageStatus
from remit.packages import queries as package_queries
from remit.policies import queries as policy_queries
from remit.policies import scope

R = AssignmentRequest
A = Assignment
M = TypeVar("M", AccessPackage, Assignment, AssignmentPolicy, User)
V = TypeVar("V", AssignmentRequest, Assignment)

# What a list may be filtered and ordered on (Graph's property names).
REQUEST_FIELDS = {
    "id": F(R.id),
    "requestType": F(R.request_type),
    "state": F(R.state),
    "status": F(R.status),
    "createdDateTime": F(R.created_at),
    "completedDateTime": F(R.completed_at),
    "accessPackage/id": F(R.access_package_id),
    "assignment/id": F(R.assignment_id),
    "requestor/objectId": F(R.requestor_id),
    "requestor/id": F(R.requestor_id),
    "target/objectId": F(R.target_id),
    "target/id": F(R.target_id),
}
APPROVAL_FIELDS = {"id": F(R.id)}
ASSIGNMENT_FIELDS = {
    "id": F(A.id),
    "state": F(A.state),
    "status": F(A.status),
    "expiredDateTime": F(A.expired_at),
    "accessPackage/id": F(A.access_package_id),
    "assignmentPolicy/id": F(A.policy_id),
    "target/objectId": F(A.target_id),
    "target/id": F(A.target_id),
    "schedule/startDateTime": F(A.start_at),
    "schedule/expiration/endDateTime": F(A.expires_at),
}


class On(StrEnum):
    """How the actor is related to what it lists (Graph's ``filterByCurrentUser(on=...)``)."""

    TARGET = "target"
    CREATED_BY = "createdBy"
    APPROVER = "approver"


# ---------------------------------------------------------------- requests


def _visible(ctx: Ctx, rows: type[V], task: Task, own: ColumnElement[bool]) -> Select[V]:
    """The rows a list shows the actor: its own, and those of the catalogs where it may read
    them (``task``)."""
    return select(rows).where(or_(catalog_filter(ctx.actor, task, rows.catalog_id), own))


def visible_requests(ctx: Ctx) -> Select[AssignmentRequest]:
    """The requests a list shows the actor: its own (as target or requestor) and those of the
    catalogs where it may read requests."""
    return _visible(ctx, R, Task.REQUEST_READ, relations.party_clause(ctx.actor))


def _related(
    rows: type[V], on: str, ways: dict[str, Callable[[], ColumnElement[bool]]]
) -> Select[V]:
    """``rows`` related to the actor in the way ``on`` names, one of ``ways`` (its clause)."""
    clause = ways.get(on)
    if clause is None:
        named = [f"'{way}'" for way in ways]
        raise Invalid(f"on must be {', '.join(named[:-1])} or {named[-1]}", target="on")
    return select(rows).where(clause())


def _requests_of(ctx: Ctx, on: str) -> Select[AssignmentRequest]:
    me = ctx.actor.user_id
    return _related(
        R,
        on,
        {
            On.TARGET: lambda: R.target_id == me,
            On.CREATED_BY: lambda: R.requestor_id == me,
            On.APPROVER: lambda: R.id.in_(relations.pending_for(ctx.actor)),
        },
    )


def requests(ctx: Ctx, options: ListOptions) -> Page[AssignmentRequest]:
    """A page of the requests the actor may see."""
    stmt = visible_requests(ctx)
    return listing.page(ctx.session, stmt, key=R.id, fields=REQUEST_FIELDS, options=options)


def requests_for_current_user(ctx: Ctx, on: str, options: ListOptions) -> Page[AssignmentRequest]:
    """A page of the actor's requests: for it (``on`` 'target'), by it ('createdBy'), or waiting
    for its decision ('approver'); any other ``on`` is ``Invalid``."""
    stmt = _requests_of(ctx, on)
    return listing.page(ctx.session, stmt, key=R.id, fields=REQUEST_FIELDS, options=options)


def request(ctx: Ctx, request_id: str) -> AssignmentRequest:
    """One request the actor may see (an approver of one of its stages may too); any other id
    (one with a control character names none) is ``NotFound``."""
    found = ctx.session.get(R, request_id) if validation.usable_id(request_id) else None
    if found is None or not may_see_request(ctx, found):
        raise NotFound(f"assignment request {request_id} was not found")
    return found


def may_see_request(ctx: Ctx, found: AssignmentRequest) -> bool:
    """Whether the actor may see one request: as ``visible_requests``, or as one named to
    approve it (a list shows an approver only what waits for it: ``On.APPROVER``)."""
    return relations.may_see_request(ctx.session, ctx.actor, found)


def delivery_error(ctx: Ctx, found: AssignmentRequest) -> str | None:
    """A request's delivery error, for those who may read it (spec §1.2: not catalog readers,
    nor the requestor)."""
    if found.delivery_error and can(ctx.actor, Task.REQUEST_ERRORS_READ, found.catalog_id):
        return found.delivery_error
    return None


def newest_requests(
    ctx: Ctx,
    *,
    mine: bool = False,
    approver: bool = False,
    package_id: str | None = None,
    state: str | None = None,
    limit: int,
) -> list[AssignmentRequest]:
    """Up to ``limit`` requests the actor may see, newest first: ``mine`` by or for the actor,
    ``approver`` waiting for its decision, or those of one package, or in one state."""
    stmt = _requests_of(ctx, On.APPROVER) if approver else visible_requests(ctx)
    if mine:
        stmt = stmt.where(relations.party_clause(ctx.actor))
    if package_id is not None:
        stmt = stmt.where(R.access_package_id == package_id)
    if state is not None:
        stmt = stmt.where(R.state == state)
    stmt = stmt.order_by(R.created_at.desc(), R.id).limit(limit)
    return list(ctx.session.execute(stmt).scalars())


# ---------------------------------------------------------------- approvals


@dataclass(frozen=True)
class StageView:
    """One approval stage as the actor sees it: whether it is the actor's to decide now, and the
    name of whoever decided it."""

    stage: ApprovalStage
    assigned_to_me: bool
    reviewer_name: str | None


@dataclass(frozen=True)
class Approval:
    """A request's approval: its stages, in order."""

    request: AssignmentRequest
    stages: list[StageView]


def approval_stages(ctx: Ctx, request_id: str) -> tuple[AssignmentRequest, list[ApprovalStage]]:
    """A request whose approval the actor may see (as one of its approvers, or a reader of the
    catalog's requests), and its stages in order; a request without stages has no approval."""
    found = ctx.session.get(R, request_id) if validation.usable_id(request_id) else None
    if found is None or not relations.may_see_approval(ctx.session, ctx.actor, found):
        raise NotFound(f"approval {request_id} was not found")
    stages = approvals.stages_of(ctx, found.id)
    if not stages:
        raise NotFound(f"approval {request_id} was not found")
    return found, stages


def approval(ctx: Ctx, request_id: str) -> Approval:
    """One approval the actor may see (``approval_stages``), each stage as the actor sees it."""
    return _views(ctx, [approval_stages(ctx, request_id)])[0]


def approval_stage(ctx: Ctx, request_id: str, stage_id: str) -> StageView:
    """One stage of an approval the actor may see."""
    found = next((v for v in approval(ctx, request_id).stages if v.stage.id == stage_id), None)
    if found is None:
        raise NotFound(f"approval stage {stage_id} was not found")
    return found


def approvals_for_current_user(ctx: Ctx, options: ListOptions) -> Page[Approval]:
    """A page of the approvals waiting for the actor's decision."""
    stmt = _requests_of(ctx, On.APPROVER)
    found = listing.page(ctx.session, stmt, key=R.id, fields=APPROVAL_FIELDS, options=options)
    stages: dict[str, list[ApprovalStage]] = {r.id: [] for r in found.items}
    if stages:
        for stage in ctx.session.execute(
            select(ApprovalStage)
            .where(ApprovalStage.request_id.in_(stages))
            .order_by(ApprovalStage.request_id, ApprovalStage.stage_index)
        ).scalars():
            stages[stage.request_id].append(stage)
    views = _views(ctx, [(r, stages[r.id]) for r in found.items])
    return Page(views, found.count, found.next_skip, found.next_skiptoken)


def _views(
    ctx: Ctx, found: Sequence[tuple[AssignmentRequest, list[ApprovalStage]]]
) -> list[Approval]:
    """Each request's stages as the actor sees them, with one read for the reviewers' names."""
    reviewers = {s.reviewed_by for _, stages in found for s in stages if s.reviewed_by}
    names = {u.id: u.display_name for u in _by_id(ctx, User, reviewers).values()}
    return [
        Approval(
            r,
            [
                StageView(
                    s,
                    s.status == StageStatus.IN_PROGRESS
                    and relations.may_decide(ctx.session, ctx.actor, r, s),
                    names.get(s.reviewed_by) if s.reviewed_by else None,
                )
                for s in stages
            ],
        )
        for r, stages in found
    ]


# ---------------------------------------------------------------- assignments


def visible_assignments(ctx: Ctx) -> Select[Assignment]:
    """The assignments the actor may see: its own, and those of the catalogs where it may read
    assignments."""
    return _visible(ctx, A, Task.ASSIGNMENT_READ, relations.holder_clause(ctx.actor))


def _assignments_of(ctx: Ctx, on: str) -> Select[Assignment]:
    me = ctx.actor.user_id
    return _related(
        A,
        on,
        {
            On.TARGET: lambda: A.target_id == me,
            On.CREATED_BY: lambda: A.request_id.in_(select(R.id).where(R.requestor_id == me)),
        },
    )


def assignments(ctx: Ctx, options: ListOptions) -> Page[Assignment]:
    """A page of the assignments the actor may see."""
    stmt = visible_assignments(ctx)
    return listing.page(ctx.session, stmt, key=A.id, fields=ASSIGNMENT_FIELDS, options=options)


def assignments_for_current_user(ctx: Ctx, on: str, options: ListOptions) -> Page[Assignment]:
    """A page of the actor's assignments: those it holds (``on`` 'target'), or those it asked
    for ('createdBy'); any other ``on`` is ``Invalid``."""
    stmt = _assignments_of(ctx, on)
    return listing.page(ctx.session, stmt, key=A.id, fields=ASSIGNMENT_FIELDS, options=options)


def assignment(ctx: Ctx, assignment_id: str) -> Assignment:
    """One assignment the actor may see; any other id is ``NotFound``."""
    found = ctx.session.get(A, assignment_id) if validation.usable_id(assignment_id) else None
    if found is None or not (
        relations.holds(ctx.actor, found) or can(ctx.actor, Task.ASSIGNMENT_READ, found.catalog_id)
    ):
        raise NotFound(f"assignment {assignment_id} was not found")
    return found


@dataclass(frozen=True)
class PackagePair:
    """Two access packages whose common holders the actor may list (``additional_access``)."""

    package: AccessPackage
    incompatible: AccessPackage


def package_pair(ctx: Ctx, package_id: str, incompatible_id: str) -> PackagePair:
    """The packages of an additionalAccess report: the actor must read the assignments of the
    first; the second need only exist (the pair need not be configured as incompatible)."""
    usable = validation.usable_id(package_id)
    package = ctx.session.get(AccessPackage, package_id) if usable else None
    if package is None or not can(ctx.actor, Task.ASSIGNMENT_READ, package.catalog_id):
        raise NotFound(f"access package {package_id} was not found")
    usable = validation.usable_id(incompatible_id)
    other = ctx.session.get(AccessPackage, incompatible_id) if usable else None
    if other is None:
        raise NotFound(f"access package {incompatible_id} was not found")
    return PackagePair(package, other)


def additional_access(
    ctx: Ctx, package_id: str, incompatible_id: str, options: ListOptions
) -> Page[Assignment]:
    """Spec §4.3: a page of the active assignments to the first package whose holders also hold
    the second (``package_pair`` says who may ask)."""
    pair = package_pair(ctx, package_id, incompatible_id)
    both = select(A.target_id).where(A.access_package_id == pair.incompatible.id, _active(ctx))
    stmt = select(A).where(
        A.access_package_id == pair.package.id, _active(ctx), A.target_id.in_(both)
    )
    return listing.page(ctx.session, stmt, key=A.id, fields=ASSIGNMENT_FIELDS, options=options)


def newest_assignments(
    ctx: Ctx,
    *,
    mine: bool = False,
    package_id: str | None = None,
    target_id: str | None = None,
    state: str | None = None,
    limit: int,
) -> list[Assignment]:
    """Up to ``limit`` assignments the actor may see, newest first: ``mine`` those it holds, or
    those of one package, of one assignee, or in one state (one past its end counts as
    expired, as it reads)."""
    stmt = _assignments_of(ctx, On.TARGET) if mine else visible_assignments(ctx)
    if package_id is not None:
        stmt = stmt.where(A.access_package_id == package_id)
    if target_id is not None:
        stmt = stmt.where(A.target_id == target_id)
    if state is not None:
        stmt = stmt.where(_state_is(ctx, state))
    stmt = stmt.order_by(A.created_at.desc(), A.id).limit(limit)
    return list(ctx.session.execute(stmt).scalars())


def _active(ctx: Ctx) -> ColumnElement[bool]:
    return and_(A.active_key.is_not(None), or_(A.expires_at.is_(None), A.expires_at > ctx.now))


def _state_is(ctx: Ctx, state: str) -> ColumnElement[bool]:
    lapsed = and_(A.active_key.is_not(None), A.expires_at.is_not(None), A.expires_at <= ctx.now)
    if state == AssignmentState.EXPIRED:
        return or_(A.state == AssignmentState.EXPIRED, lapsed)
    return and_(A.state == state, not_(lapsed))


# ---------------------------------------------------------------- what they refer to


def packages_of(
    ctx: Ctx, rows: Iterable[AssignmentRequest | Assignment]
) -> dict[str, AccessPackage]:
    """The packages of requests or assignments the actor has read (and so may see)."""
    return _by_id(ctx, AccessPackage, {r.access_package_id for r in rows})


def people_of(ctx: Ctx, rows: Iterable[AssignmentRequest | Assignment]) -> dict[str, User]:
    """The targets of requests or assignments the actor has read, and the requests' requestors."""
    ids: set[str | None] = set()
    for r in rows:
        ids.add(r.target_id)
        if isinstance(r, AssignmentRequest):
            ids.add(r.requestor_id)
    return _by_id(ctx, User, ids)


def assignments_of(ctx: Ctx, rows: Iterable[AssignmentRequest]) -> dict[str, Assignment]:
    """The assignments that requests the actor has read created or act on."""
    return _by_id(ctx, Assignment, {r.assignment_id for r in rows})


def policies_of(
    ctx: Ctx, rows: Iterable[AssignmentRequest | Assignment]
) -> dict[str, AssignmentPolicy]:
    """The policies of requests or assignments the actor has read."""
    return _by_id(ctx, AssignmentPolicy, {r.policy_id for r in rows})


def _by_id(ctx: Ctx, model: type[M], ids: Iterable[str | None]) -> dict[str, M]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    stmt = select(model).where(model.id.in_(wanted))
    return {o.id: o for o in ctx.session.execute(stmt).scalars()}


# ---------------------------------------------------------------- finding by name


def find_package_id(ctx: Ctx, name_or_id: str, *, requesting: bool = False) -> str:
    """A package by id or display name (any case), among the packages of the actor's catalogs
    and those it may request, so that a name reveals nothing. ``requesting``: an id found in
    neither is returned as given (perhaps a hidden package's: the request decides)."""
    p = AccessPackage
    findable = or_(
        p.id.in_(package_queries.visible_packages(ctx).with_only_columns(p.id)),
        p.id.in_(policy_queries.requestable(ctx).with_only_columns(p.id)),
    )
    named = or_(p.id == name_or_id, func.lower(p.display_name) == name_or_id.lower())
    found = ctx.session.execute(select(p.id).where(findable, named).order_by(p.id)).scalars().all()
    if name_or_id in found:
        return name_or_id
    if len(found) == 1:
        return found[0]
    if found:
        raise Invalid(
            f"several access packages are named {name_or_id!r}: {', '.join(found)}; give the id"
        )
    if requesting:
        return name_or_id
    raise NotFound(f"access package {name_or_id!r} was not found")


def findable_policies(
    ctx: Ctx, package_id: str, *, requestable: bool = True
) -> list[AssignmentPolicy]:
    """The package's policies the actor may read, oldest first, then (``requestable``) those
    it may request through for itself."""
    seen = list(
        ctx.session.execute(
            policy_queries.visible_policies(ctx)
            .where(AssignmentPolicy.access_package_id == package_id)
            .order_by(AssignmentPolicy.created_at, AssignmentPolicy.id)
        ).scalars()
    )
    me = ctx.session.get(User, ctx.actor.user_id) if requestable else None
    if me is not None:
        known = {p.id for p in seen}
        seen += [
            p
            for p in scope.requestable_policies(ctx.session, package_id, me, ctx.actor.group_ids)
            if p.id not in known
        ]
    return seen
