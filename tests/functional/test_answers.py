"""Answers to a policy's questions, through HTTP: checked against each question when a request is
submitted, echoed with the question they answer, and matched in linear time (remit.safe_regex)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from remit.db import Database
from remit.models.policies import AssignmentPolicy
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant
from tests.lifecycle_support import Campaign, build_campaign, employees_policy, user_add

G = "#microsoft.graph."
ANSWER = G + "accessPackageAnswerString"
COST_CENTRE = "cost-centre"
REGION = "region"
QUESTIONS = [
    {
        "@odata.type": G + "accessPackageTextInputQuestion",
        "id": COST_CENTRE,
        "text": "Cost centre?",
        "isRequired": True,
        "regexPattern": "^[A-Z]{2}-\\d{4}$",
    },
    {
        "@odata.type": G + "accessPackageMultipleChoiceQuestion",
        "id": REGION,
        "text": "Which regions?",
        "isMultipleSelectionAllowed": True,
        "choices": [
            {"actualValue": "emea", "text": "Europe"},
            {"actualValue": "apac", "text": "Asia-Pacific"},
        ],
    },
]


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


@pytest.fixture
def package(c: Campaign) -> str:
    """A package of its own, so that its one policy (Marketing employees, with the questions) is
    the one a request lands on."""
    package = c.new_package("lena", "Campaign 2027 (asked)", {"Member"})
    c.policy("lena", employees_policy(package, c.t, questions=QUESTIONS))
    return package


def answer(question: str, value: str) -> dict[str, Any]:
    return {"@odata.type": ANSWER, "value": value, "answeredQuestion": {"id": question}}


def refused(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    return dict(r.json()["error"])


def test_valid_answers_are_stored_and_echoed(c: Campaign, package: str) -> None:
    r = user_add(
        c.t,
        "sofia",
        package,
        answers=[answer(REGION, "emea, apac"), answer(COST_CENTRE, " MK-2027 ")],
    )
    assert r.status_code == 201, r.text
    echoed = r.json()["answers"]
    assert echoed == [
        {
            "@odata.type": ANSWER,
            "value": "MK-2027",
            "displayValue": "MK-2027",
            "answeredQuestion": {
                "@odata.type": G + "accessPackageTextInputQuestion",
                "id": COST_CENTRE,
                "text": "Cost centre?",
                "sequence": 1,
            },
        },
        {
            "@odata.type": ANSWER,
            "value": "emea,apac",
            "displayValue": "Europe, Asia-Pacific",
            "answeredQuestion": {
                "@odata.type": G + "accessPackageMultipleChoiceQuestion",
                "id": REGION,
                "text": "Which regions?",
                "sequence": 2,
            },
        },
    ]
    again = c.t.get("sofia", f"{EM}/assignmentRequests/{r.json()['id']}")
    assert again.status_code == 200, again.text
    assert again.json()["answers"] == echoed


@pytest.mark.parametrize(
    ("answers", "target", "fragment"),
    [
        (
            [answer(COST_CENTRE, "mk-2027")],  # the pattern is case-sensitive
            "answers[0].value",
            "does not have the required format",
        ),
        (
            [answer(COST_CENTRE, "MK-2027\nMK-2028")],
            "answers[0].value",
            "takes a single line",
        ),
        (
            [answer(COST_CENTRE, "MK-2027"), answer(REGION, "emea,amer")],
            "answers[1].value",
            "'amer' is not one of the choices",
        ),
        (
            [answer(COST_CENTRE, "MK-2027"), answer("nope", "x")],
            "answers[1].answeredQuestion",
            "answers no question of this policy",
        ),
        (
            [answer(COST_CENTRE, "MK-2027"), answer(COST_CENTRE, "MK-2028")],
            "answers[1]",
            "answers a question twice",
        ),
    ],
)
def test_invalid_answers_are_refused_naming_the_answer(
    c: Campaign, package: str, answers: list[dict[str, Any]], target: str, fragment: str
) -> None:
    error = refused(user_add(c.t, "sofia", package, answers=answers))
    assert error["target"] == target
    assert fragment in error["message"]


@pytest.mark.parametrize(
    "answers",
    [None, [], [answer(REGION, "emea")], [answer(COST_CENTRE, "  ")]],
    ids=["no answers", "empty list", "only the optional one", "blank"],
)
def test_a_missing_required_answer_is_refused(
    c: Campaign, package: str, answers: list[dict[str, Any]] | None
) -> None:
    extra = {} if answers is None else {"answers": answers}
    error = refused(user_add(c.t, "sofia", package, **extra))
    assert error["code"] == "MissingRequiredAnswer"
    assert error["target"] == "answers"
    assert "'Cost centre?' requires an answer" in error["message"]


def test_a_catastrophic_pattern_answers_at_once(c: Campaign) -> None:
    """(a+)+$ is in the subset; Python's re would backtrack for ages on this answer."""
    package = c.new_package("lena", "Campaign 2027 (nested)", {"Member"})
    question = {**QUESTIONS[0], "regexPattern": "^(a+)+$"}
    c.policy("lena", employees_policy(package, c.t, questions=[question]))
    error = refused(
        user_add(c.t, "sofia", package, answers=[answer(COST_CENTRE, "a" * 3999 + "!")])
    )
    assert error["target"] == "answers[0].value"
    r = user_add(c.t, "sofia", package, answers=[answer(COST_CENTRE, "a" * 4000)])
    assert r.status_code == 201, r.text


def test_a_stored_pattern_outside_the_subset_refuses_answers(
    c: Campaign, package: str, db: Database
) -> None:
    """A policy stored before patterns were checked against the subset: an answer to its
    question is refused (not matched with re, not waved through) until the pattern is fixed."""
    legacy = [{**QUESTIONS[0], "regexPattern": "^(\\w)\\1+$"}, QUESTIONS[1]]
    with db.write() as s:
        s.execute(
            update(AssignmentPolicy)
            .where(AssignmentPolicy.access_package_id == package)
            .values(questions=legacy)
        )
    error = refused(user_add(c.t, "sofia", package, answers=[answer(COST_CENTRE, "aaa")]))
    assert error["code"] == "UnsupportedQuestionPattern"
    assert error["target"] == "answers[0].answeredQuestion"
    assert "\\1 isn't supported (back-references" in error["message"]
