"""``remit request | approve | deny | assignment``: the access lifecycle from the command line.

Each command calls the lifecycle use cases (``lifecycle.requests``, ``lifecycle.operations``) and
reads through ``lifecycle.queries``, so ``--as UPN`` meets exactly the authorization of the API.
Packages, policies and questions may be
named by display name or id; a name is looked up only among what the acting identity can find
(packages of its catalogs, or packages it may request), so a lookup reveals nothing. An id is
handed to the use case unchanged: a hidden package is requested by its id, and the use case
decides what the actor may see.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer

from remit.cli.common import ACTING_AS, fail, plain, say, table, unit, user_id
from remit.context import Ctx
from remit.errors import Conflict, DomainError, Invalid, NotFound
from remit.lifecycle import operations as ops
from remit.lifecycle import queries, requests
from remit.lifecycle.assignments import lapsed
from remit.lifecycle.schedule import iso, parse_instant
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.policy_settings import ExpirationType, Schedule
from remit.models.vocabulary import (
    AssignmentState,
    RequestState,
    RequestType,
    ReviewResult,
    StageStatus,
)

request_app = typer.Typer(help="Access package assignment requests.", no_args_is_help=True)
assignment_app = typer.Typer(help="Access package assignments.", no_args_is_help=True)

# What --state takes, in the order --help and its error message list them.
REQUEST_STATES = (
    RequestState.SUBMITTED,
    RequestState.PENDING_APPROVAL,
    RequestState.SCHEDULED,
    RequestState.DELIVERING,
    RequestState.DELIVERED,
    RequestState.PARTIALLY_DELIVERED,
    RequestState.DELIVERY_FAILED,
    RequestState.DENIED,
    RequestState.CANCELED,
)
ASSIGNMENT_STATES = tuple(AssignmentState)
# The request body's vocabulary, as the CLI spells it, in the use case's messages.
CLI_WORDS = {
    "assignment.assignmentPolicyId": "--policy",
    "assignment.accessPackageId": "--package",
    "assignment.targetId or assignment.target.email": "--for",
}

T = TypeVar("T")
W = TypeVar("W", bound=str)


def register(app: typer.Typer) -> None:
    """Add ``request``, ``assignment``, ``approve`` and ``deny`` to the ``remit`` command."""
    app.add_typer(request_app, name="request")
    app.add_typer(assignment_app, name="assignment")
    app.command("approve")(approve)
    app.command("deny")(deny)


# ---------------------------------------------------------------- options and look-ups


def _at_most_one(**given: object) -> None:
    named = [f"--{name}" for name, value in given.items() if value]
    if len(named) > 1:
        fail(f"{' and '.join(named)} cannot be combined; give one of them", 2)


def _needs_persona(option: str) -> None:
    if ACTING_AS["upn"] is None:
        fail(f"{option} needs --as UPN: the operator has no requests or access of its own", 2)


def _choice(value: str | None, allowed: Sequence[W], option: str) -> W | None:
    if value is None:
        return None
    found = next((a for a in allowed if a.lower() == value.strip().lower()), None)
    if found is None:
        fail(f"{option} must be one of: {', '.join(allowed)}", 2)
    return found


def _instant(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return iso(parse_instant(value, option))
    except Invalid as exc:
        fail(exc.message, 2)


def _answer_pairs(specs: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip():
            fail(f"--answer {spec!r}: write it as QUESTION=VALUE (question id or text)", 2)
        pairs.append((key.strip(), value))
    return pairs


def _cli_words(call: Callable[[], T]) -> T:
    """Run a use case; its messages name CLI options where they name request-body fields."""
    try:
        return call()
    except DomainError as exc:
        for field, option in CLI_WORDS.items():
            exc.message = exc.message.replace(field, option)
        raise


def _policy_id(ctx: Ctx, package_id: str, name_or_id: str) -> str:
    wanted = name_or_id.lower()
    found = [
        p
        for p in queries.findable_policies(ctx, package_id)
        if p.id == name_or_id or p.display_name.lower() == wanted
    ]
    if len(found) > 1:
        raise Invalid(
            f"several policies are named {name_or_id!r}: {', '.join(p.id for p in found)}; "
            "give the id"
        )
    return found[0].id if found else name_or_id  # the request names what is wrong with it


def _direct_policy(ctx: Ctx, package_id: str) -> str | None:
    """The one policy an administrator can assign through, or None to let the request say."""
    usable = [
        p
        for p in queries.findable_policies(ctx, package_id, requestable=False)
        if p.auto_assignment_key is None
    ]
    if len(usable) > 1:
        raise Invalid(
            "the access package has several policies; choose one with --policy: "
            + ", ".join(f"{p.id} ({p.display_name})" for p in usable)
        )
    return usable[0].id if usable else None


def _answers(
    ctx: Ctx, package_id: str, policy_id: str | None, pairs: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Graph answers, each question found by id or text in the policy (or, without --policy,
    in any of the package's policies the actor can read or request through)."""
    if not pairs:
        return []
    policies = [p for p in queries.findable_policies(ctx, package_id) if policy_id in (None, p.id)]
    out = []
    for key, value in pairs:
        ids = {
            q["id"]
            for p in policies
            for q in p.questions
            if key == q["id"] or key.lower() == str(q.get("text") or "").strip().lower()
        }
        if len(ids) > 1:
            raise Invalid(
                f"--answer {key!r}: several questions match; give the question id or --policy"
            )
        if not ids and policies:
            asker = "the policy asks" if policy_id else "no policy of the access package asks"
            raise Invalid(f"--answer {key!r}: {asker} such a question")
        qid = ids.pop() if ids else key
        out.append({"answeredQuestion": {"id": qid}, "value": value})
    return out


def _target(ctx: Ctx, who: str | None) -> tuple[RequestType, str | None, str | None]:
    """(request type, target id, target email) for ``--for``."""
    if who is None:
        return RequestType.USER_ADD, None, None
    try:
        found: str | None = user_id(ctx.session, who)
    except NotFound:
        found = None
    if found is not None and found == ctx.actor.user_id:
        return RequestType.USER_ADD, None, None
    if found is not None:
        return RequestType.ADMIN_ADD, found, None
    if "@" in who:
        return RequestType.ADMIN_ADD, None, who  # someone outside the directory, by email
    raise NotFound(f"no user {who}")


# ---------------------------------------------------------------- rendering


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _upns(ctx: Ctx, rows: Sequence[AssignmentRequest | Assignment]) -> dict[str, str]:
    """The UPNs of the rows' targets (and requestors)."""
    return {u.id: u.user_principal_name for u in queries.people_of(ctx, rows).values()}


def _package_names(ctx: Ctx, rows: Sequence[AssignmentRequest | Assignment]) -> dict[str, str]:
    return {p.id: p.display_name for p in queries.packages_of(ctx, rows).values()}


def _schedule_text(stored: dict[str, Any]) -> tuple[str, str]:
    """(start, end) of a request's schedule, in words."""
    schedule = Schedule.model_validate(stored)
    expiration = schedule.expiration
    if expiration.type == ExpirationType.AFTER_DURATION:
        end = f"after {expiration.duration}"
    elif expiration.type == ExpirationType.AFTER_DATE_TIME:
        end = str(expiration.end_date_time)
    else:
        end = "never" if expiration.type == ExpirationType.NO_EXPIRATION else ""
    return schedule.start_date_time or "when approved", end


# ---------------------------------------------------------------- requests


@request_app.command("submit")
def request_submit(
    package: Annotated[str, typer.Option(help="access package name or id")],
    policy: Annotated[str | None, typer.Option(help="policy name or id")] = None,
    for_: Annotated[
        str | None,
        typer.Option(
            "--for",
            help="assign to this user (UPN or id) or email address; default: yourself (--as)",
        ),
    ] = None,
    justification: Annotated[str | None, typer.Option(help="why the access is needed")] = None,
    answer: Annotated[
        list[str] | None,
        typer.Option(help="QUESTION_ID_OR_TEXT=VALUE, one per question (repeatable)"),
    ] = None,
    start: Annotated[str | None, typer.Option(help="ISO-8601 start, if the policy allows")] = None,
    end: Annotated[str | None, typer.Option(help="ISO-8601 end, if the policy allows")] = None,
    on_behalf: Annotated[
        bool,
        typer.Option(
            "--on-behalf",
            help="with --for: request as their manager, under a policy that lets managers "
            "request for their direct reports (approval as the policy says)",
        ),
    ] = False,
) -> None:
    """Request an access package for yourself (userAdd), for a direct report as their manager
    (--for UPN --on-behalf), or assign it to someone else with --for (adminAdd). Prints the
    request id and its state."""
    if ACTING_AS["upn"] is None and for_ is None:
        fail(
            "the operator holds no access of its own: request as a user with --as UPN, "
            "or assign someone with --for",
            2,
        )
    if on_behalf and (for_ is None or ACTING_AS["upn"] is None):
        fail("--on-behalf needs --for UPN (your direct report) and --as UPN (you, the manager)", 2)
    pairs = _answer_pairs(answer or [])
    schedule: dict[str, Any] | None = None
    if start is not None or end is not None:
        schedule = {"startDateTime": _instant(start, "--start")}
        if end is not None:
            schedule["expiration"] = {
                "type": "afterDateTime",
                "endDateTime": _instant(end, "--end"),
            }
    with unit() as ctx:
        kind, target_id, target_email = _target(ctx, for_)
        if on_behalf:
            if target_id is None:
                raise Invalid(
                    "--on-behalf needs --for naming one of your direct reports in the directory"
                )
            kind = RequestType.USER_ADD  # a request by the target's manager, as the API takes it
        package_id = queries.find_package_id(ctx, package, requesting=True)
        if policy is not None:
            policy_id: str | None = _policy_id(ctx, package_id, policy)
        elif kind == RequestType.ADMIN_ADD:
            policy_id = _direct_policy(ctx, package_id)
        else:
            policy_id = None  # the request picks the one policy that lets you, or says
        answers = _answers(ctx, package_id, policy_id, pairs)
        created = _cli_words(
            lambda: requests.submit(
                ctx,
                kind=kind,
                package_id=package_id,
                policy_id=policy_id,
                target_id=target_id,
                target_email=target_email,
                justification=justification,
                answers=answers,
                schedule=schedule,
            )
        )
        line = f"{created.id} {created.state}"
    plain(line)


@request_app.command("list")
def request_list(
    mine: Annotated[bool, typer.Option("--mine", help="requests by you or for you")] = False,
    approver: Annotated[
        bool, typer.Option("--approver", help="requests waiting for your decision")
    ] = False,
    package: Annotated[str | None, typer.Option(help="access package name or id")] = None,
    state: Annotated[str | None, typer.Option(help=f"one of {', '.join(REQUEST_STATES)}")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Requests you may see, newest first."""
    _at_most_one(mine=mine, approver=approver, package=package)
    if mine or approver:
        _needs_persona("--mine" if mine else "--approver")
    wanted = _choice(state, REQUEST_STATES, "--state")
    with unit(write=False) as ctx:
        rows = queries.newest_requests(
            ctx,
            mine=mine,
            approver=approver,
            package_id=None if package is None else queries.find_package_id(ctx, package),
            state=wanted,
            limit=limit,
        )
        users = _upns(ctx, rows)
        names = _package_names(ctx, rows)
        table(
            "Assignment requests",
            ["Id", "Type", "State", "Package", "Target", "Requestor", "Created"],
            [
                (
                    x.id,
                    x.request_type,
                    x.state,
                    names.get(x.access_package_id, x.access_package_id),
                    users.get(x.target_id or "", x.target_id or x.target_email),
                    users.get(x.requestor_id, x.requestor_id) if x.requestor_id else "(system)",
                    _when(x.created_at),
                )
                for x in rows
            ],
        )


@request_app.command("show")
def request_show(request_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """One request, with its approval stages when you may see them."""
    with unit(write=False) as ctx:
        found = queries.request(ctx, request_id)
        try:
            staged = queries.approval(ctx, found.id).stages
        except NotFound:
            staged = []  # no approval, or not yours to see (the API answers the same)
        users = _upns(ctx, [found])
        names = _package_names(ctx, [found])
        policy = queries.policies_of(ctx, [found]).get(found.policy_id or "")
        begins, ends = _schedule_text(found.schedule or {})
        rows: list[tuple[str, Any]] = [
            ("Id", found.id),
            ("Type", found.request_type),
            ("State", f"{found.state} ({found.status})"),
            ("Package", f"{names.get(found.access_package_id, '')} ({found.access_package_id})"),
            ("Policy", f"{policy.display_name} ({policy.id})" if policy else found.policy_id),
            ("Target", users.get(found.target_id or "", found.target_id or found.target_email)),
            (
                "Requestor",
                users.get(found.requestor_id, found.requestor_id)
                if found.requestor_id
                else "(system)",
            ),
            ("Created", _when(found.created_at)),
            ("Completed", _when(found.completed_at)),
            ("Justification", found.justification),
            ("Starts", begins),
            ("Ends", ends),
            ("Assignment", found.assignment_id),
        ]
        if found.state == RequestState.PENDING_APPROVAL and found.current_stage is not None:
            rows.append(("Waiting for", f"approval stage {found.current_stage + 1}"))
        rows += [
            (
                f"Answer: {(a.get('answeredQuestion') or {}).get('text') or ''}",
                a.get("displayValue") or a.get("value"),
            )
            for a in found.answers or []
        ]
        error = queries.delivery_error(ctx, found)
        if error:
            rows.append(("Delivery error", error))
        table(f"Request {found.id}", ["Field", "Value"], rows)
        if staged:
            table(
                "Approval stages",
                ["Stage", "Status", "Result", "Reviewed by", "Reviewed", "Justification", "Yours"],
                [
                    (
                        f"Stage {view.stage.stage_index + 1}",
                        view.stage.status,
                        view.stage.review_result,
                        view.reviewer_name,
                        _when(view.stage.reviewed_at),
                        view.stage.justification,
                        "yes" if view.assigned_to_me else "",
                    )
                    for view in staged
                ],
            )


@request_app.command("cancel")
def request_cancel(request_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel a request that has not completed."""
    _on_request(requests.cancel, request_id)


@request_app.command("reprocess")
def request_reprocess(request_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Deliver again a request whose delivery failed or was partial (within 7 days)."""
    _on_request(requests.reprocess_request, request_id)


def _on_request(use_case: Callable[[Ctx, str], AssignmentRequest], request_id: str) -> None:
    """Run ``use_case`` on the request, then say the state it left the request in."""
    with unit() as ctx:
        found = use_case(ctx, request_id)
        line = f"request {found.id} {found.state}"
    say(line)


# ---------------------------------------------------------------- approvals


RequestId = Annotated[str, typer.Argument(metavar="REQUEST_ID")]
Justification = Annotated[str | None, typer.Option(help="the reason for your decision")]


def approve(request_id: RequestId, justification: Justification = None) -> None:
    """Approve the stage of a request that waits for your decision."""
    _decide(request_id, ReviewResult.APPROVE, justification)


def deny(request_id: RequestId, justification: Justification = None) -> None:
    """Deny a request at the stage that waits for your decision."""
    _decide(request_id, ReviewResult.DENY, justification)


def _decide(request_id: str, result: ReviewResult, justification: str | None) -> None:
    with unit() as ctx:
        request, stages = queries.approval_stages(ctx, request_id)
        stage = next((s for s in stages if s.status == StageStatus.IN_PROGRESS), None)
        if stage is None:
            raise Conflict(
                f"request {request.id} has no stage waiting for a decision (it is {request.state})"
            )
        outcome = ops.decide_stage(
            ctx, request.id, stage.id, result=result, justification=justification
        )
        # What the decision left pending goes to the database first: a refresh would
        # discard it (the approval writes its rows in one flush, at commit).
        ctx.session.flush()
        ctx.session.refresh(request)
        if outcome == "next stage":
            line = (
                f"request {request.id}: stage {stage.stage_index + 1} of {len(stages)} approved; "
                f"stage {stage.stage_index + 2} is next"
            )
        elif outcome == "approved":
            line = f"request {request.id} approved; it is {request.state}"
        else:
            line = f"request {request.id} denied"
    say(line)


# ---------------------------------------------------------------- assignments


@assignment_app.command("list")
def assignment_list(
    mine: Annotated[bool, typer.Option("--mine", help="your own assignments")] = False,
    package: Annotated[str | None, typer.Option(help="access package name or id")] = None,
    user: Annotated[str | None, typer.Option(help="the assignee's UPN or id")] = None,
    state: Annotated[
        str | None, typer.Option(help=f"one of {', '.join(ASSIGNMENT_STATES)}")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Assignments you may see, newest first (one past its end shows as expired)."""
    _at_most_one(mine=mine, package=package, user=user)
    if mine:
        _needs_persona("--mine")
    wanted = _choice(state, ASSIGNMENT_STATES, "--state")
    with unit(write=False) as ctx:
        rows = queries.newest_assignments(
            ctx,
            mine=mine,
            package_id=None if package is None else queries.find_package_id(ctx, package),
            target_id=None if user is None else user_id(ctx.session, user),
            state=wanted,
            limit=limit,
        )
        users = _upns(ctx, rows)
        names = _package_names(ctx, rows)
        table(
            "Assignments",
            ["Id", "Package", "Target", "State", "Start", "End"],
            [
                (
                    x.id,
                    names.get(x.access_package_id, x.access_package_id),
                    users.get(x.target_id, x.target_id),
                    AssignmentState.EXPIRED if lapsed(x, ctx.now) else x.state,
                    _when(x.start_at),
                    _when(x.expired_at if x.active_key is None else x.expires_at) or "never",
                )
                for x in rows
            ],
        )


def _own(ctx: Ctx, assignment_id: str) -> bool:
    """Whether the assignment is the actor's own (it chooses the request type only: the
    request itself checks that the actor may see and change the assignment)."""
    try:
        return queries.assignment(ctx, assignment_id).target_id == ctx.actor.user_id
    except NotFound:
        return False


@assignment_app.command("remove")
def assignment_remove(
    assignment_id: Annotated[str, typer.Argument(metavar="ID")],
    justification: Annotated[str | None, typer.Option(help="why it is removed")] = None,
) -> None:
    """End an assignment: your own (userRemove, if the policy allows) or, as an assignment
    manager, anyone's (adminRemove). Prints the removal request's id and state."""
    _change(assignment_id, RequestType.USER_REMOVE, RequestType.ADMIN_REMOVE, justification)


@assignment_app.command("extend")
def assignment_extend(
    assignment_id: Annotated[str, typer.Argument(metavar="ID")],
    end: Annotated[
        str | None, typer.Option(help="ISO-8601 end; default: a fresh period of the policy")
    ] = None,
    justification: Annotated[str | None, typer.Option(help="why it is extended")] = None,
) -> None:
    """Extend an assignment: your own (userExtend, perhaps with approval) or, as an assignment
    manager, anyone's (adminUpdate). Prints the request's id and state."""
    new_end = _instant(end, "--end")
    schedule = (
        {"expiration": {"type": "afterDateTime", "endDateTime": new_end}} if new_end else None
    )
    _change(
        assignment_id, RequestType.USER_EXTEND, RequestType.ADMIN_UPDATE, justification, schedule
    )


def _change(
    assignment_id: str,
    own: RequestType,
    anyones: RequestType,
    justification: str | None,
    schedule: dict[str, Any] | None = None,
) -> None:
    """Request a change to an assignment, as ``own`` when it is the actor's and as ``anyones``
    otherwise; prints the request's id and state."""
    with unit() as ctx:
        created = requests.submit(
            ctx,
            kind=own if _own(ctx, assignment_id) else anyones,
            assignment_id=assignment_id,
            justification=justification,
            schedule=schedule,
        )
        line = f"{created.id} {created.state}"
    plain(line)


@assignment_app.command("reprocess")
def assignment_reprocess(assignment_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Apply every resource role of an assignment again (repairs changes made outside remit)."""
    with unit() as ctx:
        found = ops.reprocess_assignment(ctx, assignment_id)
        line = f"assignment {found.id}: its resource roles are being applied again"
    say(line)
