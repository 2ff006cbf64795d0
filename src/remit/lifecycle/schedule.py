"""Schedules: when access starts and ends (spec §5.7), frozen on the request when submitted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from remit.durations import parse_duration
from remit.errors import Invalid
from remit.models.policy_settings import Expiration, ExpirationType, Schedule, Sent

MAX_DAYS = 3660
AFTER_DATE_TIME = ExpirationType.AFTER_DATE_TIME
AFTER_DURATION = ExpirationType.AFTER_DURATION
NO_EXPIRATION = ExpirationType.NO_EXPIRATION


def parse_instant(value: Any, target: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{target} must be an ISO-8601 date and time", target=target)
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        found = datetime.fromisoformat(text)
        if found.tzinfo is None:
            found = found.replace(tzinfo=UTC)
        found = found.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Invalid(
            f"{target} is not an ISO-8601 date and time: {value!r}", target=target
        ) from None
    return found


def later(start: datetime, delta: timedelta, target: str) -> datetime:
    """``start + delta``, or Invalid when that lies beyond the calendar."""
    try:
        return start + delta
    except OverflowError:
        raise Invalid(f"{target} reaches beyond the year 9999", target=target) from None


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Asked(Sent):
    """A schedule as a request body gives it: each value is checked where it is read."""

    start_date_time: Any = None
    expiration: Any = None


class _AskedEnd(Sent):
    end_date_time: Any = None
    duration: Any = None


def asked_end(requested: dict[str, Any]) -> tuple[_Asked, _AskedEnd]:
    """A requested schedule, and its expiration (which must be an object if given)."""
    asked = _Asked.model_validate(requested)
    expiration = asked.expiration or {}
    if not isinstance(expiration, dict):
        raise Invalid("schedule.expiration must be an object", target="schedule.expiration")
    return asked, _AskedEnd.model_validate(expiration)


def _requested(
    requested: dict[str, Any], *, allow_custom: bool, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """The start and end a requestor asked for (either may be absent)."""
    if not allow_custom:
        raise Invalid(
            "this policy does not let requestors choose their own schedule",
            target="schedule",
            code="CustomScheduleNotAllowed",
        )
    asked = _Asked.model_validate(requested)
    start = (
        parse_instant(asked.start_date_time, "schedule.startDateTime")
        if asked.start_date_time
        else None
    )
    expiration = asked_end(requested)[1]
    end = None
    if expiration.end_date_time:
        end = parse_instant(expiration.end_date_time, "schedule.expiration.endDateTime")
    elif expiration.duration:
        end = later(
            start or now,
            parse_duration(str(expiration.duration)),
            "schedule.expiration.duration",
        )
    return start, end


def _end(expiration: Expiration, begin: datetime, target: str) -> datetime | None:
    """When an expiration ends something that begins at ``begin`` (None: never)."""
    if expiration.type == AFTER_DURATION and expiration.duration:
        return later(begin, parse_duration(expiration.duration), "expiration.duration")
    if expiration.type == AFTER_DATE_TIME and expiration.end_date_time:
        return parse_instant(expiration.end_date_time, target)
    return None


def frozen_schedule(
    policy_expiration: Expiration,
    requested: dict[str, Any] | None,
    *,
    allow_custom: bool,
    now: datetime,
) -> dict[str, Any]:
    """The schedule a request carries: requested start/end if allowed, clamped to the policy.

    Where the requested end lies beyond what the policy allows, the policy wins (spec §5.7,
    "(unclear)": we clamp). The result is stored on the request; policy edits made later do not
    change it.
    """
    start, end = (
        _requested(requested, allow_custom=allow_custom, now=now) if requested else (None, None)
    )
    begin = max(start or now, now)
    if end is not None and end <= begin:
        raise Invalid("the requested end is not after the start", target="schedule")
    policy_end = _end(policy_expiration, begin, "policy expiration")
    if policy_end is not None and policy_end <= begin:
        raise Invalid(
            "the policy's end date has passed: no new assignments can start",
            target="schedule",
            code="PolicyExpired",
        )
    if end is not None and (policy_end is None or end < policy_end):
        expiration = ends_at(end)  # a custom end: the assignment ends then
    elif policy_expiration.type == AFTER_DURATION:
        expiration = Expiration(
            type=AFTER_DURATION, end_date_time=None, duration=policy_expiration.duration
        )
    elif policy_expiration.type == AFTER_DATE_TIME:
        expiration = Expiration(type=AFTER_DATE_TIME, end_date_time=iso(policy_end), duration=None)
    else:
        expiration = ends_at(None)
    return Schedule(start_date_time=iso(start), expiration=expiration).stored()


def ends_at(end: datetime | None) -> Expiration:
    """The expiration of something that ends at ``end`` (None: never)."""
    if end is None:
        return Expiration(type=NO_EXPIRATION, end_date_time=None, duration=None)
    return Expiration(type=AFTER_DATE_TIME, end_date_time=iso(end), duration=None)


def start_of(schedule: Schedule, now: datetime) -> datetime:
    raw = schedule.start_date_time
    return max(parse_instant(raw, "startDateTime"), now) if raw else now


def end_of(schedule: Schedule, start: datetime) -> datetime | None:
    """When an assignment that starts at ``start`` with this schedule ends (None: never)."""
    return _end(schedule.expiration, start, "endDateTime")


def assignment_schedule(
    start: datetime, expires_at: datetime | None, expiration: dict[str, Any]
) -> dict[str, Any]:
    """An assignment's Graph ``schedule`` (entitlementManagementSchedule)."""
    stored = Expiration.model_validate(expiration)
    kind = stored.type or (AFTER_DATE_TIME if expires_at else NO_EXPIRATION)
    return {
        "startDateTime": iso(start),
        "expiration": {
            "type": kind,
            "endDateTime": iso(expires_at),
            "duration": stored.duration if kind == AFTER_DURATION else None,
        },
        "recurrence": None,
    }


def extension_end(
    policy_expiration: Expiration, current_end: datetime | None, now: datetime
) -> datetime | None:
    """The new end of an extended assignment: a fresh period from today, never past the
    policy's fixed end date (spec §5.7 "Extension cap")."""
    fixed = _end(policy_expiration, now, "policy expiration")
    if (
        policy_expiration.type == AFTER_DATE_TIME
        and fixed is not None
        and current_end is not None
        and fixed <= current_end
    ):
        raise Invalid(
            "the policy's end date allows no extension beyond the current end",
            code="ExtensionNotAllowed",
        )
    return fixed


@dataclass(frozen=True)
class Reminder:
    bit: int  # in Assignment.reminders_sent
    ahead: timedelta  # sent this long before the end
    days: int  # what the message says


# The expiry reminders (spec §11: 14 days and 1 day before the end), nearest first: of two that
# are due at once, only the nearer still makes sense.
REMINDERS = (Reminder(2, timedelta(days=1), 1), Reminder(1, timedelta(days=14), 14))


def passed_reminders(end: datetime | None, since: datetime) -> int:
    """The reminder bits whose moment had come by ``since``, when an assignment took ``end``.

    Set as settled when the end is set (created, or extended): a reminder is news only if its
    moment comes while the assignment holds that end, so an assignment that starts with ten
    days left never hears "14 days", and one of 20 hours hears neither (it was told its end on
    delivery). docs/decisions/0021.
    """
    if end is None:
        return 0
    settled = 0
    for r in REMINDERS:
        if end - r.ahead <= since:
            settled |= r.bit
    return settled
