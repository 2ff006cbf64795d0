"""The access-lifecycle scenario of issue #3, through HTTP, with an injectable clock, the real
job worker and a real SMTP server on loopback.

Lena (package manager of Mamta's Marketing catalog) builds "Campaign 2027": the campaigns group's
Member role, the planner's Planner app role and the hub's Members site role. Marketing employees
request it with a justification, approved by their manager and then by the catalog owner, for
90 days, extendable with approval; assignment managers assign contractors directly for 30 days.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from remit.audit.chain import verify
from remit.authz.roles import CATALOG_READER
from remit.db import Database
from remit.models.audit import AuditEvent
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import DOMAIN, EM, Tenant
from tests.lifecycle_support import (
    Campaign,
    admin_add,
    build_campaign,
    contractors_policy,
    decide,
    holdings,
    request_state,
    user_add,
    worker,
)
from tests.peers import MailSink, mail_to_sink


@pytest.fixture
def mail(settings: Settings) -> Iterator[MailSink]:
    with mail_to_sink(settings) as sink:
        yield sink


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock, mail: MailSink) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


def drain(c: Campaign, settings: Settings) -> int:
    return worker(c.t, settings).drain()


def requested_and_delivered(c: Campaign, settings: Settings, alias: str = "sofia") -> str:
    t = c.t
    r = user_add(t, alias, c.package)
    assert r.status_code == 201, r.text
    rid = str(r.json()["id"])
    assert decide(t, "omar" if alias == "sofia" else "mamta", rid).status_code == 204
    assert decide(t, "mamta", rid, why="campaign staff").status_code == 204
    drain(c, settings)
    assert request_state(t, alias, rid) == "delivered"
    return rid


def my_assignment(c: Campaign, alias: str) -> dict[str, Any]:
    r = c.t.get(
        alias, f"{EM}/assignments/filterByCurrentUser(on='target')", **{"$expand": "accessPackage"}
    )
    assert r.status_code == 200, r.text
    found = [a for a in r.json()["value"] if a["accessPackage"]["id"] == c.package]
    assert len(found) == 1, found
    return found[0]


def role_ids(c: Campaign) -> set[str]:
    return {
        "group:campaigns",
        f"app:{c.roles['Planner']['originId']}",
        f"site:{c.roles['Members']['originId']}",
    }


def test_the_employee_sees_the_policy_that_applies_to_them(c: Campaign) -> None:
    r = c.t.post("sofia", f"{EM}/accessPackages/{c.package}/getApplicablePolicyRequirements")
    assert r.status_code == 200, r.text
    [req] = r.json()["value"]
    assert req["policyId"] == c.employees
    assert req["isApprovalRequiredForAdd"] is True
    assert req["isRequestorJustificationRequired"] is True
    # The contractor is in no policy's scope: nothing applies, and the request is refused.
    r = c.t.post("carl", f"{EM}/accessPackages/{c.package}/getApplicablePolicyRequirements")
    assert r.status_code in (200, 404)
    assert user_add(c.t, "carl", c.package).status_code in (400, 404)


def test_request_manager_then_owner_approve_and_all_three_roles_are_delivered(
    c: Campaign, settings: Settings, mail: MailSink, clock: SteppingClock
) -> None:
    t = c.t
    r = user_add(t, "sofia", c.package)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "pendingApproval"
    rid = r.json()["id"]
    # Omar (her manager) has it in his inbox; Mamta (stage 2) not yet; Sofia never.
    inbox = t.get("omar", f"{EM}/assignmentRequests/filterByCurrentUser(on='approver')").json()
    assert [x["id"] for x in inbox["value"]] == [rid]
    assert (
        t.get("mamta", f"{EM}/assignmentRequests/filterByCurrentUser(on='approver')").json()[
            "value"
        ]
        == []
    )
    assert (
        t.get(
            "sofia", f"{EM}/accessPackageAssignmentApprovals/filterByCurrentUser(on='approver')"
        ).json()["value"]
        == []
    )
    # Mamta cannot jump the queue: she is not a stage-1 approver.
    stage1 = t.get("omar", f"{EM}/accessPackageAssignmentApprovals/{rid}").json()["stages"][0]
    assert stage1["assignedToMe"] is True
    r = t.call(
        "mamta",
        "PATCH",
        f"{EM}/accessPackageAssignmentApprovals/{rid}/stages/{stage1['id']}",
        {"reviewResult": "Approve"},
    )
    assert r.status_code == 403, r.text
    assert decide(t, "omar", rid).status_code == 204
    assert request_state(t, "sofia", rid) == "pendingApproval"
    # Stage 2 requires the approver's justification.
    assert decide(t, "mamta", rid, why="").status_code == 400
    assert decide(t, "mamta", rid, why="campaign staff").status_code == 204
    # The builtin connector delivers in the approving transaction: the roles are there when
    # the approval returns.
    assert request_state(t, "sofia", rid) == "delivered"
    assert holdings(t, "sofia") >= role_ids(c)
    drain(c, settings)
    a = my_assignment(c, "sofia")
    assert a["state"] == "delivered"
    end = a["schedule"]["expiration"]["endDateTime"]
    assert end.startswith((clock.now + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M"))
    # Everyone involved was told.
    assert any("approv" in s.lower() for s in mail.to(f"omar@{DOMAIN}"))
    assert any("approv" in s.lower() for s in mail.to(f"mamta@{DOMAIN}"))
    assert mail.to(f"sofia@{DOMAIN}"), "the requestor hears that access is delivered"


def test_a_denial_in_any_stage_ends_the_request(
    c: Campaign, settings: Settings, mail: MailSink
) -> None:
    t = c.t
    rid = user_add(t, "sofia", c.package).json()["id"]
    assert decide(t, "omar", rid).status_code == 204
    assert decide(t, "mamta", rid, result="Deny", why="not this quarter").status_code == 204
    assert request_state(t, "sofia", rid) == "denied"
    drain(c, settings)
    assert holdings(t, "sofia") & role_ids(c) == set()
    assert (
        t.get("sofia", f"{EM}/assignments/filterByCurrentUser(on='target')").json()["value"] == []
    )
    assert mail.to(f"sofia@{DOMAIN}"), "the requestor hears of the denial"
    # The stage is decided: a late approval is a conflict, not a second decision.
    stages = t.get("mamta", f"{EM}/accessPackageAssignmentApprovals/{rid}").json()["stages"]
    r = t.call(
        "mamta",
        "PATCH",
        f"{EM}/accessPackageAssignmentApprovals/{rid}/stages/{stages[1]['id']}",
        {"reviewResult": "Approve", "justification": "x"},
    )
    assert r.status_code == 409, r.text


def test_day_90_takes_access_away_except_what_another_assignment_still_grants(
    c: Campaign, settings: Settings, clock: SteppingClock, mail: MailSink
) -> None:
    t = c.t
    # "Campaign tools" also grants the campaigns group's Member role, directly and for good.
    tools = c.new_package("lena", "Campaign tools", {"Member"})
    forever = c.policy(
        "lena",
        {
            **contractors_policy(tools),
            "displayName": "Direct, no end",
            "expiration": {"type": "noExpiration"},
        },
    )
    assert admin_add(t, "alex", "sofia", tools, forever).status_code == 201
    requested_and_delivered(c, settings)
    assert holdings(t, "sofia") >= role_ids(c)
    clock.advance(days=90, minutes=1)
    # Before the sweep runs, the assignment already reads as expired.
    assert my_assignment(c, "sofia")["state"] == "expired"
    drain(c, settings)
    held = holdings(t, "sofia")
    assert "group:campaigns" in held, "still granted by Campaign tools"
    assert f"app:{c.roles['Planner']['originId']}" not in held
    assert f"site:{c.roles['Members']['originId']}" not in held
    a = my_assignment(c, "sofia")
    assert a["state"] == "expired"
    assert a["expiredDateTime"]
    removal = t.get(
        "alex", f"{EM}/assignmentRequests", **{"$filter": "requestType eq 'systemRemove'"}
    ).json()["value"]
    assert len(removal) == 1
    assert removal[0]["state"] == "delivered"
    assert any("ended" in s.lower() for s in mail.to(f"sofia@{DOMAIN}"))


def test_expired_access_is_never_honoured_even_before_the_sweep(
    c: Campaign, settings: Settings, clock: SteppingClock
) -> None:
    t = c.t
    # Members of the campaigns group may read Mark's Finance catalog.
    finance = t.create_catalog("mark", "Finance")
    assert t.assign_role("mark", t.ids["campaigns"], CATALOG_READER.id, finance).status_code == 201
    requested_and_delivered(c, settings)
    assert t.get("sofia", f"{EM}/catalogs/{finance}").status_code == 200
    clock.advance(days=90, seconds=1)
    # No worker has run: the membership row is still there, but it counts for nothing.
    assert "group:campaigns" in holdings(t, "sofia")
    assert t.get("sofia", f"{EM}/catalogs/{finance}").status_code == 404


def test_assignment_managers_assign_contractors_directly_for_30_days(
    c: Campaign, settings: Settings, clock: SteppingClock
) -> None:
    t = c.t
    r = admin_add(t, "alex", "carl", c.package, c.contractors)
    assert r.status_code == 201, r.text
    assert r.json()["requestType"] == "adminAdd"
    drain(c, settings)
    assert holdings(t, "carl") >= role_ids(c)
    a = my_assignment(c, "carl")
    assert a["schedule"]["expiration"]["endDateTime"].startswith(
        (clock.now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    )
    # Sofia holds no role on the catalog: she cannot assign anyone.
    assert admin_add(t, "sofia", "nobody", c.package, c.contractors).status_code == 404


def test_direct_assignment_never_bypasses_the_policys_approval(
    c: Campaign, settings: Settings
) -> None:
    t = c.t
    r = admin_add(t, "alex", "sofia", c.package, c.employees)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "pendingApproval"
    drain(c, settings)
    assert holdings(t, "sofia") & role_ids(c) == set()


def test_an_undecided_request_is_escalated_then_denied_at_its_deadline(
    c: Campaign, settings: Settings, clock: SteppingClock, mail: MailSink
) -> None:
    t = c.t
    # Lena has no manager: the fallback approver (Mamta) stands in for stage 1.
    rid = user_add(t, "lena", c.package).json()["id"]
    assert [
        x["id"]
        for x in t.get(
            "mamta", f"{EM}/assignmentRequests/filterByCurrentUser(on='approver')"
        ).json()["value"]
    ] == [rid]
    assert (
        t.get("hana", f"{EM}/assignmentRequests/filterByCurrentUser(on='approver')").json()["value"]
        == []
    )
    clock.advance(days=7, minutes=1)
    drain(c, settings)
    inbox = t.get("hana", f"{EM}/assignmentRequests/filterByCurrentUser(on='approver')").json()[
        "value"
    ]
    assert [x["id"] for x in inbox] == [rid], "forwarded to the alternate approver"
    assert mail.to(f"hana@{DOMAIN}")
    clock.advance(days=7)
    drain(c, settings)
    r = t.get("lena", f"{EM}/assignmentRequests/{rid}").json()
    assert (r["state"], r["status"]) == ("denied", "TimedOut")
    assert any("expired" in s.lower() for s in mail.to(f"lena@{DOMAIN}"))


def test_a_holder_of_an_incompatible_package_cannot_request(
    c: Campaign, settings: Settings
) -> None:
    t = c.t
    audit = c.new_package("lena", "Audit 2027", {"Planner"})
    open_policy = {
        **contractors_policy(audit),
        "displayName": "Marketing, no approval",
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [
            {"@odata.type": "#microsoft.graph.groupMembers", "groupId": t.ids["marketing"]}
        ],
        "requestorSettings": {"enableTargetsToSelfAddAccess": True},
    }
    c.policy("lena", open_policy)
    r = t.post(
        "lena",
        f"{EM}/accessPackages/{audit}/incompatibleAccessPackages/$ref",
        {
            "@odata.id": f"https://graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/accessPackages/{c.package}"
        },
    )
    assert r.status_code == 204, r.text
    requested_and_delivered(c, settings)
    r = user_add(t, "sofia", audit)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "IncompatibleAccessPackage"
    # Omar holds nothing incompatible: he may.
    assert user_add(t, "omar", audit).status_code == 201


def test_extension_with_approval_moves_the_end(
    c: Campaign, settings: Settings, clock: SteppingClock
) -> None:
    t = c.t
    requested_and_delivered(c, settings)
    aid = my_assignment(c, "sofia")["id"]
    clock.advance(days=80)
    r = t.post(
        "sofia",
        f"{EM}/assignmentRequests",
        {
            "requestType": "userExtend",
            "assignment": {"id": aid},
            "justification": "campaign runs late",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "pendingApproval"
    rid = r.json()["id"]
    assert decide(t, "omar", rid).status_code == 204
    assert decide(t, "mamta", rid, why="ok").status_code == 204
    assert request_state(t, "sofia", rid) == "delivered"
    end = my_assignment(c, "sofia")["schedule"]["expiration"]["endDateTime"]
    assert end.startswith((clock.now + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M"))
    clock.advance(days=20)
    drain(c, settings)
    assert holdings(t, "sofia") >= role_ids(c), "day 100: still within the extension"


def test_self_removal_revokes_at_once(c: Campaign, settings: Settings) -> None:
    t = c.t
    requested_and_delivered(c, settings)
    aid = my_assignment(c, "sofia")["id"]
    r = t.post(
        "sofia",
        f"{EM}/assignmentRequests",
        {"requestType": "userRemove", "assignment": {"id": aid}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "delivered"
    assert holdings(t, "sofia") & role_ids(c) == set()
    assert my_assignment(c, "sofia")["state"] == "expired"


def test_the_whole_history_of_a_user_reads_back_from_the_audit_log(
    c: Campaign, settings: Settings, clock: SteppingClock, db: Database
) -> None:
    requested_and_delivered(c, settings)
    clock.advance(days=91)
    drain(c, settings)
    with db.read() as conn:
        events = (
            conn.execute(
                select(AuditEvent.activity)
                .where(AuditEvent.subject_id == c.t.ids["sofia"])
                .order_by(AuditEvent.seq)
            )
            .scalars()
            .all()
        )
        assert verify(conn).ok
    for expected in (
        "User requests access package assignment",
        "Create request approval",
        "Approve access package assignment request",
        "Ready to fulfill access package assignment request",
        "Fulfill access package assignment",
        "Remove access package assignment",
    ):
        assert expected in events, (expected, events)
    assert events.index("Fulfill access package assignment") < events.index(
        "Remove access package assignment"
    )
    # The same history through the API, for whoever may read the audit log.
    sofia = c.t.ids["sofia"]
    r = c.t.get("hana", "/v1.0/auditLogs/directoryAudits", **{"$filter": f"subjectId eq '{sofia}'"})
    assert r.status_code == 200, r.text
    listed = r.json()["value"]
    assert [e["activityDisplayName"] for e in listed] == events
    assert all({"key": "subjectId", "value": sofia} in e["additionalDetails"] for e in listed)


def test_roles_added_to_or_removed_from_a_package_follow_its_assignees(
    c: Campaign, settings: Settings
) -> None:
    t = c.t
    requested_and_delivered(c, settings)
    viewer = next(r for n, r in c.roles.items() if n == "Member")
    scopes = t.get(
        "lena", f"{EM}/accessPackages/{c.package}/resourceRoleScopes", **{"$expand": "role"}
    ).json()["value"]
    member_scope = next(s for s in scopes if s["role"]["id"] == viewer["id"])
    r = t.call(
        "lena", "DELETE", f"{EM}/accessPackages/{c.package}/resourceRoleScopes/{member_scope['id']}"
    )
    assert r.status_code == 204, r.text
    assert "group:campaigns" not in holdings(t, "sofia"), "revoked at once"
    c.add_roles("lena", c.package, {"Member"})
    assert "group:campaigns" in holdings(t, "sofia"), "granted at once"
    assert my_assignment(c, "sofia")["state"] == "delivered"


def test_a_package_with_active_assignments_cannot_be_deleted(
    c: Campaign, settings: Settings
) -> None:
    t = c.t
    requested_and_delivered(c, settings)
    r = t.call("lena", "DELETE", f"{EM}/accessPackages/{c.package}")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "AccessPackageHasActiveAssignments"
    r = t.call("lena", "DELETE", f"{EM}/assignmentPolicies/{c.employees}")
    assert r.status_code == 409, r.text
