"""Assignment policies through HTTP (spec §5, graph-api §A.3.4), and the requestor's view of
packages: getApplicablePolicyRequirements and filterByCurrentUser(on='allowedRequestor').

The world: Marketing (owner mamta; lena access package manager, sofia assignment manager, omar
reader) with two packages; Finance (owner mark) with one. Guests, connected organizations,
custom extensions and assignments are written straight to the database (their own operations
are other issues' work).
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from kiota_serialization_json.json_parse_node import JsonParseNode
from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter
from msgraph.generated.models.access_package import AccessPackage as SdkPackage
from msgraph.generated.models.access_package_approval_stage import AccessPackageApprovalStage
from msgraph.generated.models.access_package_assignment_approval_settings import (
    AccessPackageAssignmentApprovalSettings,
)
from msgraph.generated.models.access_package_assignment_policy import (
    AccessPackageAssignmentPolicy,
)
from msgraph.generated.models.access_package_assignment_requestor_settings import (
    AccessPackageAssignmentRequestorSettings,
)
from msgraph.generated.models.access_package_text_input_question import (
    AccessPackageTextInputQuestion,
)
from msgraph.generated.models.allowed_target_scope import AllowedTargetScope
from msgraph.generated.models.expiration_pattern import ExpirationPattern
from msgraph.generated.models.expiration_pattern_type import ExpirationPatternType
from msgraph.generated.models.group_members import GroupMembers
from msgraph.generated.models.single_user import SingleUser
from sqlalchemy import select, text

from remit.authz.actor import system_actor
from remit.authz.roles import ASSIGNMENT_MANAGER, CATALOG_READER, PACKAGE_MANAGER
from remit.context import Ctx
from remit.directory import operations as d
from remit.errors import Conflict
from remit.models.audit import AuditEvent
from remit.models.directory import User
from remit.models.external import ConnectedOrganization
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.notify import CustomExtension
from remit.models.policies import AssignmentPolicy, PolicyTarget
from remit.policies import document
from remit.policies import operations as ops
from remit.policies import scope as requestors
from tests.factories import EM, Tenant, upn
from tests.matrix_support import fingerprint
from tests.unit.test_policy_document import BAD, with_path

G = "#microsoft.graph."
POLICIES = f"{EM}/assignmentPolicies"
MINE = f"{EM}/accessPackages/filterByCurrentUser(on='allowedRequestor')"


@dataclass
class World:
    t: Tenant
    cat: str
    pkg: str
    pkg2: str
    other_cat: str
    other_pkg: str

    def id(self, alias: str) -> str:
        return self.t.ids[alias]

    def create(self, alias: str, body: dict[str, Any]) -> httpx.Response:
        return self.t.post(alias, POLICIES, body)

    def created(self, alias: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.create(alias, body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def put(self, alias: str, policy_id: str, body: dict[str, Any]) -> httpx.Response:
        return self.t.call(alias, "PUT", f"{POLICIES}/{policy_id}", json=body)

    def requirements(self, alias: str, package_id: str) -> httpx.Response:
        return self.t.post(
            alias, f"{EM}/accessPackages/{package_id}/getApplicablePolicyRequirements"
        )

    def offered(self, alias: str, package_id: str) -> list[str]:
        r = self.requirements(alias, package_id)
        assert r.status_code in (200, 404), r.text
        return [] if r.status_code == 404 else [p["policyId"] for p in r.json()["value"]]

    def listed(self, alias: str) -> set[str]:
        r = self.t.get(alias, MINE)
        assert r.status_code == 200, r.text
        return {p["id"] for p in r.json()["value"]}

    def package(self, name: str, catalog: str | None = None, alias: str = "admin") -> str:
        r = self.t.create_package(alias, catalog or self.cat, name)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def guest(self, alias: str, org: str | None) -> str:
        with self.t.db.write() as s:
            ctx = Ctx(s, system_actor("test"), self.t.clock())
            user = d.create_user(
                ctx, user_principal_name=upn(alias), display_name=alias, user_type="Guest"
            )
            user.connected_organization_id = org
            self.t.ids[alias] = user.id
            return user.id

    def organization(self, name: str, state: str = "configured") -> str:
        with self.t.db.write() as s:
            now = self.t.clock()
            org = ConnectedOrganization(
                display_name=name, state=state, created_at=now, modified_at=now
            )
            s.add(org)
            s.flush()
            return org.id

    def extension(self, catalog: str) -> str:
        with self.t.db.write() as s:
            now = self.t.clock()
            ext = CustomExtension(
                catalog_id=catalog,
                display_name="hook",
                endpoint_url="https://hooks.example/x",
                secret="s3cret",
                created_at=now,
                modified_at=now,
            )
            s.add(ext)
            s.flush()
            return ext.id

    def stored(self, policy_id: str) -> AssignmentPolicy:
        with self.t.db.write() as s:
            found = s.get(AssignmentPolicy, policy_id)
            assert found is not None
            s.expunge(found)
            return found


@pytest.fixture
def w(tenant: Tenant) -> World:
    t = tenant
    cat = t.create_catalog("mamta", "Marketing")
    for alias, role in (
        ("lena", PACKAGE_MANAGER.id),
        ("sofia", ASSIGNMENT_MANAGER.id),
        ("omar", CATALOG_READER.id),
    ):
        assert t.assign_role("mamta", alias, role, cat).status_code == 201
    pkg = t.create_package("lena", cat, "Campaign tools").json()["id"]
    pkg2 = t.create_package("lena", cat, "Brand kit").json()["id"]
    other_cat = t.create_catalog("mark", "Finance")
    other_pkg = t.create_package("mark", other_cat, "Ledger access").json()["id"]
    return World(t, cat, pkg, pkg2, other_cat, other_pkg)


def user(uid: str) -> dict[str, Any]:
    return {"@odata.type": G + "singleUser", "userId": uid}


def group(gid: str) -> dict[str, Any]:
    return {"@odata.type": G + "groupMembers", "groupId": gid}


def requests_from(
    w: World, package: str, scope: str = "allMemberUsers", **changes: Any
) -> dict[str, Any]:
    """A request policy without approval for ``scope``."""
    body: dict[str, Any] = {
        "displayName": f"{scope} requests",
        "description": "self-service",
        "accessPackage": {"id": package},
        "allowedTargetScope": scope,
        "requestorSettings": {"enableTargetsToSelfAddAccess": True},
        "expiration": {"type": "afterDuration", "duration": "P30D"},
    }
    body.update(changes)
    return body


def approved(w: World, package: str) -> dict[str, Any]:
    """The scenario's policy: the marketing group may request, mamta approves, 30 days."""
    return requests_from(
        w,
        package,
        "specificDirectoryUsers",
        displayName="Marketing requests",
        specificAllowedTargets=[group(w.id("marketing"))],
        requestApprovalSettings={
            "isApprovalRequiredForAdd": True,
            "isRequestorJustificationRequired": True,
            "stages": [{"primaryApprovers": [user(w.id("mamta"))]}],
        },
        questions=[
            {
                "@odata.type": G + "accessPackageTextInputQuestion",
                "text": "Cost centre?",
                "isRequired": True,
                "regexPattern": "^[0-9]{4}$",
            },
            {
                "@odata.type": G + "accessPackageMultipleChoiceQuestion",
                "text": "Which region?",
                "choices": [{"actualValue": "emea"}, {"actualValue": "apac"}],
            },
        ],
    )


def audit(w: World, activity: str) -> list[AuditEvent]:
    with w.t.db.write() as s:
        rows = s.execute(select(AuditEvent).where(AuditEvent.activity == activity)).scalars()
        return list(rows)


# ---------------------------------------------------------------- create, read, replace, delete


def test_create_read_list_replace_delete(w: World) -> None:
    t = w.t
    created = w.created("lena", approved(w, w.pkg))
    pid = created["id"]
    assert created["allowedTargetScope"] == "specificDirectoryUsers"
    assert created["specificAllowedTargets"] == [
        {"@odata.type": G + "groupMembers", "groupId": w.id("marketing"), "description": None}
    ]
    stage = created["requestApprovalSettings"]["stages"][0]
    assert stage["@odata.type"] == G + "accessPackageApprovalStage"
    assert stage["durationBeforeAutomaticDenial"] == "P14D"
    assert stage["durationBeforeEscalation"] == "PT0S"
    assert created["expiration"] == {
        "type": "afterDuration",
        "endDateTime": None,
        "duration": "P30D",
    }
    assert created["requestorSettings"]["acceptRequests"] is True

    got = t.get("omar", f"{POLICIES}/{pid}", **{"$expand": "accessPackage,catalog,questions"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["accessPackage"]["id"] == w.pkg
    assert body["catalog"]["id"] == w.cat
    assert {
        k: v for k, v in body.items() if k not in ("accessPackage", "catalog", "@odata.context")
    } == {k: v for k, v in created.items() if k != "@odata.context"}

    other = w.created("lena", requests_from(w, w.pkg2))["id"]
    for query, expected in (
        (f"accessPackage/id eq '{w.pkg}'", {pid}),
        (f"catalog/id eq '{w.cat}' and displayName eq 'Marketing requests'", {pid}),
        (f"id eq '{pid}'", {pid}),
        (f"accessPackage/id eq '{w.pkg2}'", {other}),
    ):
        r = t.get("lena", POLICIES, **{"$filter": query})
        assert r.status_code == 200, r.text
        assert {p["id"] for p in r.json()["value"]} == expected, query
    listed = t.get("lena", POLICIES, **{"$expand": "accessPackage", "$top": "1"}).json()
    assert len(listed["value"]) == 1
    assert "accessPackage" in listed["value"][0]
    assert "skiptoken" in listed["@odata.nextLink"]
    nested = t.get("omar", f"{EM}/accessPackages/{w.pkg}/assignmentPolicies").json()
    assert [p["id"] for p in nested["value"]] == [pid]

    # PUT: a GET echoed back with a change; ids of questions survive, version moves on.
    t.clock.advance(minutes=5)  # type: ignore[attr-defined]
    changed = copy.deepcopy(body)
    changed["displayName"] = "Marketing requests (renamed)"
    changed["expiration"] = {"type": "afterDuration", "duration": "P60D"}
    r = w.put("lena", pid, changed)
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Marketing requests (renamed)"
    assert r.json()["expiration"]["duration"] == "P60D"
    assert r.json()["questions"] == created["questions"]
    assert r.json()["modifiedDateTime"] > created["modifiedDateTime"]
    assert w.stored(pid).version == 2
    assert w.put("lena", pid, r.json()).status_code == 200
    assert w.stored(pid).version == 2  # an identical PUT changes nothing

    (update,) = audit(w, "UpdateEntitlementGrantPolicy")
    assert update.target_type == "AccessPackageAssignmentPolicy"
    assert update.details["before"] == {
        "displayName": "Marketing requests",
        "expiration": {"type": "afterDuration", "endDateTime": None, "duration": "P30D"},
    }
    assert update.details["after"]["displayName"] == "Marketing requests (renamed)"
    (create,) = [e for e in audit(w, "CreateEntitlementGrantPolicy") if e.target_id == pid]
    assert create.details["after"]["accessPackageId"] == w.pkg

    assert t.call("lena", "DELETE", f"{POLICIES}/{pid}").status_code == 204
    assert t.get("lena", f"{POLICIES}/{pid}").status_code == 404
    (deleted,) = audit(w, "DeleteEntitlementGrantPolicy")
    assert deleted.details["before"]["displayName"] == "Marketing requests (renamed)"
    with t.db.write() as s:
        assert s.execute(select(PolicyTarget).where(PolicyTarget.policy_id == pid)).first() is None


def test_questions_round_trip_with_stable_ids(w: World) -> None:
    created = w.created("lena", approved(w, w.pkg))
    ids = [q["id"] for q in created["questions"]]
    assert len(set(ids)) == 2
    r = w.t.get("omar", f"{POLICIES}/{created['id']}/questions")
    assert r.status_code == 200
    assert r.json()["value"] == created["questions"]
    assert [q["@odata.type"] for q in r.json()["value"]] == [
        G + "accessPackageTextInputQuestion",
        G + "accessPackageMultipleChoiceQuestion",
    ]
    # Reordered, one edited, one new: given ids are kept, the new one gets its own.
    body = approved(w, w.pkg)
    body["questions"] = [
        {**created["questions"][1], "text": "Which region, please?"},
        created["questions"][0],
        {"@odata.type": "#microsoft.graph.accessPackageTextInputQuestion", "text": "Manager?"},
    ]
    r = w.put("lena", created["id"], body)
    assert r.status_code == 200, r.text
    after = r.json()["questions"]
    assert [q["id"] for q in after[:2]] == [ids[1], ids[0]]
    assert after[0]["text"] == "Which region, please?"
    assert after[2]["id"] not in ids


def test_questions_and_extension_stages_are_added_through_their_own_paths(w: World) -> None:
    created = w.created("lena", approved(w, w.pkg))
    pid = created["id"]
    questions, stages = (
        f"{POLICIES}/{pid}/questions",
        f"{POLICIES}/{pid}/customExtensionStageSettings",
    )
    text = {"@odata.type": G + "accessPackageTextInputQuestion", "text": "Manager?"}
    r = w.t.post("lena", questions, text)
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["text"] == "Manager?"
    assert added["id"] not in {q["id"] for q in created["questions"]}
    listed = w.t.get("omar", questions).json()["value"]
    assert [q["id"] for q in listed] == [*(q["id"] for q in created["questions"]), added["id"]]
    assert len(audit(w, "UpdateEntitlementGrantPolicy")) == 1
    # Checked as a PUT of the whole policy would be; a refusal changes nothing.
    before = w.stored(pid).version
    for body, status in (
        ({**text, "regexPattern": "(?=lookahead)"}, 400),
        ({**text, "id": added["id"]}, 409),
        (["not", "an", "object"], 400),
    ):
        r = w.t.post("lena", questions, body)
        assert r.status_code == status, r.text
    assert w.t.post("omar", questions, text).status_code == 403  # a reader
    assert w.t.post("mark", questions, text).status_code == 404  # another catalog's owner
    assert w.stored(pid).version == before
    # Extension stages: the catalog's own extensions only.
    ext = w.extension(w.cat)
    assert w.t.get("omar", stages).json()["value"] == []
    stage = {"stage": "assignmentRequestApproved", "customExtension": {"id": ext}}
    r = w.t.post("lena", stages, stage)
    assert r.status_code == 201, r.text
    assert r.json()["customExtension"]["id"] == ext
    assert [x["id"] for x in w.t.get("omar", stages).json()["value"]] == [r.json()["id"]]
    foreign = {**stage, "customExtension": {"id": w.extension(w.other_cat)}}
    assert w.t.post("lena", stages, foreign).status_code in (400, 404)
    assert len(w.stored(pid).custom_extension_stage_settings) == 1


def test_stored_documents_are_normalized_from_sdk_forms(w: World) -> None:
    ext = w.extension(w.cat)
    body = requests_from(
        w,
        w.pkg,
        "SpecificDirectoryUsers",
        specificAllowedTargets=[
            {"@odata.type": "#Microsoft.Graph.SingleUser", "userId": w.id("nobody")},
            {"@odata.type": "groupmembers", "groupId": w.id("finance")},
        ],
        expiration={"type": "AFTERDURATION", "duration": "30 days, 0:00:00"},
        requestApprovalSettings={
            "isApprovalRequiredForAdd": True,
            "stages": [
                {
                    "durationBeforeAutomaticDenial": "7 days, 0:00:00",
                    "isEscalationEnabled": True,
                    "durationBeforeEscalation": "2 days, 0:00:00",
                    "primaryApprovers": [{"@odata.type": "requestorManager", "managerLevel": 1}],
                    "fallbackPrimaryApprovers": [user(w.id("mamta"))],
                    "escalationApprovers": [{"@odata.type": "requestormanager", "managerLevel": 2}],
                    "fallbackEscalationApprovers": [group(w.id("marketing"))],
                }
            ],
        },
        automaticRequestSettings=None,
        customExtensionStageSettings=[
            {"stage": "ASSIGNMENTREQUESTCREATED", "customExtension": {"id": ext}}
        ],
        notificationSettings={"isAssignmentNotificationDisabled": True},
        reviewSettings={
            "isEnabled": True,
            "isSelfReview": True,
            "expirationBehavior": "REMOVEACCESS",
            "schedule": {
                "startDateTime": "2030-01-01T00:00:00Z",
                "expiration": {"type": "afterDuration", "duration": "14 days, 0:00:00"},
                "recurrence": {
                    "pattern": {"type": "absoluteMonthly", "interval": 3},
                    "range": {"type": "noEnd", "startDate": "2030-01-01"},
                },
            },
        },
    )
    created = w.created("lena", body)
    assert created["expiration"]["duration"] == "P30D"
    stage = created["requestApprovalSettings"]["stages"][0]
    assert (stage["durationBeforeAutomaticDenial"], stage["durationBeforeEscalation"]) == (
        "P7D",
        "P2D",
    )
    setting = created["customExtensionStageSettings"][0]
    assert setting["stage"] == "assignmentRequestCreated"
    assert setting["customExtension"] == {
        "@odata.type": G + "accessPackageAssignmentRequestWorkflowExtension",
        "id": ext,
    }
    p = w.stored(created["id"])
    assert p.allowed_target_scope == "specificDirectoryUsers"
    assert p.specific_allowed_targets == [
        {"@odata.type": G + "singleUser", "userId": w.id("nobody"), "description": None},
        {"@odata.type": G + "groupMembers", "groupId": w.id("finance"), "description": None},
    ]
    assert p.request_approval_settings["stages"][0] == {
        "durationBeforeAutomaticDenial": "P7D",
        "isApproverJustificationRequired": False,
        "isEscalationEnabled": True,
        "durationBeforeEscalation": "P2D",
        "primaryApprovers": [{"@odata.type": G + "requestorManager", "managerLevel": 1}],
        "fallbackPrimaryApprovers": [
            {"@odata.type": G + "singleUser", "userId": w.id("mamta"), "description": None}
        ],
        "escalationApprovers": [{"@odata.type": G + "requestorManager", "managerLevel": 2}],
        "fallbackEscalationApprovers": [
            {"@odata.type": G + "groupMembers", "groupId": w.id("marketing"), "description": None}
        ],
    }
    assert p.custom_extension_stage_settings == [
        {"id": setting["id"], "stage": "assignmentRequestCreated", "customExtension": {"id": ext}}
    ]
    assert p.notification_settings == {"isAssignmentNotificationDisabled": True}
    assert p.review_settings is not None
    assert p.review_settings["expirationBehavior"] == "removeAccess"
    assert p.review_settings["schedule"]["expiration"]["duration"] == "P14D"
    assert p.automatic_request_settings is None
    assert p.auto_assignment_key is None
    with w.t.db.write() as s:
        targets = s.execute(
            select(PolicyTarget.kind, PolicyTarget.subject_id).where(PolicyTarget.policy_id == p.id)
        ).all()
    assert sorted(targets) == sorted(
        [("singleUser", w.id("nobody")), ("groupMembers", w.id("finance"))]
    )


# ---------------------------------------------------------------- validation


def test_every_bad_document_is_a_400_that_changes_nothing(w: World) -> None:
    before = fingerprint(w.t.db)
    failures = []
    for path, value, target in BAD:
        if "membershipRule" in str(value):
            continue  # rules are checked with automatic policies, which only an IGA may write
        body = with_path(path, copy.deepcopy(value))
        body["accessPackage"] = {"id": w.pkg}
        if path == "requestorSettings":
            body["allowedTargetScope"], body["specificAllowedTargets"] = "notSpecified", []
        r = w.create("hana" if document.looks_automatic(body) else "lena", body)
        error = r.json().get("error", {})
        if r.status_code != 400 or error.get("target") != target:
            failures.append(f"{path}={value!r:.40}: {r.status_code} {error}")
    assert not failures, "\n".join(failures)
    assert fingerprint(w.t.db) == before


def test_what_the_document_names_must_exist_in_reach(w: World) -> None:
    t = w.t
    base = requests_from(w, w.pkg)
    missing = "99999999-9999-4999-8999-999999999999"
    foreign_ext = w.extension(w.other_cat)
    w.t.call("admin", "PATCH", f"{EM}/catalogs/{w.cat}", json={"isExternallyVisible": False})
    org = w.organization("Fabrikam")
    cases = [
        (
            {
                "allowedTargetScope": "specificDirectoryUsers",
                "specificAllowedTargets": [user(missing)],
            },
            "specificAllowedTargets[0].userId",
        ),
        (
            {
                "allowedTargetScope": "specificDirectoryUsers",
                "specificAllowedTargets": [group(missing)],
            },
            "specificAllowedTargets[0].groupId",
        ),
        (
            {
                "requestApprovalSettings": {
                    "isApprovalRequiredForAdd": True,
                    "stages": [{"primaryApprovers": [user(w.id("mamta")), user(missing)]}],
                }
            },
            "requestApprovalSettings.stages[0].primaryApprovers[1].userId",
        ),
        (
            {
                "customExtensionStageSettings": [
                    {"stage": "assignmentRequestGranted", "customExtension": {"id": foreign_ext}}
                ]
            },
            "customExtensionStageSettings[0].customExtension.id",
        ),
        ({"catalog": {"id": w.other_cat}}, "catalog.id"),
        ({"allowedTargetScope": "allExternalUsers"}, "allowedTargetScope"),
        (
            {
                "allowedTargetScope": "specificConnectedOrganizationUsers",
                "specificAllowedTargets": [
                    {
                        "@odata.type": G + "connectedOrganizationMembers",
                        "connectedOrganizationId": org,
                    }
                ],
            },
            "allowedTargetScope",
        ),
    ]
    before = fingerprint(t.db)
    for change, target in cases:
        r = w.create("lena", {**base, **change})
        assert r.status_code == 400, (change, r.text)
        assert r.json()["error"]["target"] == target, r.text
    assert fingerprint(t.db) == before
    t.call("admin", "PATCH", f"{EM}/catalogs/{w.cat}", json={"isExternallyVisible": True})
    r = w.create(
        "lena",
        {
            **base,
            "allowedTargetScope": "specificConnectedOrganizationUsers",
            "specificAllowedTargets": [
                {
                    "@odata.type": G + "connectedOrganizationMembers",
                    "connectedOrganizationId": missing,
                }
            ],
        },
    )
    assert r.status_code == 400
    assert r.json()["error"]["target"] == "specificAllowedTargets[0].connectedOrganizationId"
    assert r.json()["error"]["code"] == "invalidRequest"


def test_body_shapes_and_package_references(w: World) -> None:
    t = w.t
    assert t.post("lena", POLICIES, ["not", "an", "object"]).status_code == 400
    no_package = requests_from(w, w.pkg)
    del no_package["accessPackage"]
    r = w.create("lena", no_package)
    assert (r.status_code, r.json()["error"]["target"]) == (400, "accessPackage.id")
    # the URL's package, and a body that repeats it (or another one)
    nested = f"{EM}/accessPackages/{w.pkg}/assignmentPolicies"
    assert t.post("lena", nested, no_package).status_code == 201
    assert t.post("lena", nested, requests_from(w, w.pkg)).status_code == 201
    r = t.post("lena", nested, requests_from(w, w.pkg2))
    assert (r.status_code, r.json()["error"]["target"]) == (400, "accessPackage.id")
    # beta's accessPackageId is understood; unknown and read-only properties are ignored
    beta = {**no_package, "accessPackageId": w.pkg2, "createdDateTime": "x", "somethingNew": 1}
    assert w.create("lena", beta).status_code == 201
    r = w.create("lena", requests_from(w, "00000000-0000-4000-8000-000000000000"))
    assert r.status_code == 404
    # service principals are named by application id (decision 0001); users never request
    apps = {
        "allowedTargetScope": "specificDirectoryServicePrincipals",
        "specificAllowedTargets": [
            {"@odata.type": G + "singleServicePrincipal", "servicePrincipalId": w.id("planner")}
        ],
    }
    robots = w.package("For robots")
    created = w.created("lena", requests_from(w, robots, **apps))
    assert created["specificAllowedTargets"][0]["description"] is None
    assert w.offered("nobody", robots) == []
    apps["specificAllowedTargets"][0]["servicePrincipalId"] = w.id("nobody")
    r = w.create("lena", requests_from(w, w.pkg, **apps))
    assert r.status_code == 400
    assert r.json()["error"]["target"] == "specificAllowedTargets[0].servicePrincipalId"


def test_an_expired_end_date_may_stay_but_not_be_set(w: World) -> None:
    end = (w.t.clock() + timedelta(days=2)).isoformat()
    body = requests_from(w, w.pkg, expiration={"type": "afterDateTime", "endDateTime": end})
    created = w.created("lena", body)
    w.t.clock.advance(days=3)  # type: ignore[attr-defined]
    renamed = {**created, "displayName": "Old campaign"}
    assert w.put("lena", created["id"], renamed).status_code == 200
    body["expiration"]["endDateTime"] = (w.t.clock() - timedelta(hours=1)).isoformat()
    r = w.put("lena", created["id"], body)
    assert (r.status_code, r.json()["error"]["target"]) == (400, "expiration.endDateTime")


# ---------------------------------------------------------------- who may manage (R2)


def test_delegates_stay_in_their_catalog(w: World) -> None:
    t = w.t
    finance = w.created("mark", requests_from(w, w.other_pkg))
    mine = w.created("lena", requests_from(w, w.pkg))
    ext = w.extension(w.other_cat)
    before = fingerprint(t.db)
    # another catalog's package, policy or custom extension does not exist for lena
    assert w.create("lena", requests_from(w, w.other_pkg)).status_code == 404
    nested = f"{EM}/accessPackages/{w.other_pkg}/assignmentPolicies"
    assert t.post("lena", nested, requests_from(w, w.other_pkg)).status_code == 404
    assert t.get("lena", nested).status_code == 404
    assert t.get("lena", f"{POLICIES}/{finance['id']}").status_code == 404
    assert t.get("lena", f"{POLICIES}/{finance['id']}/questions").status_code == 404
    assert w.put("lena", finance["id"], finance).status_code == 404
    assert t.call("lena", "DELETE", f"{POLICIES}/{finance['id']}").status_code == 404
    assert finance["id"] not in {p["id"] for p in t.get("lena", POLICIES).json()["value"]}
    # a policy stays on its package
    moved = {**mine, "accessPackage": {"id": w.pkg2}}
    assert w.put("lena", mine["id"], moved).status_code == 400
    moved = {**mine, "accessPackage": {"id": w.other_pkg}}
    assert w.put("lena", mine["id"], moved).status_code == 400
    assert w.put("lena", mine["id"], {**mine, "id": finance["id"]}).status_code == 400
    with_ext = requests_from(
        w,
        w.pkg,
        customExtensionStageSettings=[
            {"stage": "assignmentRequestCreated", "customExtension": {"id": ext}}
        ],
    )
    assert w.create("lena", with_ext).status_code == 400
    # roles that may read but not manage policies, and users without any role
    for alias, status in (("sofia", 403), ("omar", 403), ("nobody", 404), ("mark", 404)):
        assert w.create(alias, requests_from(w, w.pkg)).status_code == status, alias
        assert w.put(alias, mine["id"], mine).status_code == status, alias
        assert t.call(alias, "DELETE", f"{POLICIES}/{mine['id']}").status_code == status, alias
    for alias in ("sofia", "omar", "admin", "hana", "mamta"):
        assert t.get(alias, f"{POLICIES}/{mine['id']}").status_code == 200, alias
    assert fingerprint(t.db) == before
    assert w.create("mamta", requests_from(w, w.pkg)).status_code == 201
    assert w.create("admin", requests_from(w, w.other_pkg)).status_code == 201


def auto_policy(
    w: World, package: str, rule: str = '(user.department -eq "Sales")'
) -> dict[str, Any]:
    return {
        "displayName": "Sales get it",
        "accessPackage": {"id": package},
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [
            {"@odata.type": G + "attributeRuleMembers", "membershipRule": rule}
        ],
        "automaticRequestSettings": {
            "requestAccessForAllowedTargets": True,
            "gracePeriodBeforeAccessRemoval": "P1D",
        },
        "expiration": {"type": "noExpiration"},
    }


def test_automatic_assignment_policies_are_for_admins_one_per_package(w: World) -> None:
    t = w.t
    before = fingerprint(t.db)
    for alias in ("lena", "mamta"):
        r = w.create(alias, auto_policy(w, w.pkg))
        assert r.status_code == 403, (alias, r.text)
        assert r.json()["error"]["code"] == "accessDenied"
    assert fingerprint(t.db) == before
    r = w.create("hana", auto_policy(w, w.pkg, "(user.department -eq"))
    assert (r.status_code, r.json()["error"]["target"]) == (
        400,
        "specificAllowedTargets[0].membershipRule",
    )
    auto = w.created("hana", auto_policy(w, w.pkg))
    assert auto["automaticRequestSettings"] == {
        "requestAccessForAllowedTargets": True,
        "removeAccessWhenTargetLeavesAllowedTargets": True,
        "gracePeriodBeforeAccessRemoval": "P1D",
    }
    assert w.stored(auto["id"]).auto_assignment_key == w.pkg
    r = w.create("admin", auto_policy(w, w.pkg))
    assert r.status_code == 409, r.text
    assert w.create("admin", auto_policy(w, w.pkg2)).status_code == 201
    # a delegate can neither change nor delete it, nor turn a request policy into one
    before = fingerprint(t.db)
    assert w.put("lena", auto["id"], {**auto, "displayName": "x"}).status_code == 403
    assert w.put("lena", auto["id"], requests_from(w, w.pkg)).status_code == 403
    assert t.call("lena", "DELETE", f"{POLICIES}/{auto['id']}").status_code == 403
    plain = w.created("lena", requests_from(w, w.pkg))
    before = fingerprint(t.db)
    assert w.put("lena", plain["id"], auto_policy(w, w.pkg)).status_code == 403
    assert w.put("hana", plain["id"], auto_policy(w, w.pkg)).status_code == 409
    assert fingerprint(t.db) == before
    # the admin may turn it back into a request policy; then the package has room for another
    r = w.put("hana", auto["id"], requests_from(w, w.pkg))
    assert r.status_code == 200, r.text
    assert r.json()["automaticRequestSettings"] is None
    assert w.stored(auto["id"]).auto_assignment_key is None
    assert w.put("hana", plain["id"], auto_policy(w, w.pkg)).status_code == 200
    # nobody requests through an automatic policy
    assert w.offered("nobody", w.pkg2) == []


def test_delete_is_refused_while_the_policy_is_in_use(w: World) -> None:
    t = w.t
    pid = w.created("lena", requests_from(w, w.pkg))["id"]
    now = t.clock()
    with t.db.write() as s:
        s.add(
            Assignment(
                id="a0000000-0000-4000-8000-000000000001",
                access_package_id=w.pkg,
                catalog_id=w.cat,
                policy_id=pid,
                target_id=w.id("nobody"),
                state="delivered",
                status="Delivered",
                start_at=now,
                expiration={"type": "noExpiration", "endDateTime": None, "duration": None},
                created_at=now,
                modified_at=now,
                active_key=f"{w.id('nobody')}:{w.pkg}",
            )
        )
    before = fingerprint(t.db)
    r = t.call("lena", "DELETE", f"{POLICIES}/{pid}")
    assert r.status_code == 409, r.text
    assert fingerprint(t.db) == before
    with t.db.write() as s:
        found = s.get(Assignment, "a0000000-0000-4000-8000-000000000001")
        assert found is not None
        found.active_key, found.state = None, "expired"
        s.add(
            AssignmentRequest(
                request_type="userAdd",
                state="pendingApproval",
                status="PendingApproval",
                access_package_id=w.pkg,
                catalog_id=w.cat,
                policy_id=pid,
                target_id=w.id("ines"),
                requestor_id=w.id("ines"),
                created_at=now,
            )
        )
    assert t.call("lena", "DELETE", f"{POLICIES}/{pid}").status_code == 409
    with t.db.write() as s:
        for req in s.execute(select(AssignmentRequest)).scalars():
            req.state = "denied"
    assert t.call("lena", "DELETE", f"{POLICIES}/{pid}").status_code == 204
    with t.db.write() as s:
        ended = s.get(Assignment, "a0000000-0000-4000-8000-000000000001")
        assert ended is not None
        assert ended.policy_id is None


# ---------------------------------------------------------------- the requestor's view


def test_requirements_for_members_and_nested_groups(w: World) -> None:
    t = w.t
    members = w.created("lena", requests_from(w, w.pkg))
    # ines is in "Finance", which sits inside "Outer" inside "Outermost": nesting counts.
    with t.db.write() as s:
        root = Ctx(s, system_actor("test"), t.clock())
        inner = d.create_group(root, display_name="Outer", member_ids=[w.id("finance")])
        outer = d.create_group(root, display_name="Outermost", member_ids=[inner.id])
        outer_id = outer.id
    body = approved(w, w.pkg)
    body["specificAllowedTargets"] = [group(outer_id)]
    specific = w.created("lena", body)

    r = w.requirements("nobody", w.pkg)
    assert r.status_code == 200, r.text
    assert r.json()["value"] == [
        {
            "policyId": members["id"],
            "policyDisplayName": "allMemberUsers requests",
            "policyDescription": "self-service",
            "isApprovalRequiredForAdd": False,
            "isApprovalRequiredForUpdate": False,
            "isRequestorJustificationRequired": False,
            "allowCustomAssignmentSchedule": False,
            "questions": [],
            "schedule": {
                "startDateTime": None,
                "expiration": {"type": "afterDuration", "endDateTime": None, "duration": "P30D"},
            },
        }
    ]
    # P1 (specific users and groups) hides P2 (all members) for ines
    (offer,) = w.requirements("ines", w.pkg).json()["value"]
    assert offer["policyId"] == specific["id"]
    assert offer["isApprovalRequiredForAdd"] is True
    assert offer["isRequestorJustificationRequired"] is True
    assert [q["id"] for q in offer["questions"]] == [q["id"] for q in specific["questions"]]
    assert offer["questions"][0]["@odata.type"] == G + "accessPackageTextInputQuestion"
    # a second P1 policy is offered beside the first: the requestor chooses
    second = w.created("lena", {**body, "displayName": "Short access", "questions": []})
    assert set(w.offered("ines", w.pkg)) == {specific["id"], second["id"]}
    # a reader of the catalog who may not request sees an empty list; strangers see nothing
    guest = w.guest("gail", None)
    assert guest
    assert w.requirements("omar", w.pkg2).json()["value"] == []
    assert w.requirements("gail", w.pkg).status_code == 404
    assert w.requirements("nobody", w.other_pkg).status_code == 404
    assert w.requirements("nobody", "nope").status_code == 404
    assert w.listed("nobody") == {w.pkg}
    assert w.listed("ines") == {w.pkg}
    assert w.listed("gail") == set()


def test_priority_categories(w: World) -> None:
    fabrikam = w.organization("Fabrikam")
    w.guest("gail", fabrikam)
    pkg = w.pkg
    p1 = w.created(
        "lena",
        requests_from(
            w, pkg, "specificDirectoryUsers", specificAllowedTargets=[group(w.id("legal"))]
        ),
    )
    p2 = w.created("lena", requests_from(w, pkg, "allMemberUsers"))
    p3 = w.created("lena", requests_from(w, pkg, "allDirectoryUsers"))
    p4 = w.created("lena", requests_from(w, pkg, "allConfiguredConnectedOrganizationUsers"))
    p4b = w.created("lena", requests_from(w, pkg, "allExternalUsers"))
    assert w.offered("joe", pkg) == [p1["id"]]
    assert w.offered("nobody", pkg) == [p2["id"]]
    assert w.offered("gail", pkg) == [p3["id"]]
    w.t.call("lena", "DELETE", f"{POLICIES}/{p3['id']}")
    assert set(w.offered("gail", pkg)) == {p4["id"], p4b["id"]}
    org_policy = w.created(
        "lena",
        requests_from(
            w,
            pkg,
            "specificConnectedOrganizationUsers",
            specificAllowedTargets=[
                {
                    "@odata.type": G + "connectedOrganizationMembers",
                    "connectedOrganizationId": fabrikam,
                }
            ],
        ),
    )
    assert w.offered("gail", pkg) == [org_policy["id"]]
    assert w.offered("nobody", pkg) == [p2["id"]]


def test_guests_and_connected_organizations(w: World) -> None:
    fabrikam = w.organization("Fabrikam")
    tailspin = w.organization("Tailspin", state="proposed")
    w.guest("gail", fabrikam)  # configured organization
    w.guest("tom", tailspin)  # proposed organization
    w.guest("xena", None)  # a guest of no organization
    packages = {
        scope: w.package(scope)
        for scope in (
            "allMemberUsers",
            "allDirectoryUsers",
            "allConfiguredConnectedOrganizationUsers",
            "allExternalUsers",
        )
    }
    for scope, package in packages.items():
        w.created("lena", requests_from(w, package, scope))
    packages["specificConnectedOrganizationUsers"] = w.package("specific orgs")
    w.created(
        "lena",
        requests_from(
            w,
            packages["specificConnectedOrganizationUsers"],
            "specificConnectedOrganizationUsers",
            specificAllowedTargets=[
                {
                    "@odata.type": G + "connectedOrganizationMembers",
                    "connectedOrganizationId": tailspin,
                }
            ],
        ),
    )
    expected = {
        "nobody": {"allMemberUsers", "allDirectoryUsers"},
        "gail": {
            "allDirectoryUsers",
            "allConfiguredConnectedOrganizationUsers",
            "allExternalUsers",
        },
        "tom": {"allDirectoryUsers", "allExternalUsers", "specificConnectedOrganizationUsers"},
        "xena": {"allDirectoryUsers", "allExternalUsers"},
    }
    for alias, scopes in expected.items():
        assert w.listed(alias) == {packages[sc] for sc in scopes}, alias
        for scope, package in packages.items():
            assert bool(w.offered(alias, package)) == (scope in scopes), (alias, scope)
    # A catalog no longer enabled for external users is closed to every guest.
    w.t.call("admin", "PATCH", f"{EM}/catalogs/{w.cat}", json={"isExternallyVisible": False})
    for alias in ("gail", "tom", "xena"):
        assert w.listed(alias) == set(), alias
        assert w.offered(alias, packages["allDirectoryUsers"]) == [], alias
    assert w.listed("nobody") == {packages["allMemberUsers"], packages["allDirectoryUsers"]}


def test_hidden_disabled_and_closed_packages(w: World) -> None:
    t = w.t
    open_pkg = w.pkg
    hidden = w.pkg2
    closed = w.package("Closed")
    direct_only = w.package("Direct only")
    disabled_cat = t.create_catalog("mamta", "Archive")
    disabled = w.package("Archived", catalog=disabled_cat, alias="mamta")
    for package in (open_pkg, hidden, disabled):
        w.created("admin", requests_from(w, package))
    w.created(
        "lena",
        requests_from(
            w,
            closed,
            requestorSettings={"enableTargetsToSelfAddAccess": True, "acceptRequests": False},
        ),
    )
    w.created(
        "lena",
        requests_from(
            w, closed, "allMemberUsers", requestorSettings={"enableTargetsToSelfAddAccess": False}
        ),
    )
    w.created("lena", requests_from(w, direct_only, "notSpecified", requestorSettings={}))
    assert (
        t.call(
            "lena", "PATCH", f"{EM}/accessPackages/{hidden}", json={"isHidden": True}
        ).status_code
        == 204
    )
    r = t.call("mamta", "PATCH", f"{EM}/catalogs/{disabled_cat}", json={"state": "unpublished"})
    assert r.status_code == 204, r.text

    assert w.listed("nobody") == {open_pkg}
    assert w.offered("nobody", open_pkg)
    assert w.offered("nobody", hidden), "a hidden package stays requestable by its id"
    for package in (closed, direct_only):
        assert w.requirements("nobody", package).status_code == 404
        assert w.requirements("lena", package).json()["value"] == [], "lena sees it by her role"
    assert w.requirements("nobody", disabled).status_code == 404
    assert w.requirements("mamta", disabled).json()["value"] == []
    # a disabled account requests nothing, even where it once could
    with t.db.write() as s:
        nobody = s.get(User, w.id("nobody"))
        assert nobody is not None
        nobody.blocked_at = t.clock()
    assert w.listed("nobody") == set()
    assert w.requirements("nobody", open_pkg).status_code == 404


def test_filter_by_current_user_is_its_own_route(w: World) -> None:
    t = w.t
    w.created("lena", requests_from(w, w.pkg))
    r = t.get("nobody", MINE)
    assert r.status_code == 200, r.text
    assert r.json()["@odata.context"].endswith("accessPackages")
    assert [p["id"] for p in r.json()["value"]] == [w.pkg]
    # percent-encoded quotes, paging and $filter work as on any package list
    encoded = f"{EM}/accessPackages/filterByCurrentUser(on=%27allowedRequestor%27)"
    assert t.get("nobody", encoded).json()["value"] == r.json()["value"]
    w.created("lena", requests_from(w, w.pkg2))
    page = t.get("nobody", MINE, **{"$top": "1", "$count": "true"}).json()
    assert page["@odata.count"] == 2
    assert len(page["value"]) == 1
    assert "@odata.nextLink" in page
    filtered = t.get("nobody", MINE, **{"$filter": "displayName eq 'Brand kit'"}).json()
    assert [p["id"] for p in filtered["value"]] == [w.pkg2]
    bad = t.get("nobody", f"{EM}/accessPackages/filterByCurrentUser(on='target')")
    assert bad.status_code == 400
    assert bad.json()["error"]["target"] == "on"
    assert t.get("nobody", f"{EM}/accessPackages/{w.pkg}").status_code == 404
    assert t.client.get(MINE).status_code == 401


def test_python_and_sql_rules_agree(w: World) -> None:
    """requestable_policies (Python, per package) and filterByCurrentUser (SQL) on one world."""
    fabrikam = w.organization("Fabrikam")
    tailspin = w.organization("Tailspin", state="proposed")
    w.guest("gail", fabrikam)
    w.guest("tom", tailspin)
    w.guest("xena", None)
    with w.t.db.write() as s:
        root = Ctx(s, system_actor("test"), w.t.clock())
        outer = d.create_group(root, display_name="Outer", member_ids=[w.id("campaigns")]).id
    variants: list[tuple[str, dict[str, Any]]] = [
        ("allMemberUsers", {}),
        ("allDirectoryUsers", {}),
        ("allExternalUsers", {}),
        ("allConfiguredConnectedOrganizationUsers", {}),
        ("specificDirectoryUsers", {"specificAllowedTargets": [group(outer)]}),
        (
            "specificDirectoryUsers",
            {"specificAllowedTargets": [user(w.id("nobody")), user(w.id("xena"))]},
        ),
        (
            "specificConnectedOrganizationUsers",
            {
                "specificAllowedTargets": [
                    {
                        "@odata.type": G + "connectedOrganizationMembers",
                        "connectedOrganizationId": o,
                    }
                    for o in (fabrikam, tailspin)
                ]
            },
        ),
        (
            "allMemberUsers",
            {"requestorSettings": {"enableTargetsToSelfAddAccess": True, "acceptRequests": False}},
        ),
        ("notSpecified", {"requestorSettings": {}}),
    ]
    packages = []
    for i, (scope, changes) in enumerate(variants):
        package = w.package(f"variant {i}")
        w.created("lena", requests_from(w, package, scope, **changes))
        packages.append(package)
    for alias in ("nobody", "lena", "ines", "gail", "tom", "xena", "admin"):
        python = {p for p in packages if w.offered(alias, p)}
        assert w.listed(alias) == python, alias


def test_is_allowed_requestor_for_direct_and_automatic_policies(w: World) -> None:
    """The request engine's question for direct assignments and the auto-assignment job."""
    auto = w.created("hana", auto_policy(w, w.pkg))["id"]
    direct = w.created("lena", requests_from(w, w.pkg2, "notSpecified", requestorSettings={}))["id"]
    everyone = w.created("lena", requests_from(w, w.pkg2, "allDirectoryUsers"))["id"]
    groups = {alias: w.t.actor(alias).group_ids for alias in ("nobody", "ines")}
    with w.t.db.write() as s:
        for alias, expected in (("nobody", (True, False, True)), ("ines", (False, False, True))):
            person = s.get(User, w.id(alias))
            assert person is not None
            found = tuple(
                requestors.is_allowed_requestor(s, policy, person, groups[alias])
                for policy in (s.get(AssignmentPolicy, p) for p in (auto, direct, everyone))
                if policy is not None
            )
            assert found == expected, alias
        person = s.get(User, w.id("nobody"))
        assert person is not None
        assert requestors.requestable_policies(s, w.pkg, person, frozenset()) == []
        (offered,) = requestors.requestable_policies(s, w.pkg2, person, frozenset())
        assert offered.id == everyone


def test_graph_sdk_models_round_trip(w: World) -> None:
    """What msgraph-sdk's serializer sends (timedelta as "30 days, 0:00:00", PUT of a parsed
    object), and what it makes of remit's answers (subclasses by @odata.type, ISO durations)."""

    def wire(model: AccessPackageAssignmentPolicy) -> Any:
        writer = JsonSerializationWriter()
        writer.write_object_value(None, model)
        return json.loads(writer.get_serialized_content())

    def parsed(response: httpx.Response) -> AccessPackageAssignmentPolicy:
        node = JsonParseNode(response.json())
        found = node.get_object_value(AccessPackageAssignmentPolicy)
        assert found is not None
        return found

    model = AccessPackageAssignmentPolicy(
        display_name="SDK policy",
        description="from a script",
        access_package=SdkPackage(id=w.pkg),
        allowed_target_scope=AllowedTargetScope.SpecificDirectoryUsers,
        specific_allowed_targets=[GroupMembers(group_id=w.id("marketing"))],
        expiration=ExpirationPattern(
            type=ExpirationPatternType.AfterDuration, duration=timedelta(days=30)
        ),
        requestor_settings=AccessPackageAssignmentRequestorSettings(
            enable_targets_to_self_add_access=True
        ),
        request_approval_settings=AccessPackageAssignmentApprovalSettings(
            is_approval_required_for_add=True,
            stages=[
                AccessPackageApprovalStage(
                    duration_before_automatic_denial=timedelta(days=7),
                    primary_approvers=[SingleUser(user_id=w.id("mamta"))],
                )
            ],
        ),
        questions=[AccessPackageTextInputQuestion(text="Why?", is_required=True)],
    )
    sent = wire(model)
    assert sent["expiration"]["duration"] == "30 days, 0:00:00"
    r = w.create("lena", sent)
    assert r.status_code == 201, r.text
    back = parsed(r)
    assert back.expiration is not None
    assert back.expiration.duration == timedelta(days=30)
    assert back.expiration.type == ExpirationPatternType.AfterDuration
    assert isinstance((back.specific_allowed_targets or [None])[0], GroupMembers)
    settings = back.request_approval_settings
    assert settings is not None
    assert settings.stages
    stage = settings.stages[0]
    assert stage.duration_before_automatic_denial == timedelta(days=7)
    assert isinstance((stage.primary_approvers or [None])[0], SingleUser)
    question = (back.questions or [None])[0]
    assert isinstance(question, AccessPackageTextInputQuestion)
    assert question.id
    # The script changes what it read and PUTs the object back.
    back.display_name = "SDK policy, renamed"
    back.expiration.duration = timedelta(hours=12)
    r = w.put("lena", str(back.id), wire(back))
    assert r.status_code == 200, r.text
    again = parsed(r)
    assert again.display_name == "SDK policy, renamed"
    assert r.json()["expiration"]["duration"] == "PT12H"
    assert (again.questions or [None])[0].id == question.id  # type: ignore[union-attr]


def test_racing_automatic_policies_leave_one(w: World) -> None:
    """Two admins create the package's automatic policy at once: one wins, the other is a 409.

    On PostgreSQL the second insert waits on the unique ``auto_assignment_key`` until the first
    commits (its pre-check saw nothing yet), then fails: the unique index decides. On SQLite the
    second writer waits for the first at BEGIN IMMEDIATE and its pre-check decides.
    """
    hana, admin = w.t.actor("hana"), w.t.actor("admin")
    inserted, release = threading.Event(), threading.Event()
    outcomes: list[str] = []
    messages: list[str] = []

    def create(actor: Any, first: bool) -> None:
        try:
            with w.t.db.write() as s:
                ops.create_policy(Ctx(s, actor, w.t.clock()), auto_policy(w, w.pkg))
                if first:
                    inserted.set()
                    release.wait(timeout=60)
            outcomes.append("created")
        except Conflict as exc:
            outcomes.append("conflict")
            messages.append(exc.message)
        finally:
            inserted.set()

    first = threading.Thread(target=create, args=(hana, True))
    first.start()
    inserted.wait(timeout=60)
    second = threading.Thread(target=create, args=(admin, False))
    second.start()
    if w.t.db.dialect == "postgresql":
        # Release the first only once the second is blocked behind its row.
        with w.t.db.engine.connect() as conn:
            for _ in range(6000):
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                        "WHERE NOT l.granted AND a.query ILIKE 'INSERT INTO assignment_policies%'"
                    )
                ).scalar_one()
                conn.rollback()
                if waiting:
                    break
                threading.Event().wait(0.01)
    release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert sorted(outcomes) == ["conflict", "created"]
    if w.t.db.dialect == "postgresql":  # the unique index decided, not the pre-check
        assert messages == ["the access package already has an automatic assignment policy"]
    with w.t.db.write() as s:
        keys = s.execute(select(AssignmentPolicy.auto_assignment_key)).scalars().all()
    assert keys == [w.pkg]
