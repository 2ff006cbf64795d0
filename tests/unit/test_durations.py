"""ISO-8601 durations and the Graph SDK's ``str(timedelta)`` form (remit.durations)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remit.durations import MAX_DAYS, format_duration, parse_duration
from remit.errors import Invalid

PARSED = [
    ("P30D", timedelta(days=30)),
    ("PT0S", timedelta(0)),
    ("P0D", timedelta(0)),
    ("PT12H", timedelta(hours=12)),
    ("P1DT2H", timedelta(days=1, hours=2)),
    ("PT90M", timedelta(minutes=90)),
    ("PT1M30S", timedelta(minutes=1, seconds=30)),
    ("PT1.5S", timedelta(seconds=1.5)),
    ("PT0,25S", timedelta(seconds=0.25)),
    ("P1.5D", timedelta(days=1, hours=12)),
    ("P2W", timedelta(days=14)),
    ("P3660D", timedelta(days=3660)),
    (" P7D ", timedelta(days=7)),
    # the Python Graph SDK sends str(timedelta)
    ("30 days, 0:00:00", timedelta(days=30)),
    ("1 day, 2:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ("0:00:00", timedelta(0)),
    ("12:00:00", timedelta(hours=12)),
    ("0:00:01.500000", timedelta(seconds=1.5)),
]

REFUSED = [
    ("P1Y", "years or months"),
    ("P6M", "years or months"),
    ("P1Y2M3D", "years or months"),
    ("-P1D", "not an ISO-8601 duration"),
    ("P", "not an ISO-8601 duration"),
    ("PT", "not an ISO-8601 duration"),
    ("P1DT", "not an ISO-8601 duration"),
    ("p30d", "not an ISO-8601 duration"),
    ("30", "not an ISO-8601 duration"),
    ("30 days", "not an ISO-8601 duration"),
    ("P1.5DT2H", "not an ISO-8601 duration"),
    ("PT1H30", "not an ISO-8601 duration"),
    ("-1 day, 23:00:00", "not an ISO-8601 duration"),
    ("1 day, 24:00:00", "not an ISO-8601 duration"),
    ("0:60:00", "not an ISO-8601 duration"),
    ("", "not an ISO-8601 duration"),
    ("PT99999999999999999999999S", "longer than"),
    ("P86400000000W", "longer than"),
    ("99999999999 days, 0:00:00", "longer than"),
    ("P\u0663D", "not an ISO-8601 duration"),  # a digit, but not an ASCII one
    (f"P{MAX_DAYS + 1}D", "longer than"),
    ("P" + "1" * 80 + "D", "longer than 64 characters"),
]

FORMATTED = [
    (timedelta(0), "PT0S"),
    (timedelta(days=30), "P30D"),
    (timedelta(hours=12), "PT12H"),
    (timedelta(days=1, hours=2), "P1DT2H"),
    (timedelta(minutes=90), "PT1H30M"),
    (timedelta(days=14), "P14D"),
    (timedelta(seconds=1.5), "PT1.5S"),
    (timedelta(days=1, microseconds=1), "P1DT0.000001S"),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "problem"), REFUSED)
def test_refused_with_a_clear_message(text: str, problem: str) -> None:
    with pytest.raises(Invalid, match=problem) as caught:
        parse_duration(text, target="duration")
    assert caught.value.target == "duration"


@pytest.mark.parametrize("value", [None, 30, 1.5, ["P1D"], {"days": 1}])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(Invalid, match="must be a string"):
        parse_duration(value)


@pytest.mark.parametrize(("value", "text"), FORMATTED)
def test_format(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


def test_negative_has_no_form() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=MAX_DAYS))


@given(durations)
def test_round_trip_iso(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@given(durations)
def test_round_trip_sdk_form(value: timedelta) -> None:
    assert parse_duration(str(value)) == value


@given(st.text(max_size=40))
def test_anything_else_is_a_timedelta_or_invalid(text: str) -> None:
    try:
        found = parse_duration(text)
    except Invalid:
        return
    assert timedelta(0) <= found <= timedelta(days=MAX_DAYS)
    assert parse_duration(format_duration(found)) == found
