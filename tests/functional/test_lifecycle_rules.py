"""The lifecycle's rules beyond the scenario, through HTTP on the current engine: the request
validation pipeline (one Graph error per rule, nothing changed), scheduled starts, automatic
assignment by rule with its grace period, the 14-day and 1-day reminders, custom-extension
webhooks at each stage, and requests by email that create governed guests (spec §5, §6, §7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from remit.db import Database
from remit.models.directory import User
from remit.models.lifecycle import AssignmentRequest
from remit.notify.webhooks import verify_signature
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import DOMAIN, EM, Tenant
from tests.lifecycle_support import (
    Campaign,
    admin_add,
    build_campaign,
    contractors_policy,
    holdings,
    request_state,
    user_add,
    worker,
)
from tests.matrix_support import fingerprint
from tests.peers import MailSink, Receiver, mail_to_sink


@pytest.fixture
def mail(settings: Settings) -> Iterator[MailSink]:
    with mail_to_sink(settings) as sink:
        yield sink


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


def drain(c: Campaign, settings: Settings) -> None:
    worker(c.t, settings).drain()


def open_policy(c: Campaign, package: str, **changes: Any) -> dict[str, Any]:
    """Marketing members request without approval, 30 days."""
    body = {
        **contractors_policy(package),
        "displayName": "Marketing, no approval",
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [
            {"@odata.type": "#microsoft.graph.groupMembers", "groupId": c.t.ids["marketing"]}
        ],
        "requestorSettings": {"enableTargetsToSelfAddAccess": True},
    }
    body.update(changes)
    return body


# ------------------------------------------------------------------- validation pipeline


def test_each_validation_rule_has_its_own_error_and_changes_nothing(
    c: Campaign, db: Database, settings: Settings
) -> None:
    t = c.t

    def refused(call: Any, status: int, code: str) -> None:
        before = fingerprint(db)
        r = call()
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code, r.text
        assert fingerprint(db) == before

    # Missing justification (the employees' policy requires one).
    refused(lambda: user_add(t, "sofia", c.package, justification=""), 400, "JustificationRequired")
    # Out of scope: Alex (who manages assignments, so sees the package) is not in Marketing;
    # Carl, who sees nothing of the catalog, learns nothing at all.
    refused(
        lambda: user_add(t, "alex", c.package, policy=c.employees), 400, "RequestorNotInPolicyScope"
    )
    refused(lambda: user_add(t, "carl", c.package, policy=c.employees), 404, "itemNotFound")
    # Duplicate open request.
    assert user_add(t, "sofia", c.package).status_code == 201
    refused(lambda: user_add(t, "sofia", c.package), 409, "ExistingOpenRequest")
    # Duplicate active assignment.
    assert admin_add(t, "alex", "carl", c.package, c.contractors).status_code == 201
    drain(c, settings)
    refused(
        lambda: admin_add(t, "alex", "carl", c.package, c.contractors), 409, "ExistingAssignment"
    )
    # Incompatible group: members of Finance may not hold Campaign 2027.
    r = t.post(
        "lena",
        f"{EM}/accessPackages/{c.package}/incompatibleGroups/$ref",
        {"@odata.id": f"https://graph.microsoft.com/v1.0/groups/{t.ids['finance']}"},
    )
    assert r.status_code == 204, r.text
    refused(
        lambda: admin_add(t, "alex", "ines", c.package, c.contractors), 400, "IncompatibleGroup"
    )
    # Policy disabled ("enable new requests" off): not even an administrator assigns through it.
    r = t.call(
        "lena",
        "PUT",
        f"{EM}/assignmentPolicies/{c.contractors}",
        {
            **contractors_policy(c.package),
            "requestorSettings": {"enableTargetsToSelfAddAccess": False, "acceptRequests": False},
        },
    )
    assert r.status_code == 200, r.text
    refused(lambda: admin_add(t, "alex", "omar", c.package, c.contractors), 400, "PolicyDisabled")
    # Catalog disabled.
    r = t.call("mamta", "PATCH", f"{EM}/catalogs/{c.catalog}", {"state": "unpublished"})
    assert r.status_code == 204, r.text
    refused(lambda: admin_add(t, "alex", "omar", c.package, c.employees), 400, "CatalogDisabled")


def test_missing_required_answers_and_questions_round_trip(c: Campaign) -> None:
    t = c.t
    package = c.new_package("lena", "Brand review", {"Planner"})
    question = {
        "@odata.type": "#microsoft.graph.accessPackageTextInputQuestion",
        "text": "Cost centre",
        "isRequired": True,
        "isSingleLineQuestion": True,
        "regexPattern": "[0-9]{4}",
    }
    policy = c.policy("lena", open_policy(c, package, questions=[question]))
    qid = t.get("lena", f"{EM}/assignmentPolicies/{policy}/questions").json()["value"][0]["id"]
    r = user_add(t, "sofia", package)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "MissingRequiredAnswer"
    answer = {
        "@odata.type": "#microsoft.graph.accessPackageAnswerString",
        "value": "12x4",
        "answeredQuestion": {"@odata.type": question["@odata.type"], "id": qid},
    }
    assert user_add(t, "sofia", package, answers=[answer]).status_code == 400
    r = user_add(t, "sofia", package, answers=[{**answer, "value": "1234"}])
    assert r.status_code == 201, r.text
    [stored] = r.json()["answers"]
    assert stored["value"] == "1234"
    assert stored["answeredQuestion"]["id"] == qid


# ------------------------------------------------------------------------ schedules


def test_a_future_start_waits_scheduled_then_delivers(
    c: Campaign, settings: Settings, clock: SteppingClock
) -> None:
    t = c.t
    start = (clock.now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "requestType": "adminAdd",
        "assignment": {
            "targetId": t.ids["carl"],
            "assignmentPolicyId": c.contractors,
            "accessPackageId": c.package,
        },
        "schedule": {
            "startDateTime": start,
            "expiration": {"type": "afterDuration", "duration": "P10D"},
        },
    }
    r = t.post("alex", f"{EM}/assignmentRequests", body)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["state"] == "scheduled"
    drain(c, settings)
    assert "group:campaigns" not in holdings(t, "carl")
    clock.advance(days=3, minutes=1)
    drain(c, settings)
    assert request_state(t, "alex", rid) == "delivered"
    assert "group:campaigns" in holdings(t, "carl")
    a = t.get("carl", f"{EM}/assignments/filterByCurrentUser(on='target')").json()["value"][0]
    end = a["schedule"]["expiration"]["endDateTime"]
    assert end.startswith((clock.now + timedelta(days=10)).strftime("%Y-%m-%d"))


def test_a_requested_end_beyond_the_policy_is_clamped_to_it(
    c: Campaign, clock: SteppingClock
) -> None:
    t = c.t
    far = (clock.now + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "requestType": "adminAdd",
        "assignment": {
            "targetId": t.ids["carl"],
            "assignmentPolicyId": c.contractors,
            "accessPackageId": c.package,
        },
        "schedule": {"expiration": {"type": "afterDateTime", "endDateTime": far}},
    }
    r = t.post("alex", f"{EM}/assignmentRequests", body)
    assert r.status_code == 201, r.text
    assert r.json()["schedule"]["expiration"]["duration"] == "P30D"


# --------------------------------------------------------------------- automatic assignment


def test_automatic_assignment_follows_the_rule_with_a_grace_period(
    c: Campaign, settings: Settings, clock: SteppingClock
) -> None:
    t = c.t
    package = c.new_package("lena", "Everyone in Marketing", {"Members"})
    body = {
        "displayName": "Marketing by department",
        "accessPackage": {"id": package},
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [
            {
                "@odata.type": "#microsoft.graph.attributeRuleMembers",
                "membershipRule": '(user.department -eq "Marketing")',
            }
        ],
        "automaticRequestSettings": {
            "requestAccessForAllowedTargets": True,
            "removeAccessWhenTargetLeavesAllowedTargets": True,
            "gracePeriodBeforeAccessRemoval": "P2D",
        },
        "expiration": {"type": "noExpiration"},
        "requestorSettings": {"enableTargetsToSelfAddAccess": False},
        "requestApprovalSettings": {"isApprovalRequiredForAdd": False, "stages": []},
    }
    assert t.post("lena", f"{EM}/assignmentPolicies", body).status_code == 403  # IGA only
    assert t.post("hana", f"{EM}/assignmentPolicies", body).status_code == 201
    drain(c, settings)
    listed = t.get(
        "hana",
        f"{EM}/assignments",
        **{"$filter": f"accessPackage/id eq '{package}'", "$expand": "target"},
    )
    holders = {a["target"]["principalName"].split("@")[0] for a in listed.json()["value"]}
    assert {"mamta", "lena", "omar", "sofia", "carl", "alex"} <= holders
    assert "mark" not in holders
    systems = t.get(
        "hana", f"{EM}/assignmentRequests", **{"$filter": "requestType eq 'systemAdd'"}
    ).json()["value"]
    assert len(systems) == len(holders)
    # Sofia moves to Finance: her access stays for the grace period, then goes.
    r = t.call("admin", "PATCH", f"/v1.0/users/{t.ids['sofia']}", {"department": "Finance"})
    assert r.status_code == 204, r.text
    clock.advance(minutes=6)
    drain(c, settings)
    site_role = f"site:{c.roles['Members']['originId']}"
    assert site_role in holdings(t, "sofia")
    clock.advance(days=2, minutes=6)
    drain(c, settings)
    assert site_role not in holdings(t, "sofia")


# --------------------------------------------------------------------------- reminders


def test_reminders_go_out_14_days_and_1_day_before_the_end(
    c: Campaign, settings: Settings, clock: SteppingClock, mail: MailSink
) -> None:
    t = c.t
    assert admin_add(t, "alex", "carl", c.package, c.contractors).status_code == 201
    drain(c, settings)
    before = len(mail.to(f"carl@{DOMAIN}"))
    clock.advance(days=16, hours=1)
    drain(c, settings)
    assert len(mail.to(f"carl@{DOMAIN}")) == before + 1
    clock.advance(hours=6)
    drain(c, settings)
    assert len(mail.to(f"carl@{DOMAIN}")) == before + 1, "one 14-day reminder only"
    clock.advance(days=12, hours=18)
    drain(c, settings)
    assert len(mail.to(f"carl@{DOMAIN}")) == before + 2, "then the 1-day one"


# ---------------------------------------------------------------------------- on behalf


def test_only_the_on_behalf_requestors_a_policy_names_may_request_for_others(c: Campaign) -> None:
    t = c.t
    settings = {
        "enableTargetsToSelfAddAccess": True,
        "enableOnBehalfRequestorsToAddAccess": True,
        "onBehalfRequestors": [
            {"@odata.type": "#microsoft.graph.singleUser", "userId": t.ids["hana"]}
        ],
    }
    named = c.policy("lena", open_policy(c, c.package, requestorSettings=settings))

    def for_sofia(alias: str) -> Any:
        body = {
            "requestType": "userAdd",
            "assignment": {
                "accessPackageId": c.package,
                "assignmentPolicyId": named,
                "targetId": t.ids["sofia"],
            },
        }
        return t.post(alias, f"{EM}/assignmentRequests", body)

    # Omar is Sofia's manager, but this policy names Hana only.
    r = for_sofia("omar")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "RequestorNotInPolicyScope"
    assert for_sofia("joe").status_code == 403
    r = for_sofia("hana")
    assert r.status_code == 201, r.text
    with t.db.write() as session:
        made = session.get_one(AssignmentRequest, r.json()["id"])
        assert (made.requestor_id, made.target_id) == (t.ids["hana"], t.ids["sofia"])


# ---------------------------------------------------------------------------- webhooks


def test_custom_extensions_are_called_at_each_stage_with_a_valid_signature(
    c: Campaign, settings: Settings
) -> None:
    t = c.t
    receiver = Receiver()
    try:
        r = t.post(
            "mamta",
            f"{EM}/catalogs/{c.catalog}/accessPackageCustomWorkflowExtensions",
            {
                "displayName": "Ticketing",
                "endpointConfiguration": {"url": receiver.url},
                "secret": "s3cret-s3cret-s3cret",
            },
        )
        assert r.status_code == 201, r.text
        ext = r.json()["id"]
        stages = [
            "assignmentRequestCreated",
            "assignmentRequestApproved",
            "assignmentRequestGranted",
            "assignmentRequestRemoved",
        ]
        body = open_policy(
            c,
            c.package,
            displayName="Hooked",
            customExtensionStageSettings=[
                {"stage": s, "customExtension": {"id": ext}} for s in stages
            ],
        )
        c.policy("lena", body)
        policies = t.get("lena", f"{EM}/accessPackages/{c.package}/assignmentPolicies").json()[
            "value"
        ]
        hooked = next(p["id"] for p in policies if p["displayName"] == "Hooked")
        assert user_add(t, "lena", c.package, policy=hooked).status_code == 201
        drain(c, settings)
        aid = t.get("lena", f"{EM}/assignments/filterByCurrentUser(on='target')").json()["value"][
            0
        ]["id"]
        assert (
            t.post(
                "alex",
                f"{EM}/assignmentRequests",
                {"requestType": "adminRemove", "assignment": {"id": aid}},
            ).status_code
            == 201
        )
        drain(c, settings)
        events = [h.headers["X-Remit-Event"] for h in receiver.hits]
        assert events == [
            "assignmentRequestCreated",
            "assignmentRequestGranted",
            "assignmentRequestRemoved",
        ], events
        for hit in receiver.hits:
            assert verify_signature(
                "s3cret-s3cret-s3cret",
                hit.headers["X-Remit-Timestamp"],
                hit.body,
                hit.headers["X-Remit-Signature"],
            )
            assert json.loads(hit.body)
    finally:
        receiver.close()


# ---------------------------------------------------------------------- external users


def test_a_request_by_email_creates_a_governed_guest_who_is_blocked_when_access_ends(
    c: Campaign, settings: Settings, clock: SteppingClock, db: Database
) -> None:
    t = c.t
    r = t.post(
        "hana",
        f"{EM}/connectedOrganizations",
        {
            "displayName": "Fabrikam",
            "identitySources": [
                {
                    "@odata.type": "#microsoft.graph.domainIdentitySource",
                    "domainName": "fabrikam.example",
                    "displayName": "Fabrikam",
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    partners = {
        **contractors_policy(c.package),
        "displayName": "Fabrikam partners",
        "allowedTargetScope": "specificConnectedOrganizationUsers",
        "specificAllowedTargets": [
            {
                "@odata.type": "#microsoft.graph.connectedOrganizationMembers",
                "connectedOrganizationId": org,
            }
        ],
    }
    policy = c.policy("lena", partners)
    # An address outside the organization does not meet the policy.
    bad = {
        "requestType": "adminAdd",
        "assignment": {
            "target": {"email": "eve@elsewhere.example"},
            "assignmentPolicyId": policy,
            "accessPackageId": c.package,
        },
    }
    assert t.post("alex", f"{EM}/assignmentRequests", bad).status_code == 400
    good = {**bad, "assignment": {**bad["assignment"], "target": {"email": "pat@fabrikam.example"}}}
    r = t.post("alex", f"{EM}/assignmentRequests", good)
    assert r.status_code == 201, r.text
    with db.write() as s:
        guest = s.execute(select(User).where(User.mail == "pat@fabrikam.example")).scalar_one()
        assert (guest.user_type, guest.subject_lifecycle, guest.connected_organization_id) == (
            "Guest",
            "governed",
            org,
        )
        guest_id = guest.id
    t.ids["pat"] = guest_id
    drain(c, settings)
    assert "group:campaigns" in holdings(t, "pat")
    # Access ends: the governed guest is blocked, then deleted after the configured delay.
    assert (
        t.call(
            "hana",
            "PATCH",
            f"{EM}/settings",
            {
                "externalUserLifecycleAction": "blockSignInAndDelete",
                "durationUntilExternalUserDeletedAfterBlocked": "P1D",
            },
        ).status_code
        == 204
    )
    clock.advance(days=30, minutes=1)
    drain(c, settings)
    with db.write() as s:
        guest = s.get(User, guest_id)
        assert guest is not None
        assert guest.account_enabled is False
    clock.advance(days=1, minutes=10)
    drain(c, settings)
    with db.write() as s:
        assert s.get(User, guest_id) is None
