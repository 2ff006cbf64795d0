"""The policy document parser: what a Graph body becomes, and where each bad value is named."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from remit.errors import Invalid
from remit.policies import document
from remit.policies.document import parse

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
USER = "11111111-1111-4111-8111-111111111111"
GROUP = "22222222-2222-4222-8222-222222222222"
ORG = "33333333-3333-4333-8333-333333333333"
G = "#microsoft.graph."


def user(uid: str = USER) -> dict[str, Any]:
    return {"@odata.type": G + "singleUser", "userId": uid}


def group(gid: str = GROUP) -> dict[str, Any]:
    return {"@odata.type": G + "groupMembers", "groupId": gid}


def manager(level: int = 1) -> dict[str, Any]:
    return {"@odata.type": G + "requestorManager", "managerLevel": level}


def stage(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"primaryApprovers": [user()]}
    base.update(changes)
    return base


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "displayName": "Requests",
        "description": "by marketing",
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [group()],
        "requestorSettings": {"enableTargetsToSelfAddAccess": True},
        "requestApprovalSettings": {"isApprovalRequiredForAdd": True, "stages": [stage()]},
        "expiration": {"type": "afterDuration", "duration": "P30D"},
    }
    base.update(changes)
    return base


def with_path(path: str, value: Any) -> dict[str, Any]:
    """The base body with one value replaced at a dotted path (``a.b[0].c``)."""
    out = body()
    node: Any = out
    parts = path.replace("]", "").replace("[", ".").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return out


def test_a_minimal_body_gets_every_default() -> None:
    doc = parse({"displayName": "Direct"}, now=NOW)
    assert doc.allowed_target_scope == "notSpecified"
    assert doc.specific_allowed_targets == []
    assert doc.automatic_request_settings is None
    assert doc.expiration == {"type": "noExpiration", "endDateTime": None, "duration": None}
    assert doc.requestor_settings == {
        "enableTargetsToSelfAddAccess": False,
        "enableTargetsToSelfUpdateAccess": False,
        "enableTargetsToSelfRemoveAccess": False,
        "allowCustomAssignmentSchedule": False,
        "enableOnBehalfRequestorsToAddAccess": False,
        "enableOnBehalfRequestorsToUpdateAccess": False,
        "enableOnBehalfRequestorsToRemoveAccess": False,
        "onBehalfRequestors": [],
        "acceptRequests": True,
    }
    assert doc.request_approval_settings == {
        "isApprovalRequiredForAdd": False,
        "isApprovalRequiredForUpdate": False,
        "isRequestorJustificationRequired": False,
        "stages": [],
    }
    assert doc.review_settings is None
    assert doc.questions == []
    assert doc.notification_settings == {"isAssignmentNotificationDisabled": False}
    assert doc.custom_extension_stage_settings == []


def test_a_full_body_is_normalized() -> None:
    doc = parse(
        body(
            allowedTargetScope="SPECIFICDIRECTORYUSERS",
            specificAllowedTargets=[
                {"@odata.type": "microsoft.graph.SingleUser", "userId": USER},
                {"@odata.type": "groupmembers", "groupId": GROUP, "description": "team"},
            ],
            expiration={"type": "AfterDuration", "duration": "30 days, 0:00:00"},
            requestApprovalSettings={
                "isApprovalRequiredForAdd": True,
                "stages": [
                    {
                        "durationBeforeAutomaticDenial": "7 days, 0:00:00",
                        "isEscalationEnabled": True,
                        "durationBeforeEscalation": "P2D",
                        "primaryApprovers": [manager()],
                        "fallbackPrimaryApprovers": [group()],
                        "escalationApprovers": [manager(2)],
                        "fallbackEscalationApprovers": [user()],
                    }
                ],
            },
        ),
        now=NOW,
    )
    assert doc.specific_allowed_targets == [
        {"@odata.type": G + "singleUser", "userId": USER, "description": None},
        {"@odata.type": G + "groupMembers", "groupId": GROUP, "description": "team"},
    ]
    assert doc.expiration == {"type": "afterDuration", "endDateTime": None, "duration": "P30D"}
    assert doc.request_approval_settings["stages"] == [
        {
            "durationBeforeAutomaticDenial": "P7D",
            "isApproverJustificationRequired": False,
            "isEscalationEnabled": True,
            "durationBeforeEscalation": "P2D",
            "primaryApprovers": [{"@odata.type": G + "requestorManager", "managerLevel": 1}],
            "fallbackPrimaryApprovers": [
                {"@odata.type": G + "groupMembers", "groupId": GROUP, "description": None}
            ],
            "escalationApprovers": [{"@odata.type": G + "requestorManager", "managerLevel": 2}],
            "fallbackEscalationApprovers": [
                {"@odata.type": G + "singleUser", "userId": USER, "description": None}
            ],
        }
    ]
    assert [(r.kind, r.target) for r in doc.references()] == [
        ("singleUser", "specificAllowedTargets[0].userId"),
        ("groupMembers", "specificAllowedTargets[1].groupId"),
        ("groupMembers", "requestApprovalSettings.stages[0].fallbackPrimaryApprovers[0].groupId"),
        ("singleUser", "requestApprovalSettings.stages[0].fallbackEscalationApprovers[0].userId"),
    ]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ({"type": "afterDuration", "duration": "PT12H"}, {"duration": "PT12H"}),
        ({"type": "afterDuration", "duration": "P3660D"}, {"duration": "P3660D"}),
        ({"type": "afterDuration", "duration": "1 day, 2:00:00"}, {"duration": "P1DT2H"}),
        ({"duration": "P90D"}, {"type": "afterDuration", "duration": "P90D"}),
        (
            {"type": "afterDateTime", "endDateTime": "2026-07-01T00:00:00Z"},
            {"endDateTime": "2026-07-01T00:00:00.000000Z"},
        ),
        (
            {"type": "afterDateTime", "endDateTime": "2026-07-01T02:00:00+02:00"},
            {"endDateTime": "2026-07-01T00:00:00.000000Z"},
        ),
        ({"type": "NOEXPIRATION"}, {"type": "noExpiration"}),
        ({"type": "notSpecified"}, {"type": "notSpecified"}),
        (None, {"type": "noExpiration"}),
    ],
)
def test_expirations(given: Any, stored: dict[str, Any]) -> None:
    doc = parse(body(expiration=given), now=NOW)
    expected = {"type": (given or {}).get("type"), "endDateTime": None, "duration": None}
    expected.update(stored)
    assert doc.expiration == expected


def test_an_unchanged_past_end_may_be_repeated() -> None:
    past = {"type": "afterDateTime", "endDateTime": "2026-05-01T00:00:00Z"}
    with pytest.raises(Invalid) as error:
        parse(body(expiration=past), now=NOW)
    assert error.value.target == "expiration.endDateTime"
    kept = parse(body(expiration=past), now=NOW, keep_end="2026-05-01T00:00:00.000000Z")
    assert kept.expiration["endDateTime"] == "2026-05-01T00:00:00.000000Z"


def test_questions_keep_given_ids_and_get_new_ones() -> None:
    doc = parse(
        body(
            questions=[
                {
                    "@odata.type": "#microsoft.graph.accessPackageTextInputQuestion",
                    "id": "q-1",
                    "text": "Why?",
                    "isRequired": True,
                    "regexPattern": "^[A-Z]{3}$",
                    "localizations": [{"languageCode": "fr-FR", "text": "Pourquoi ?"}],
                },
                {
                    "@odata.type": "accessPackageMultipleChoiceQuestion",
                    "text": "Which?",
                    "choices": [{"actualValue": "a"}, {"actualValue": "b", "text": "Bee"}],
                },
            ]
        ),
        now=NOW,
    )
    first, second = doc.questions
    assert first == {
        "@odata.type": G + "accessPackageTextInputQuestion",
        "id": "q-1",
        "sequence": 1,
        "isRequired": True,
        "isAnswerEditable": False,
        "text": "Why?",
        "localizations": [{"languageCode": "fr-FR", "text": "Pourquoi ?"}],
        "isSingleLineQuestion": True,
        "regexPattern": "^[A-Z]{3}$",
    }
    assert second["id"]
    assert second["id"] != "q-1"
    assert second["sequence"] == 2
    assert second["isMultipleSelectionAllowed"] is False
    assert second["choices"] == [
        {"actualValue": "a", "text": "a", "localizations": []},
        {"actualValue": "b", "text": "Bee", "localizations": []},
    ]


@pytest.mark.parametrize(
    ("pattern", "named"),
    [
        (r"^(\w)\1$", r"\1 isn't supported (back-references"),
        (r"^(?=.*\d).{8,}$", "(?...) constructs (flags, look-arounds, named groups)"),
        (r"\bEMEA\b", r"\b isn't supported (word boundaries)"),
        ("^x{1,500}$", "repetition counts are limited to 100"),
    ],
)
def test_question_patterns_outside_the_linear_subset_are_refused(pattern: str, named: str) -> None:
    """Python's re takes these; answers are matched by remit.safe_regex, which refuses them."""
    question = {"@odata.type": G + "accessPackageTextInputQuestion", "text": "x"}
    with pytest.raises(Invalid) as error:
        parse(body(questions=[{**question, "regexPattern": pattern}]), now=NOW)
    assert error.value.target == "questions[0].regexPattern"
    assert "is not a regular expression remit supports" in error.value.message
    assert named in error.value.message


def test_approval_off_keeps_its_stages() -> None:
    doc = parse(body(requestApprovalSettings={"stages": [stage()]}), now=NOW)
    assert doc.request_approval_settings["isApprovalRequiredForAdd"] is False
    assert len(doc.request_approval_settings["stages"]) == 1
    assert doc.request_approval_settings["stages"][0]["durationBeforeAutomaticDenial"] == "P14D"


def test_escalation_off_keeps_its_approvers_unchecked() -> None:
    doc = parse(
        with_path("requestApprovalSettings.stages[0]", stage(escalationApprovers=[manager(2)])),
        now=NOW,
    )
    assert doc.request_approval_settings["stages"][0]["escalationApprovers"] == [manager(2)]


def test_automatic_settings_and_unknown_properties() -> None:
    assert document.looks_automatic({"automaticRequestSettings": {}})
    assert document.looks_automatic(
        {"specificAllowedTargets": [{"@odata.type": "#microsoft.graph.attributeRuleMembers"}]}
    )
    assert not document.looks_automatic(body())
    doc = parse(body(somethingNew=1, **{"@odata.type": "#microsoft.graph.x"}), now=NOW)
    assert doc.display_name == "Requests"


TWO_STAGES_MANAGER = [stage(primaryApprovers=[manager()], fallbackPrimaryApprovers=[user()])] * 2
ESCALATING = {"isEscalationEnabled": True, "escalationApprovers": [group()]}

# (where a value goes, the value, the target the error names)
BAD: list[tuple[str, Any, str]] = [
    ("displayName", "", "displayName"),
    ("displayName", 5, "displayName"),
    ("description", ["x"], "description"),
    ("allowedTargetScope", "everyone", "allowedTargetScope"),
    ("allowedTargetScope", "unknownFutureValue", "allowedTargetScope"),
    ("specificAllowedTargets", [], "specificAllowedTargets"),
    ("specificAllowedTargets", "x", "specificAllowedTargets"),
    ("specificAllowedTargets", [{"userId": USER}], "specificAllowedTargets[0].@odata.type"),
    (
        "specificAllowedTargets",
        [{"@odata.type": G + "requestorManager"}],
        "specificAllowedTargets[0].@odata.type",
    ),
    ("specificAllowedTargets", [user(), user()], "specificAllowedTargets[1]"),
    (
        "specificAllowedTargets",
        [{"@odata.type": G + "singleUser", "userId": ""}],
        "specificAllowedTargets[0].userId",
    ),
    (
        "specificAllowedTargets",
        [
            user(),
            {"@odata.type": G + "connectedOrganizationMembers", "connectedOrganizationId": ORG},
        ],
        "specificAllowedTargets[1]",
    ),
    (
        "specificAllowedTargets",
        [{"@odata.type": G + "attributeRuleMembers", "membershipRule": "(user.department -eq 1)"}],
        "specificAllowedTargets[0]",
    ),
    (
        "specificAllowedTargets",
        [user(f"00000000-0000-4000-8000-{i:012d}") for i in range(501)],
        "specificAllowedTargets",
    ),
    ("expiration", {"type": "afterDuration"}, "expiration.duration"),
    ("expiration", {"type": "afterDuration", "duration": "P0D"}, "expiration.duration"),
    ("expiration", {"type": "afterDuration", "duration": "P3661D"}, "expiration.duration"),
    ("expiration", {"type": "afterDuration", "duration": "P1M"}, "expiration.duration"),
    ("expiration", {"type": "afterDuration", "duration": "soon"}, "expiration.duration"),
    ("expiration", {"type": "afterDuration", "duration": 30}, "expiration.duration"),
    (
        "expiration",
        {"type": "afterDuration", "duration": "P1D", "endDateTime": "2030-01-01T00:00:00Z"},
        "expiration.endDateTime",
    ),
    ("expiration", {"type": "afterDateTime"}, "expiration.endDateTime"),
    (
        "expiration",
        {"type": "afterDateTime", "endDateTime": "2026-06-01T11:00:00Z"},
        "expiration.endDateTime",
    ),
    ("expiration", {"type": "afterDateTime", "endDateTime": "tomorrow"}, "expiration.endDateTime"),
    ("expiration", {"type": "forever"}, "expiration.type"),
    ("expiration", "P30D", "expiration"),
    (
        "requestorSettings.enableTargetsToSelfAddAccess",
        "yes",
        "requestorSettings.enableTargetsToSelfAddAccess",
    ),
    (
        "requestorSettings.enableOnBehalfRequestorsToAddAccess",
        True,
        "requestorSettings.onBehalfRequestors",
    ),
    (
        "requestorSettings.onBehalfRequestors",
        [{"@odata.type": G + "internalSponsors"}],
        "requestorSettings.onBehalfRequestors[0].@odata.type",
    ),
    ("requestApprovalSettings.stages", [], "requestApprovalSettings.stages"),
    ("requestApprovalSettings.stages", [stage()] * 4, "requestApprovalSettings.stages"),
    (
        "requestApprovalSettings.stages[0].primaryApprovers",
        [],
        "requestApprovalSettings.stages[0].primaryApprovers",
    ),
    (
        "requestApprovalSettings.stages[0].primaryApprovers",
        [{"@odata.type": G + "connectedOrganizationMembers", "connectedOrganizationId": ORG}],
        "requestApprovalSettings.stages[0].primaryApprovers[0].@odata.type",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(primaryApprovers=[manager()]),
        "requestApprovalSettings.stages[0].fallbackPrimaryApprovers",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(primaryApprovers=[{"@odata.type": G + "internalSponsors"}]),
        "requestApprovalSettings.stages[0].fallbackPrimaryApprovers",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(primaryApprovers=[{"@odata.type": G + "targetUserSponsors"}]),
        "requestApprovalSettings.stages[0].fallbackPrimaryApprovers",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(primaryApprovers=[manager()], fallbackPrimaryApprovers=[manager(2)]),
        "requestApprovalSettings.stages[0].fallbackPrimaryApprovers[0].@odata.type",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(primaryApprovers=[manager(3)]),
        "requestApprovalSettings.stages[0].primaryApprovers[0].managerLevel",
    ),
    (
        "requestApprovalSettings.stages",
        TWO_STAGES_MANAGER,
        "requestApprovalSettings.stages[1].primaryApprovers[0]",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(isEscalationEnabled=True, durationBeforeEscalation="P2D"),
        "requestApprovalSettings.stages[0].escalationApprovers",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(**ESCALATING, durationBeforeEscalation="PT12H"),
        "requestApprovalSettings.stages[0].durationBeforeEscalation",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(**ESCALATING, durationBeforeEscalation="P1D", durationBeforeAutomaticDenial="P3D"),
        "requestApprovalSettings.stages[0].durationBeforeAutomaticDenial",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(**ESCALATING, durationBeforeEscalation="P5D", durationBeforeAutomaticDenial="P5D"),
        "requestApprovalSettings.stages[0].durationBeforeAutomaticDenial",
    ),
    (
        "requestApprovalSettings.stages[0]",
        stage(
            isEscalationEnabled=True,
            escalationApprovers=[manager(2)],
            durationBeforeEscalation="P2D",
        ),
        "requestApprovalSettings.stages[0].fallbackEscalationApprovers",
    ),
    (
        "requestApprovalSettings.stages[0].durationBeforeAutomaticDenial",
        "P91D",
        "requestApprovalSettings.stages[0].durationBeforeAutomaticDenial",
    ),
    (
        "requestApprovalSettings.stages[0].durationBeforeAutomaticDenial",
        "PT1H",
        "requestApprovalSettings.stages[0].durationBeforeAutomaticDenial",
    ),
    (
        "requestApprovalSettings.isApprovalRequiredForAdd",
        1,
        "requestApprovalSettings.isApprovalRequiredForAdd",
    ),
    (
        "requestorSettings",
        {"enableTargetsToSelfAddAccess": True},
        "requestorSettings.enableTargetsToSelfAddAccess",
    ),
    (
        "questions",
        [{"@odata.type": G + "accessPackageQuestion", "text": "x"}],
        "questions[0].@odata.type",
    ),
    ("questions", [{"@odata.type": G + "accessPackageTextInputQuestion"}], "questions[0].text"),
    (
        "questions",
        [{"@odata.type": G + "accessPackageTextInputQuestion", "text": " "}],
        "questions[0].text",
    ),
    (
        "questions",
        [{"@odata.type": G + "accessPackageTextInputQuestion", "text": "x", "regexPattern": "(a"}],
        "questions[0].regexPattern",
    ),
    (
        "questions",
        [
            {
                "@odata.type": G + "accessPackageTextInputQuestion",
                "text": "x",
                "regexPattern": "a" * 1001,
            }
        ],
        "questions[0].regexPattern",
    ),
    (
        "questions",
        [{"@odata.type": G + "accessPackageMultipleChoiceQuestion", "text": "x", "choices": []}],
        "questions[0].choices",
    ),
    (
        "questions",
        [
            {
                "@odata.type": G + "accessPackageMultipleChoiceQuestion",
                "text": "x",
                "choices": [{"actualValue": "a"}, {"actualValue": "a"}],
            }
        ],
        "questions[0].choices[1].actualValue",
    ),
    (
        "questions",
        [
            {"@odata.type": G + "accessPackageTextInputQuestion", "text": "x", "id": "same"},
            {"@odata.type": G + "accessPackageTextInputQuestion", "text": "y", "id": "same"},
        ],
        "questions[1]",
    ),
    (
        "questions",
        [
            {
                "@odata.type": G + "accessPackageTextInputQuestion",
                "text": "x",
                "localizations": [{"languageCode": "not a code", "text": "y"}],
            }
        ],
        "questions[0].localizations[0].languageCode",
    ),
    (
        "automaticRequestSettings",
        {"requestAccessForAllowedTargets": True},
        "specificAllowedTargets",
    ),
    (
        "notificationSettings",
        {"isAssignmentNotificationDisabled": "no"},
        "notificationSettings.isAssignmentNotificationDisabled",
    ),
    (
        "customExtensionStageSettings",
        [{"stage": "whenever", "customExtension": {"id": "x"}}],
        "customExtensionStageSettings[0].stage",
    ),
    (
        "customExtensionStageSettings",
        [{"stage": "assignmentRequestCreated"}],
        "customExtensionStageSettings[0].customExtension.id",
    ),
    ("reviewSettings", {"isEnabled": True, "schedule": {}}, "reviewSettings.primaryReviewers"),
    (
        "reviewSettings",
        {"isEnabled": True, "primaryReviewers": [manager()], "schedule": {}},
        "reviewSettings.fallbackReviewers",
    ),
    ("reviewSettings", {"isEnabled": True, "isSelfReview": True}, "reviewSettings.schedule"),
    ("reviewSettings", {"expirationBehavior": "forget"}, "reviewSettings.expirationBehavior"),
]


@pytest.mark.parametrize(
    ("path", "value", "target"), BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD]
)
def test_each_bad_value_names_its_place(path: str, value: Any, target: str) -> None:
    given = with_path(path, copy.deepcopy(value))
    if path == "requestorSettings":  # the "None" scope cannot take requests
        given["allowedTargetScope"] = "notSpecified"
        given["specificAllowedTargets"] = []
    with pytest.raises(Invalid) as error:
        parse(given, now=NOW)
    assert error.value.target == target, error.value.message


def test_automatic_policies_take_no_requests_and_no_approval() -> None:
    rule = {
        "@odata.type": G + "attributeRuleMembers",
        "membershipRule": '(user.department -eq "Sales")',
    }
    auto = body(
        specificAllowedTargets=[rule],
        automaticRequestSettings={"gracePeriodBeforeAccessRemoval": "P7D"},
        requestorSettings={},
        requestApprovalSettings={},
    )
    doc = parse(auto, now=NOW)
    assert doc.is_automatic
    assert doc.automatic_request_settings == {
        "requestAccessForAllowedTargets": True,
        "removeAccessWhenTargetLeavesAllowedTargets": True,
        "gracePeriodBeforeAccessRemoval": "P7D",
    }
    assert doc.specific_allowed_targets == [{**rule, "description": None}]
    for change, target in (
        (
            {"requestorSettings": {"enableTargetsToSelfAddAccess": True}},
            "requestorSettings.enableTargetsToSelfAddAccess",
        ),
        (
            {"requestApprovalSettings": body()["requestApprovalSettings"]},
            "requestApprovalSettings.isApprovalRequiredForAdd",
        ),
        ({"specificAllowedTargets": [rule, group()]}, "specificAllowedTargets"),
        (
            {"allowedTargetScope": "allMemberUsers", "specificAllowedTargets": []},
            "specificAllowedTargets",
        ),
        (
            {"automaticRequestSettings": {"gracePeriodBeforeAccessRemoval": "P400D"}},
            "automaticRequestSettings.gracePeriodBeforeAccessRemoval",
        ),
        (
            {"specificAllowedTargets": [{**rule, "membershipRule": "(user.department -eq"}]},
            "specificAllowedTargets[0].membershipRule",
        ),
    ):
        with pytest.raises(Invalid) as error:
            parse({**auto, **change}, now=NOW)
        assert error.value.target == target, error.value.message
