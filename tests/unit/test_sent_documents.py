"""What a client sends inside a request (its schedule, its answers) is read by Graph's keys only,
and its faults are reported in the order they always were (issue #12: typing changed no
behaviour)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remit.errors import Invalid
from remit.lifecycle import answers
from remit.lifecycle.schedule import frozen_schedule
from remit.models.policy_settings import Expiration, ExpirationType, Question

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
NO_END = Expiration(type=ExpirationType.NO_EXPIRATION)


def schedule(requested: dict[str, object]) -> dict[str, object]:
    return frozen_schedule(NO_END, requested, allow_custom=True, now=NOW)


def test_a_schedule_is_read_by_graph_keys_only() -> None:
    asked = schedule(
        {
            "startDateTime": "2027-01-01T00:00:00Z",
            "expiration": {"endDateTime": "2027-02-01T00:00:00Z"},
        }
    )
    assert asked["startDateTime"] == "2027-01-01T00:00:00.000Z"
    assert asked["expiration"]["endDateTime"] == "2027-02-01T00:00:00.000Z"
    # snake_case keys are unknown properties: nothing was asked for.
    ignored = schedule(
        {
            "start_date_time": "2027-01-01T00:00:00Z",
            "expiration": {"end_date_time": "2027-02-01T00:00:00Z"},
        }
    )
    assert ignored["startDateTime"] is None
    assert ignored["expiration"]["endDateTime"] is None


def test_a_bad_start_is_reported_before_a_bad_expiration() -> None:
    with pytest.raises(Invalid) as refused:
        schedule({"startDateTime": "not a time", "expiration": 1})
    assert refused.value.target == "schedule.startDateTime"


def test_an_answer_is_read_by_graph_keys_only() -> None:
    question = Question.model_validate(
        {
            "@odata.type": "#microsoft.graph.accessPackageTextInputQuestion",
            "id": "q1",
            "text": "Why?",
        }
    )
    given = {"answeredQuestion": {"id": "q1"}, "value": "because"}
    assert answers.validate([question], [given])[0]["value"] == "because"
    snake = {"answered_question": {"id": "q1"}, "value": "because"}
    with pytest.raises(Invalid) as refused:
        answers.validate([question], [snake])
    assert refused.value.target == "answers[0].answeredQuestion"
    assert "answers no question of this policy" in str(refused.value)
