"""Durations on the wire: ISO-8601 (``P30D``, ``PT12H``, ``P1DT2H``), Graph's ``Edm.Duration``.

``parse_duration`` also takes the form the Python Graph SDK sends, which is ``str(timedelta)``
(``"30 days, 0:00:00"``, ``"0:00:00"``): kiota serializes a ``timedelta`` that way.

The parser is small and strict on purpose (docs/decisions/0012): years and months have no fixed
length, so ``P1Y``/``P1M`` are refused with a hint to say days; negative durations are refused;
only the last component may carry a fraction. ``isodate`` would return a non-``timedelta`` for
years and months and knows nothing of the SDK's form, and is not a dependency.
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from typing import Any

from remit.errors import Invalid

MAX_LENGTH = 64
# Far beyond any limit of the spec (3,660 days) and well inside ``timedelta``'s range.
MAX_DAYS = 1_000_000

_NUMBER = r"\d+(?:[.,]\d+)?"
_ISO = re.compile(
    rf"P(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_NUMBER})S)?)?",
    re.ASCII,
)
# Years or months in the date part (before any "T").
_CALENDAR = re.compile(r"P[^T]*[YM]")
# str(timedelta) of a non-negative value: "[D day[s], ]H:MM:SS[.ffffff]"
_PYTHON = re.compile(
    r"(?:(?P<days>\d+) days?, )?(?P<hours>\d{1,2}):(?P<minutes>\d{2}):(?P<seconds>\d{2})"
    r"(?:\.(?P<fraction>\d{1,6}))?",
    re.ASCII,
)
_ORDER = ("weeks", "days", "hours", "minutes", "seconds")


def parse_duration(value: Any, *, target: str | None = None) -> timedelta:
    """An ISO-8601 duration (or the SDK's ``str(timedelta)`` form) as a ``timedelta``.

    Raises ``Invalid`` (with ``target`` as the error's target) for anything else.
    """
    if not isinstance(value, str):
        raise Invalid(_message(value, "must be a string"), target=target)
    text = value.strip()
    if len(text) > MAX_LENGTH:
        raise Invalid(f"the duration is longer than {MAX_LENGTH} characters", target=target)
    found = _parsed(text)
    if found is None:
        if _CALENDAR.match(text):
            raise Invalid(
                _message(
                    value,
                    "uses years or months, which have no fixed length; give days (e.g. P365D)",
                ),
                target=target,
            )
        raise Invalid(
            _message(value, "is not an ISO-8601 duration such as P30D, PT12H or P1DT2H"),
            target=target,
        )
    if found > timedelta(days=MAX_DAYS):
        raise Invalid(_message(value, f"is longer than {MAX_DAYS} days"), target=target)
    return found


@functools.lru_cache(maxsize=512)
def _parsed(text: str) -> timedelta | None:
    """``text`` read as ISO-8601 or as ``str(timedelta)`` (None if neither): policies hold a
    handful of durations, read on every request, so the readings are kept."""
    return _parse_iso(text) if text.startswith("P") else _parse_python(text)


def _message(value: Any, problem: str) -> str:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return f"duration {shown} {problem}"


def _parse_iso(text: str) -> timedelta | None:
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    parts = {k: v for k, v in match.groupdict().items() if v is not None}
    # "P" and "PT" say nothing; a "T" must be followed by a time component.
    if not parts or text.endswith("T"):
        return None
    # Only the smallest component given may have a fraction (ISO 8601 §4.4.3.2).
    last = max(parts, key=_ORDER.index)
    if any(("." in v or "," in v) for k, v in parts.items() if k != last):
        return None
    numbers = {k: float(v.replace(",", ".")) if k == last else int(v) for k, v in parts.items()}
    try:
        return timedelta(**numbers)
    except OverflowError:
        return timedelta.max  # refused below as too long


def _parse_python(text: str) -> timedelta | None:
    match = _PYTHON.fullmatch(text)
    if match is None:
        return None
    days = int(match["days"] or 0)
    hours, minutes, seconds = int(match["hours"]), int(match["minutes"]), int(match["seconds"])
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    if days > MAX_DAYS:
        return timedelta.max  # refused below as too long
    micros = int((match["fraction"] or "").ljust(6, "0"))
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds, microseconds=micros)


def format_duration(value: timedelta) -> str:
    """The canonical ISO-8601 form: ``P30D``, ``PT12H``, ``P1DT2H``, ``PT1.5S``; zero is ``PT0S``.

    Days are never folded into weeks, months or years, so ``parse_duration`` gives back exactly
    ``value``. Negative durations have no ISO-8601 form and raise ``ValueError``.
    """
    if value < timedelta(0):
        raise ValueError("a negative duration has no ISO-8601 form")
    days = value.days
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or value.microseconds:
        fraction = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
        time += f"{seconds}{fraction}S"
    if time:
        out += "T" + time
    return out if out != "P" else "PT0S"
