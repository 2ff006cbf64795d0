"""Schedules: when access starts and ends (spec §5.7), frozen on the request when submitted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from remit.durations import parse_duration
from remit.errors import Invalid

MAX_DAYS = 3660


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
    start = (
        parse_instant(requested["startDateTime"], "schedule.startDateTime")
        if requested.get("startDateTime")
        else None
    )
    expiration = requested.get("expiration") or {}
    if not isinstance(expiration, dict):
        raise Invalid("schedule.expiration must be an object", target="schedule.expiration")
    end = None
    if expiration.get("endDateTime"):
        end = parse_instant(expiration["endDateTime"], "schedule.expiration.endDateTime")
    elif expiration.get("duration"):
        end = later(
            start or now,
            parse_duration(str(expiration["duration"])),
            "schedule.expiration.duration",
        )
    return start, end


def _policy_end(policy_expiration: dict[str, Any], begin: datetime) -> datetime | None:
    kind = policy_expiration.get("type")
    if kind == "afterDateTime" and policy_expiration.get("endDateTime"):
        return parse_instant(policy_expiration["endDateTime"], "policy expiration")
    if kind == "afterDuration" and policy_expiration.get("duration"):
        return later(begin, parse_duration(policy_expiration["duration"]), "expiration.duration")
    return None


def frozen_schedule(
    policy_expiration: dict[str, Any],
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
    policy_end = _policy_end(policy_expiration, begin)
    if policy_end is not None and policy_end <= begin:
        raise Invalid(
            "the policy's end date has passed: no new assignments can start",
            target="schedule",
            code="PolicyExpired",
        )
    kind = policy_expiration.get("type") or "noExpiration"
    if end is not None and (policy_end is None or end < policy_end):
        kind = "afterDateTime"  # a custom end: the assignment ends then
    else:
        end = policy_end
    expiration: dict[str, Any] = {"type": kind, "endDateTime": None, "duration": None}
    if kind == "afterDuration":
        expiration["duration"] = policy_expiration.get("duration")
    elif kind == "afterDateTime":
        expiration["endDateTime"] = iso(end)
    else:
        expiration["type"] = "noExpiration"
    return {"startDateTime": iso(start), "expiration": expiration}


def start_of(schedule: dict[str, Any], now: datetime) -> datetime:
    raw = schedule.get("startDateTime")
    return max(parse_instant(raw, "startDateTime"), now) if raw else now


def end_of(schedule: dict[str, Any], start: datetime) -> datetime | None:
    """When an assignment that starts at ``start`` with this schedule ends (None: never)."""
    expiration = schedule.get("expiration") or {}
    kind = expiration.get("type")
    if kind == "afterDuration" and expiration.get("duration"):
        return later(start, parse_duration(expiration["duration"]), "expiration.duration")
    if kind == "afterDateTime" and expiration.get("endDateTime"):
        return parse_instant(expiration["endDateTime"], "endDateTime")
    return None


def assignment_schedule(
    start: datetime, expires_at: datetime | None, expiration: dict[str, Any]
) -> dict[str, Any]:
    """An assignment's Graph ``schedule`` (entitlementManagementSchedule)."""
    kind = expiration.get("type") or ("afterDateTime" if expires_at else "noExpiration")
    return {
        "startDateTime": iso(start),
        "expiration": {
            "type": kind,
            "endDateTime": iso(expires_at),
            "duration": expiration.get("duration") if kind == "afterDuration" else None,
        },
        "recurrence": None,
    }


def extension_end(
    policy_expiration: dict[str, Any], current_end: datetime | None, now: datetime
) -> datetime | None:
    """The new end of an extended assignment: a fresh period from today, never past the
    policy's fixed end date (spec §5.7 "Extension cap")."""
    kind = policy_expiration.get("type")
    if kind == "afterDuration" and policy_expiration.get("duration"):
        return later(now, parse_duration(policy_expiration["duration"]), "expiration.duration")
    if kind == "afterDateTime" and policy_expiration.get("endDateTime"):
        fixed = parse_instant(policy_expiration["endDateTime"], "policy expiration")
        if current_end is not None and fixed <= current_end:
            raise Invalid(
                "the policy's end date allows no extension beyond the current end",
                code="ExtensionNotAllowed",
            )
        return fixed
    return None


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
