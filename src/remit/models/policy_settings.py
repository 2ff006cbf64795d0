"""A policy's settings as typed objects: what the domain reads instead of Graph keys.

The stored form of a policy's settings is Graph's JSON (``policies.document`` checks and
normalizes it, decision 0013). The models here read that form, camelCase keys as aliases, into
frozen objects with snake_case attributes; they sit with the table that holds the documents, so
every tier above it reads a policy typed (decision 0027). ``settings_of(policy)`` parses a
loaded row once and keeps the result on it until a column is replaced. A request's frozen
``schedule`` and an approval stage's copy of its policy stage are read the same way
(``Schedule``, ``stage_of``).

A setting missing from a document reads as ``.get`` read it before: a flag as false (or as its
Graph default where remit's domain assumed one), a list as empty, an object as its defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from remit.durations import format_duration, parse_duration
from remit.models.lifecycle import ApprovalStage, AssignmentRequest
from remit.models.policies import AssignmentPolicy
from remit.models.vocabulary import GRAPH


def _flag(value: Any) -> bool:
    # What a truth test on ``.get(key)`` read: null and absent are false.
    return bool(value)


def _duration(value: Any) -> Any:
    # ISO-8601 text as stored; absent or empty is no duration.
    if isinstance(value, str):
        return parse_duration(value) if value else None
    return value


def _listed(value: Any) -> Any:
    return value or ()


Flag = Annotated[bool, BeforeValidator(_flag)]
Duration = Annotated[
    timedelta | None,
    BeforeValidator(_duration),
    PlainSerializer(lambda d: None if d is None else format_duration(d), when_used="json"),
]


class Graph(BaseModel):
    """A Graph JSON object: camelCase keys read as snake_case attributes; unknown keys kept."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="allow"
    )

    def stored(self) -> dict[str, Any]:
        """The stored JSON again: the keys it was read from (plus any unknown ones)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Sent(Graph):
    """A Graph object as a client sent it (a request's schedule, an answer): read by its Graph
    keys only, so a snake_case key is an unknown property, as it always was."""

    model_config = ConfigDict(populate_by_name=False)


class SubjectSet(Graph):
    """A subjectSet (see ``policies.subjects`` for its kinds and what each holds)."""

    odata_type: str = Field("", alias="@odata.type")
    user_id: str | None = None
    group_id: str | None = None
    connected_organization_id: str | None = None
    service_principal_id: str | None = None
    membership_rule: str | None = None
    manager_level: int | None = None
    description: str | None = None

    @property
    def kind(self) -> str:
        """The short type name ("singleUser")."""
        return self.odata_type.removeprefix(GRAPH)


Subjects = Annotated[tuple[SubjectSet, ...], BeforeValidator(_listed)]


class StageSettings(Graph):
    """One approval stage (accessPackageApprovalStage)."""

    duration_before_automatic_denial: Duration = None
    is_approver_justification_required: Flag = False
    is_escalation_enabled: Flag = False
    duration_before_escalation: Duration = None
    primary_approvers: Subjects = ()
    fallback_primary_approvers: Subjects = ()
    escalation_approvers: Subjects = ()
    fallback_escalation_approvers: Subjects = ()


class ApprovalSettings(Graph):
    is_approval_required_for_add: Flag = False
    is_approval_required_for_update: Flag = False
    is_requestor_justification_required: Flag = False
    stages: Annotated[tuple[StageSettings, ...], BeforeValidator(_listed)] = ()


class RequestorSettings(Graph):
    enable_targets_to_self_add_access: Flag = False
    enable_targets_to_self_update_access: Flag = False
    enable_targets_to_self_remove_access: Flag = False
    allow_custom_assignment_schedule: Flag = False
    enable_on_behalf_requestors_to_add_access: Flag = False
    enable_on_behalf_requestors_to_update_access: Flag = False
    enable_on_behalf_requestors_to_remove_access: Flag = False
    on_behalf_requestors: Subjects = ()
    # True unless it says false, here and in ``policies.scope``'s SQL (decision 0027).
    accept_requests: Annotated[bool, BeforeValidator(lambda v: v is not False)] = True


class ExpirationType(StrEnum):
    NOT_SPECIFIED = "notSpecified"
    NO_EXPIRATION = "noExpiration"
    AFTER_DATE_TIME = "afterDateTime"
    AFTER_DURATION = "afterDuration"


class Expiration(Graph):
    """An expirationPattern: a policy's, a request's frozen one, an assignment's. The values
    stay as stored (ISO-8601 text): a schedule copies them through."""

    type: ExpirationType | None = None
    end_date_time: str | None = None
    duration: str | None = None


class Schedule(Graph):
    """A request's frozen schedule (entitlementManagementSchedule)."""

    start_date_time: str | None = None
    expiration: Annotated[Expiration, BeforeValidator(lambda v: v or {})] = Expiration()


class AutomaticRequestSettings(Graph):
    request_access_for_allowed_targets: Flag = True
    remove_access_when_target_leaves_allowed_targets: Flag = True
    grace_period_before_access_removal: Duration = None


class ReviewSettings(Graph):
    """Validated and stored; reviews do not run yet, so the lifecycle reads none of it."""

    is_enabled: Flag = False


class NotificationSettings(Graph):
    is_assignment_notification_disabled: Flag = False


class ExtensionReference(Graph):
    id: str


class ExtensionStageSetting(Graph):
    id: str | None = None
    stage: str
    custom_extension: ExtensionReference


class Choice(Graph):
    actual_value: str | None = None
    text: str | None = None


class Question(Graph):
    """An accessPackageQuestion: text input or multiple choice."""

    odata_type: str | None = Field(None, alias="@odata.type")
    id: str
    sequence: int | None = None
    text: str | None = None
    is_required: Flag = False
    is_single_line_question: Flag = False
    regex_pattern: str | None = None
    is_multiple_selection_allowed: Flag = False
    choices: Annotated[tuple[Choice, ...], BeforeValidator(_listed)] = ()


class PolicySettings(BaseModel):
    """Every settings document of one policy."""

    model_config = ConfigDict(frozen=True)

    specific_allowed_targets: Subjects = ()
    automatic: AutomaticRequestSettings | None = None
    expiration: Annotated[Expiration, BeforeValidator(lambda v: v or {})] = Expiration()
    requestor: Annotated[RequestorSettings, BeforeValidator(lambda v: v or {})]
    approval: Annotated[ApprovalSettings, BeforeValidator(lambda v: v or {})]
    review: ReviewSettings | None = None
    questions: Annotated[tuple[Question, ...], BeforeValidator(_listed)] = ()
    notification: Annotated[NotificationSettings, BeforeValidator(lambda v: v or {})]
    extensions: Annotated[tuple[ExtensionStageSetting, ...], BeforeValidator(_listed)] = ()

    def targets(self, kind: str) -> list[SubjectSet]:
        """The allowed targets of one kind ("connectedOrganizationMembers")."""
        return [t for t in self.specific_allowed_targets if t.kind == kind]


# The row's columns, in PolicySettings' order: a changed column (a PUT replaces them) re-parses.
_COLUMNS = {
    "specific_allowed_targets": "specific_allowed_targets",
    "automatic_request_settings": "automatic",
    "expiration": "expiration",
    "requestor_settings": "requestor",
    "request_approval_settings": "approval",
    "review_settings": "review",
    "questions": "questions",
    "notification_settings": "notification",
    "custom_extension_stage_settings": "extensions",
}
_CACHE = "_remit_settings"
M = TypeVar("M", bound=BaseModel)


def settings_of(policy: AssignmentPolicy) -> PolicySettings:
    """The policy's settings, parsed once per loaded row (and again after a column changes)."""
    raw = tuple(getattr(policy, column) for column in _COLUMNS)
    return _cached(
        policy,
        raw,
        lambda: PolicySettings.model_validate(dict(zip(_COLUMNS.values(), raw, strict=True))),
    )


def stage_of(stage: ApprovalStage) -> StageSettings:
    """An approval stage's settings: the policy's stage, frozen on the row when it was made."""
    return _cached(stage, (stage.settings,), lambda: StageSettings.model_validate(stage.settings))


def schedule_of(request: AssignmentRequest) -> Schedule:
    """A request's schedule, as it was stored (parsed once per loaded row, as ``settings_of``)."""
    return _cached(request, (request.schedule,), lambda: Schedule.model_validate(request.schedule))


def _cached(row: object, raw: tuple[Any, ...], parse: Callable[[], M]) -> M:
    """``parse()``, kept on ``row`` for as long as it holds the same column objects."""
    held = row.__dict__.get(_CACHE)
    if held is not None and all(a is b for a, b in zip(held[0], raw, strict=True)):
        found: M = held[1]
        return found
    parsed = parse()
    row.__dict__[_CACHE] = (raw, parsed)
    return parsed


def json_key(model: type[Graph], field: str) -> str:
    """The stored (Graph) key of a setting, for SQL that reads the stored document."""
    alias = model.model_fields[field].alias
    return alias if alias is not None else field
