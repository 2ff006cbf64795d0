"""Access review settings of a policy (spec §5.8): validated and stored; reviews do not run yet.

Stored form (``None`` when the policy has none)::

    {"isEnabled", "isRecommendationEnabled", "isReviewerJustificationRequired", "isSelfReview",
     "expirationBehavior": keepAccess | removeAccess | acceptAccessRecommendation,
     "schedule": {"startDateTime", "expiration": {type, endDateTime, duration},
                  "recurrence": {"pattern": {...}, "range": {...}} | None} | None,
     "primaryReviewers": [subjectSet], "fallbackReviewers": [subjectSet]}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remit.errors import Invalid
from remit.policies import expiration
from remit.policies import fields as f
from remit.policies import subjects as s
from remit.policies.fields import at

EXPIRATION_BEHAVIORS = ("keepAccess", "removeAccess", "acceptAccessRecommendation")
PATTERN_TYPES = (
    "daily",
    "weekly",
    "absoluteMonthly",
    "relativeMonthly",
    "absoluteYearly",
    "relativeYearly",
)
RANGE_TYPES = ("endDate", "noEnd", "numbered")
DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
INDEXES = ("first", "second", "third", "fourth", "last")
REVIEWERS = (s.SINGLE_USER, s.GROUP_MEMBERS, s.REQUESTOR_MANAGER, s.TARGET_MANAGER)
FLAGS = {  # and their defaults
    "isEnabled": False,
    "isRecommendationEnabled": True,
    "isReviewerJustificationRequired": True,
    "isSelfReview": False,
}


def parse(value: Any) -> dict[str, Any] | None:
    path = "reviewSettings"
    if value is None:
        return None
    src = f.obj(value, path)
    out: dict[str, Any] = {
        **f.flags(src, path, FLAGS),
        "expirationBehavior": f.enum(
            src.get("expirationBehavior") or "keepAccess",
            EXPIRATION_BEHAVIORS,
            at(path, "expirationBehavior"),
        ),
        "schedule": _schedule(src.get("schedule"), at(path, "schedule")),
        "primaryReviewers": s.parse_list(src, "primaryReviewers", path, REVIEWERS),
        "fallbackReviewers": s.parse_list(src, "fallbackReviewers", path, s.FALLBACKS),
    }
    if out["isEnabled"]:
        if not out["isSelfReview"] and not out["primaryReviewers"]:
            where = at(path, "primaryReviewers")
            raise Invalid(f"{where} must name a reviewer unless isSelfReview", target=where)
        managers = any(r["@odata.type"].endswith("Manager") for r in out["primaryReviewers"])
        if managers and not out["fallbackReviewers"]:
            where = at(path, "fallbackReviewers")
            raise Invalid(f"{where} is required when a manager reviews", target=where)
        if out["schedule"] is None:
            where = at(path, "schedule")
            raise Invalid(f"{where} is required when reviews are enabled", target=where)
    return out


def _schedule(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    src = f.obj(value, path)
    start = src.get("startDateTime")
    return {
        "startDateTime": None
        if start is None
        else f.iso_instant(f.instant(start, at(path, "startDateTime"))),
        "expiration": expiration.parse(src.get("expiration"), at(path, "expiration"), now=None),
        "recurrence": _recurrence(src.get("recurrence"), at(path, "recurrence")),
    }


def _recurrence(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    src = f.obj(value, path)
    pattern = f.obj(src.get("pattern"), at(path, "pattern"))
    where = at(path, "pattern")
    days = f.items(pattern, "daysOfWeek", where, max_items=7)
    first_day = pattern.get("firstDayOfWeek")
    index = pattern.get("index")
    rng = f.obj(src.get("range"), at(path, "range"))
    rwhere = at(path, "range")
    return {
        "pattern": {
            "type": f.enum(pattern.get("type"), PATTERN_TYPES, at(where, "type")),
            "interval": f.integer(pattern, "interval", where, default=1, low=1, high=99),
            "month": f.integer(pattern, "month", where, default=0, low=0, high=12),
            "dayOfMonth": f.integer(pattern, "dayOfMonth", where, default=0, low=0, high=31),
            "daysOfWeek": [
                f.enum(d, DAYS, at(at(where, "daysOfWeek"), i)) for i, d in enumerate(days)
            ],
            "firstDayOfWeek": None
            if first_day is None
            else f.enum(first_day, DAYS, at(where, "firstDayOfWeek")),
            "index": None if index is None else f.enum(index, INDEXES, at(where, "index")),
        },
        "range": {
            "type": f.enum(rng.get("type") or "noEnd", RANGE_TYPES, at(rwhere, "type")),
            "startDate": _date(rng, "startDate", rwhere),
            "endDate": _date(rng, "endDate", rwhere),
            "recurrenceTimeZone": f.text(rng, "recurrenceTimeZone", rwhere, max_len=64),
            "numberOfOccurrences": f.integer(
                rng, "numberOfOccurrences", rwhere, default=0, low=0, high=10_000
            ),
        },
    }


def _date(src: dict[str, Any], key: str, path: str) -> str | None:
    value = f.text(src, key, path, max_len=40)
    if value is None:
        return None
    try:
        return datetime.strptime(value.strip()[:10], "%Y-%m-%d").date().isoformat()  # noqa: DTZ007 - a date
    except ValueError as exc:
        where = at(path, key)
        raise Invalid(f"{where} must be a date such as 2026-01-31", target=where) from exc
