"""Schedules: when access starts and ends (spec §5.7), frozen on the request when submitted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remit.durations import format_duration, parse_duration
from remit.errors import Invalid

MAX_DAYS = 3660


def parse_instant(value: Any, target: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{target} must be an ISO-8601 date and time", target=target)
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(
            f"{target} is not an ISO-8601 date and time: {value!r}", target=target
        ) from None
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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
    start: datetime | None = None
    end: datetime | None = None
    if requested:
        if not allow_custom:
            raise Invalid(
                "this policy does not let requestors choose their own schedule",
                target="schedule",
                code="CustomScheduleNotAllowed",
            )
        if requested.get("startDateTime"):
            start = parse_instant(requested["startDateTime"], "schedule.startDateTime")
        expiration = requested.get("expiration") or {}
        if expiration.get("endDateTime"):
            end = parse_instant(expiration["endDateTime"], "schedule.expiration.endDateTime")
        elif expiration.get("duration"):
            end = (start or now) + parse_duration(str(expiration["duration"]))
    begin = max(start or now, now)
    if end is not None and end <= begin:
        raise Invalid("the requested end is not after the start", target="schedule")
    kind = policy_expiration.get("type") or "noExpiration"
    policy_end: datetime | None = None
    if kind == "afterDateTime" and policy_expiration.get("endDateTime"):
        policy_end = parse_instant(policy_expiration["endDateTime"], "policy expiration")
    elif kind == "afterDuration" and policy_expiration.get("duration"):
        policy_end = begin + parse_duration(policy_expiration["duration"])
    if policy_end is not None and policy_end <= begin:
        raise Invalid(
            "the policy's end date has passed: no new assignments can start",
            target="schedule",
            code="PolicyExpired",
        )
    if end is None or (policy_end is not None and end > policy_end):
        end = policy_end
    duration = policy_expiration.get("duration") if kind == "afterDuration" else None
    if end is not None and requested and end != policy_end:
        # A custom end: the assignment ends then, whatever the policy's pattern.
        return {
            "startDateTime": iso(start),
            "expiration": {"type": "afterDateTime", "endDateTime": iso(end), "duration": None},
        }
    if kind == "afterDuration":
        return {
            "startDateTime": iso(start),
            "expiration": {"type": "afterDuration", "endDateTime": None, "duration": duration},
        }
    if kind == "afterDateTime":
        return {
            "startDateTime": iso(start),
            "expiration": {"type": "afterDateTime", "endDateTime": iso(end), "duration": None},
        }
    return {
        "startDateTime": iso(start),
        "expiration": {"type": "noExpiration", "endDateTime": None, "duration": None},
    }


def start_of(schedule: dict[str, Any], now: datetime) -> datetime:
    raw = schedule.get("startDateTime")
    return max(parse_instant(raw, "startDateTime"), now) if raw else now


def end_of(schedule: dict[str, Any], start: datetime) -> datetime | None:
    """When an assignment that starts at ``start`` with this schedule ends (None: never)."""
    expiration = schedule.get("expiration") or {}
    kind = expiration.get("type")
    if kind == "afterDuration" and expiration.get("duration"):
        return start + parse_duration(expiration["duration"])
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
        return now + parse_duration(policy_expiration["duration"])
    if kind == "afterDateTime" and policy_expiration.get("endDateTime"):
        fixed = parse_instant(policy_expiration["endDateTime"], "policy expiration")
        if current_end is not None and fixed <= current_end:
            raise Invalid(
                "the policy's end date allows no extension beyond the current end",
                code="ExtensionNotAllowed",
            )
        return fixed
    return None


def days(delta: timedelta) -> str:
    return format_duration(delta)
