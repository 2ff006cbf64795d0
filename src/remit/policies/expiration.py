"""expirationPattern (spec §5.7): when assignments made through a policy end.

Stored form: ``{"type": notSpecified | noExpiration | afterDateTime | afterDuration,
"endDateTime": ISO-8601 instant | None, "duration": ISO-8601 duration | None}``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from remit.errors import Invalid
from remit.policies import fields as f
from remit.policies.fields import at

EXPIRATION_TYPES = ("notSpecified", "noExpiration", "afterDateTime", "afterDuration")
MAX_EXPIRATION = timedelta(days=3660)


def parse(
    value: Any, path: str, *, now: datetime | None, keep_end: str | None = None
) -> dict[str, Any]:
    """An expirationPattern; absent means noExpiration. With ``now``, an end date must be in the
    future, unless it is ``keep_end`` (the stored one, which a PUT may repeat once it passed)."""
    src = f.obj(value, path)
    duration, end = src.get("duration"), src.get("endDateTime")
    if src.get("type") is not None:
        kind = f.enum(src.get("type"), EXPIRATION_TYPES, at(path, "type"))
    else:
        kind = (
            "afterDuration"
            if duration is not None
            else "afterDateTime"
            if end is not None
            else "noExpiration"
        )
    out: dict[str, Any] = {"type": kind, "endDateTime": None, "duration": None}
    for key, wanted, given in (
        ("duration", "afterDuration", duration),
        ("endDateTime", "afterDateTime", end),
    ):
        where = at(path, key)
        if kind == wanted and given is None:
            raise Invalid(f"{where} is required when the type is {wanted}", target=where)
        if kind != wanted and given is not None:
            raise Invalid(f"{where} applies only to the type {wanted}", target=where)
    if kind == "afterDuration":
        where = at(path, "duration")
        found = f.duration(duration, where)
        if found <= timedelta(0) or found > MAX_EXPIRATION:
            raise Invalid(
                f"{where} must be longer than zero and at most {MAX_EXPIRATION.days} days",
                target=where,
            )
        out["duration"] = f.iso_duration(found)
    if kind == "afterDateTime":
        where = at(path, "endDateTime")
        stamp = f.instant(end, where)
        out["endDateTime"] = f.iso_instant(stamp)
        if now is not None and stamp <= now and out["endDateTime"] != keep_end:
            raise Invalid(f"{where} must be in the future", target=where)
    return out
