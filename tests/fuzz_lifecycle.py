"""The lifecycle part of the R4 fuzz world (tests/functional/test_fuzz.py), and the hand-written
bodies its free-form operations start from.

Built on the catalogs and packages of the fuzz seed, through the API except where there is none
(guest users; an out-of-band deletion): a connected organization with internal and external
sponsors, two custom extensions, policies (requests with an approval stage and questions, direct
assignment, a guests' policy naming the sponsors and an extension), and requests in every
resting state (pending approval, canceled, delivered, partially delivered) after the job worker
has drained. ``templates`` are valid bodies for the operations whose OpenAPI body is a free-form
object (policies, assignment requests, approval decisions): schemathesis alone would send them
nothing but junk, so the fuzz also mutates these.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import delete

from remit.authz.actor import system_actor
from remit.context import Ctx
from remit.directory import operations as d
from remit.jobs.runner import Worker
from remit.models.directory import SiteRole
from remit.settings import Settings
from tests.factories import EM, Tenant

G = "#microsoft.graph."
GRAPH = "https://graph.microsoft.com/v1.0"
POLICIES = f"{EM}/assignmentPolicies"
REQUESTS = f"{EM}/assignmentRequests"
ORGS = f"{EM}/connectedOrganizations"
ZERO = "00000000-0000-0000-0000-000000000000"


@dataclass
class Lifecycle:
    """Pools (as ``Seed``'s) and templates by operation label."""

    path: dict[str, list[str]] = field(default_factory=dict)
    # Single objects by name, for hand-written cases: a pending request, its open stage, ...
    named: dict[str, str] = field(default_factory=dict)
    body: dict[str, list[Any]] = field(default_factory=dict)
    templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _ok(r: Any, status: int = 201) -> Any:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json() if r.content else None


def _user(uid: str) -> dict[str, Any]:
    return {"@odata.type": G + "singleUser", "userId": uid}


def _ref(kind: str, oid: str) -> dict[str, str]:
    return {"@odata.id": f"{GRAPH}/{kind}/{oid}"}


def request_policy(t: Tenant, package: str, extension: str | None = None) -> dict[str, Any]:
    """Any member may request, with a justification and two answers; Mamta or Hana approves."""
    body: dict[str, Any] = {
        "displayName": "Employee requests",
        "description": "Members request; the catalog owner approves",
        "accessPackage": {"id": package},
        "allowedTargetScope": "allMemberUsers",
        "expiration": {"type": "afterDuration", "duration": "P30D"},
        "requestorSettings": {
            "enableTargetsToSelfAddAccess": True,
            "enableTargetsToSelfUpdateAccess": True,
            "enableTargetsToSelfRemoveAccess": True,
            "allowCustomAssignmentSchedule": True,
        },
        "requestApprovalSettings": {
            "isApprovalRequiredForAdd": True,
            "isApprovalRequiredForUpdate": True,
            "isRequestorJustificationRequired": True,
            "stages": [
                {
                    "durationBeforeAutomaticDenial": "P14D",
                    "isApproverJustificationRequired": False,
                    "isEscalationEnabled": False,
                    "primaryApprovers": [_user(t.ids["mamta"]), _user(t.ids["hana"])],
                }
            ],
        },
        "questions": [
            {
                "@odata.type": G + "accessPackageTextInputQuestion",
                "text": "Cost centre?",
                "isRequired": True,
                "isSingleLineQuestion": True,
                "regexPattern": "^[0-9]{4}$",
            },
            {
                "@odata.type": G + "accessPackageMultipleChoiceQuestion",
                "text": "Which region?",
                "isMultipleSelectionAllowed": True,
                "choices": [{"actualValue": "emea"}, {"actualValue": "apac"}],
            },
        ],
    }
    if extension is not None:
        body["customExtensionStageSettings"] = [
            {"stage": "assignmentRequestCreated", "customExtension": {"id": extension}}
        ]
    return body


def direct_policy(package: str, name: str = "Direct assignment") -> dict[str, Any]:
    return {
        "displayName": name,
        "description": "Assignment managers assign directly",
        "accessPackage": {"id": package},
        "allowedTargetScope": "notSpecified",
        "expiration": {"type": "afterDuration", "duration": "P30D"},
        "requestorSettings": {"enableTargetsToSelfAddAccess": False},
        "requestApprovalSettings": {"isApprovalRequiredForAdd": False, "stages": []},
    }


def self_service_policy(package: str) -> dict[str, Any]:
    """Any member requests, no approval; extend and remove their own."""
    return {
        "displayName": "Self-service",
        "accessPackage": {"id": package},
        "allowedTargetScope": "allMemberUsers",
        "expiration": {"type": "afterDateTime", "endDateTime": "2099-01-01T00:00:00Z"},
        "requestorSettings": {
            "enableTargetsToSelfAddAccess": True,
            "enableTargetsToSelfUpdateAccess": True,
            "enableTargetsToSelfRemoveAccess": True,
        },
        "requestApprovalSettings": {"isApprovalRequiredForAdd": False, "stages": []},
    }


def guests_policy(package: str, org: str, extension: str, t: Tenant) -> dict[str, Any]:
    """Fabrikam's users request; their sponsors approve (Mamta as fallback); an extension runs
    two weeks before expiry. Never used by a request, so it can be deleted."""
    return {
        "displayName": "Fabrikam partners",
        "accessPackage": {"id": package},
        "allowedTargetScope": "specificConnectedOrganizationUsers",
        "specificAllowedTargets": [
            {"@odata.type": G + "connectedOrganizationMembers", "connectedOrganizationId": org}
        ],
        "expiration": {"type": "afterDuration", "duration": "30 days, 0:00:00"},
        "requestorSettings": {"enableTargetsToSelfAddAccess": True},
        "requestApprovalSettings": {
            "isApprovalRequiredForAdd": True,
            "stages": [
                {
                    "durationBeforeAutomaticDenial": "P7D",
                    "primaryApprovers": [
                        {"@odata.type": G + "externalSponsors"},
                        {"@odata.type": G + "internalSponsors"},
                    ],
                    "fallbackPrimaryApprovers": [_user(t.ids["mamta"])],
                }
            ],
        },
        "customExtensionStageSettings": [
            {
                "stage": "assignmentFourteenDaysBeforeExpiration",
                "customExtension": {"id": extension},
            }
        ],
    }


def automatic_policy(package: str) -> dict[str, Any]:
    return {
        "displayName": "Everyone in Marketing",
        "accessPackage": {"id": package},
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [
            {
                "@odata.type": G + "attributeRuleMembers",
                "description": "Marketing department",
                "membershipRule": '(user.department -eq "Marketing")',
            }
        ],
        "automaticRequestSettings": {
            "requestAccessForAllowedTargets": True,
            "removeAccessWhenTargetLeavesAllowedTargets": True,
            "gracePeriodBeforeAccessRemoval": "P7D",
        },
        "requestorSettings": {"enableTargetsToSelfAddAccess": False},
        "requestApprovalSettings": {"isApprovalRequiredForAdd": False, "stages": []},
    }


def _role(roles: list[dict[str, Any]], system: str, name: str | None = None) -> dict[str, Any]:
    return next(
        r
        for r in roles
        if r["originSystem"] == system and (name is None or r["displayName"] == name)
    )


def _role_scope(role: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": {
            "id": role["id"],
            "originId": role["originId"],
            "originSystem": role["originSystem"],
            "resource": {"id": role["resource"]["id"]},
        },
        "scope": {
            "originId": role["resource"]["originId"],
            "originSystem": role["originSystem"],
            "isRootScope": True,
        },
    }


def seed_lifecycle(
    t: Tenant,
    settings: Settings,
    *,
    marketing: str,
    packages: list[str],
    roles: list[dict[str, Any]],
) -> Lifecycle:
    """``packages``: Campaign 2027 and Brand refresh (Marketing, incompatible with each other),
    Budget review (Finance). ``roles``: the two catalogs' resource roles, resource expanded."""
    campaign, brand, budget = packages
    ids = t.ids

    # ---- a connected organization with sponsors, and its guests
    org = _ok(
        t.post(
            "hana",
            ORGS,
            {
                "displayName": "Fabrikam",
                "description": "A partner",
                "identitySources": [
                    {
                        "@odata.type": G + "domainIdentitySource",
                        "domainName": "fabrikam.example",
                        "displayName": "fabrikam.example",
                    }
                ],
            },
        )
    )["id"]
    spare_org = _ok(t.post("hana", ORGS, {"displayName": "Tailspin", "state": "proposed"}))["id"]
    with t.db.write() as s:
        root = Ctx(s, system_actor("test"), t.clock())
        for alias in ("vera", "walt"):
            guest = d.create_user(
                root,
                user_principal_name=f"{alias}@fabrikam.example",
                display_name=f"{alias.title()} (Fabrikam)",
                user_type="Guest",
            )
            guest.connected_organization_id = org
            ids[alias] = guest.id
        s.flush()
    for kind, ref in (
        ("internalSponsors", _ref("users", ids["mamta"])),
        ("internalSponsors", _ref("groups", ids["marketing"])),
        ("externalSponsors", _ref("users", ids["vera"])),
    ):
        _ok(t.post("hana", f"{ORGS}/{org}/{kind}/$ref", ref), 204)

    # ---- custom extensions in Marketing
    path = f"{EM}/catalogs/{marketing}/accessPackageCustomWorkflowExtensions"
    extensions = [
        _ok(
            t.post(
                "mamta",
                path,
                {
                    "displayName": name,
                    "description": "Tells the CRM",
                    "endpointConfiguration": {
                        "@odata.type": G + "logicAppTriggerEndpointConfiguration",
                        "url": f"https://hooks.contoso.example/{name.lower()}",
                    },
                    **({"secret": "s3cret-Value_0123456789"} if name == "CRM" else {}),
                },
            )
        )["id"]
        for name in ("CRM", "Spare")
    ]

    # ---- what the packages grant
    planner = _role(roles, "AadApplication", "Planner")
    site = _role(roles, "SharePointOnline")
    finance_member = next(
        r
        for r in roles
        if r["originSystem"] == "AadGroup" and r["originId"].endswith(ids["finance"])
    )
    for alias, package, role in (
        ("mamta", brand, planner),
        ("mamta", brand, site),
        ("mark", budget, finance_member),
    ):
        _ok(t.post(alias, f"{EM}/accessPackages/{package}/resourceRoleScopes", _role_scope(role)))

    # ---- policies
    requested = _ok(t.post("mamta", POLICIES, request_policy(t, campaign)))
    questions = [q["id"] for q in requested["questions"]]
    policy = {
        "request": requested["id"],
        "direct": _ok(t.post("mamta", POLICIES, direct_policy(campaign)))["id"],
        "brand": _ok(t.post("mamta", POLICIES, direct_policy(brand, "Brand direct")))["id"],
        "guests": _ok(t.post("hana", POLICIES, guests_policy(brand, org, extensions[0], t)))["id"],
        "budget": _ok(t.post("mark", POLICIES, self_service_policy(budget)))["id"],
    }
    answers = [
        {
            "@odata.type": G + "accessPackageAnswerString",
            "value": "1234",
            "answeredQuestion": {"id": questions[0]},
        },
        {
            "@odata.type": G + "accessPackageAnswerString",
            "value": "emea,apac",
            "answeredQuestion": {"id": questions[1]},
        },
    ]

    def add(alias: str, package: str, policy_id: str, target: str, **extra: Any) -> str:
        body: dict[str, Any] = {
            "requestType": "userAdd" if alias == target else "adminAdd",
            "assignment": {
                "accessPackageId": package,
                "assignmentPolicyId": policy_id,
                "targetId": ids[target],
            },
            **extra,
        }
        return str(_ok(t.post(alias, REQUESTS, body))["id"])

    # ---- requests in every resting state
    why = {"justification": "Working on the 2027 campaign", "answers": answers}
    pending = add("nobody", campaign, policy["request"], "nobody", **why)
    other_pending = add("sofia", campaign, policy["request"], "sofia", **why)
    canceled = add("ines", campaign, policy["request"], "ines", **why)
    _ok(t.post("ines", f"{REQUESTS}/{canceled}/cancel"), 204)
    budget_request = add("nobody", budget, policy["budget"], "nobody")
    delivered = add("hana", campaign, policy["direct"], "omar")
    # A site role deleted out of band: Brand refresh is then only partly delivered to Joe.
    with t.db.write() as s:
        s.execute(delete(SiteRole).where(SiteRole.id == site["originId"]))
    partial = add("hana", brand, policy["brand"], "joe")
    Worker(t.db, settings, clock=t.clock, worker_id="fuzz-seed").drain()
    states = {
        r["id"]: r["state"] for r in _ok(t.get("hana", REQUESTS, **{"$top": "50"}), 200)["value"]
    }
    assert states[pending] == states[other_pending] == "pendingApproval", states
    assert states[canceled] == "canceled", states
    assert states[delivered] == states[budget_request] == "delivered", states
    assert states[partial] in ("partiallyDelivered", "deliveryFailed"), states

    assignments = [
        a["id"] for a in _ok(t.get("hana", f"{EM}/assignments", **{"$top": "50"}), 200)["value"]
    ]
    by_target = {
        a["target"]["id"]: a["id"]
        for a in _ok(
            t.get("hana", f"{EM}/assignments", **{"$expand": "target", "$top": "50"}), 200
        )["value"]
    }
    stages = [
        s["id"]
        for rid in (pending, other_pending, canceled)
        for s in _ok(t.get("hana", f"{EM}/accessPackageAssignmentApprovals/{rid}"), 200)["stages"]
    ]
    request_ids = [pending, other_pending, canceled, delivered, partial, budget_request]
    users = [ids[a] for a in ("mamta", "hana", "lena", "nobody", "omar", "sofia", "ines", "mark")]
    sponsors = [ids["mamta"], ids["marketing"], ids["vera"], ids["walt"]]
    future = (t.clock() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    nora_assignment = by_target[ids["nobody"]]
    omar_assignment = by_target[ids["omar"]]

    requests_templates: list[dict[str, Any]] = [
        {
            "requestType": "userAdd",
            "assignment": {"accessPackageId": campaign, "assignmentPolicyId": policy["request"]},
            "justification": "Need it",
            "answers": answers,
            "schedule": {
                "startDateTime": future,
                "expiration": {"type": "afterDuration", "duration": "P7D"},
            },
        },
        {
            "requestType": "userAdd",
            "accessPackageAssignment": {"accessPackageId": budget, "targetId": ids["nobody"]},
        },
        {
            "requestType": "adminAdd",
            "assignment": {
                "accessPackageId": campaign,
                "assignmentPolicyId": policy["direct"],
                "targetId": ids["mark"],
            },
            "schedule": {"expiration": {"type": "afterDateTime", "endDateTime": future}},
        },
        {
            "requestType": "adminAdd",
            "assignment": {
                "accessPackage": {"id": brand},
                "assignmentPolicy": {"id": policy["brand"]},
                "target": {"objectId": ids["kenji"]},
            },
        },
        {
            "requestType": "adminAdd",
            "assignment": {
                "accessPackageId": brand,
                "assignmentPolicyId": policy["guests"],
                "target": {"email": "new.partner@fabrikam.example"},
            },
        },
        {"requestType": "adminRemove", "assignment": {"id": omar_assignment}},
        {"requestType": "userRemove", "assignment": {"id": nora_assignment}},
        {"requestType": "userExtend", "assignment": {"id": nora_assignment}, "justification": "x"},
        {
            "requestType": "userUpdate",
            "assignment": {"id": nora_assignment},
            "schedule": {"expiration": {"endDateTime": future}},
        },
        {
            "requestType": "adminUpdate",
            "assignment": {"id": omar_assignment},
            "schedule": {"expiration": {"type": "afterDateTime", "endDateTime": future}},
        },
        {"requestType": "systemAdd", "assignment": {"accessPackageId": campaign}},
    ]
    policy_templates = [
        request_policy(t, campaign),
        request_policy(t, brand, extensions[1]),
        direct_policy(budget),
        self_service_policy(campaign),
        guests_policy(brand, org, extensions[0], t),
        automatic_policy(brand),
    ]
    decisions: list[dict[str, Any]] = [
        {"reviewResult": "Approve", "justification": "fine"},
        {"reviewResult": "Deny", "justification": "no"},
        {"reviewResult": "approve"},
        {"reviewResult": "NotReviewed"},
    ]
    em = "/v1.0/identityGovernance/entitlementManagement"
    sponsored = f"{em}/connectedOrganizations/{{organization_id}}"
    templates = {
        f"POST {sponsored}/internalSponsors/$ref": [
            _ref("users", ids["sofia"]),
            _ref("groups", ids["finance"]),
            _ref("users", ids["walt"]),
        ],
        f"POST {sponsored}/externalSponsors/$ref": [
            _ref("users", ids["walt"]),
            _ref("users", ids["vera"]),
            _ref("users", ids["sofia"]),
        ],
        # Valid references and bodies for writes whose generated bodies almost never are: with
        # the control-character branch of R4 (issue #11) their rare 2xx got rarer still.
        f"POST {em}/accessPackages/{{package_id}}/incompatibleAccessPackages/$ref": [
            {"@odata.id": f"{GRAPH}/identityGovernance/entitlementManagement/accessPackages/{p}"}
            for p in (campaign, brand, budget)
        ],
        f"POST {em}/accessPackages/{{package_id}}/incompatibleGroups/$ref": [
            _ref("groups", ids[name]) for name in ("finance", "campaigns", "marketing")
        ],
        f"POST {em}/catalogs/{{catalog_id}}/accessPackageCustomWorkflowExtensions": [
            {
                "displayName": name,
                "endpointConfiguration": {
                    "@odata.type": G + "logicAppTriggerEndpointConfiguration",
                    "url": f"https://hooks.contoso.example/{name.lower()}",
                },
                **secret,
            }
            for name, secret in (("Billing", {}), ("Tickets", {"secret": "An0ther-Secret_98765"}))
        ],
        f"POST {em}/assignmentPolicies": policy_templates,
        f"POST {em}/accessPackages/{{package_id}}/assignmentPolicies": policy_templates,
        f"PUT {em}/assignmentPolicies/{{policy_id}}": policy_templates,
        f"POST {em}/assignmentPolicies/{{policy_id}}/questions": [
            {"@odata.type": f"{G}accessPackageTextInputQuestion", "text": "Cost centre?"},
            {
                "@odata.type": f"{G}accessPackageMultipleChoiceQuestion",
                "text": "Region?",
                "choices": [{"actualValue": "emea"}, {"actualValue": "apac"}],
            },
        ],
        f"POST {em}/assignmentPolicies/{{policy_id}}/customExtensionStageSettings": [
            {"stage": stage, "customExtension": {"id": ext}}
            for stage in ("assignmentRequestCreated", "assignmentRequestGranted")
            for ext in extensions
        ],
        f"POST {em}/assignmentRequests": requests_templates,
        f"PATCH {em}/accessPackageAssignmentApprovals/{{approval_id}}/stages/{{stage_id}}": (
            decisions
        ),
    }
    urls = [f"{GRAPH}/users/{u}" for u in (ids["vera"], ids["walt"], ids["sofia"])]
    return Lifecycle(
        path={
            "policy_id": [*policy.values(), ZERO],
            "assignmentRequests/request_id": request_ids,
            "approval_id": request_ids,
            "stage_id": stages,
            "assignments/assignment_id": assignments,
            "organization_id": [org, spare_org],
            "principal_id": sponsors + users,
            "internalSponsors/principal_id": [ids["mamta"], ids["marketing"], ids["sofia"]],
            "externalSponsors/principal_id": [ids["vera"], ids["walt"], ids["mamta"]],
            "incompatibleAccessPackages/other_id": [brand, brand, campaign],
            "extension_id": extensions,
            "incompatible_id": [brand, campaign, budget],
            "on": ON,
            "accessPackages/on": ["allowedRequestor", "AllowedRequestor", "allowedrequestor", "x"],
            "assignmentRequests/on": ["target", "createdBy", "approver", "Target", "x"],
            "accessPackageAssignmentApprovals/on": ["approver", "Approver", "target", ""],
            "assignments/on": ["target", "createdBy", "approver", "x"],
        },
        body={**BODY_POOLS, "@odata.id": urls},
        templates=templates,
        named={
            "campaign": campaign,
            "brand": brand,
            "budget": budget,
            "marketing": marketing,
            "pending": pending,
            "stage": stages[0],
            "canceled": canceled,
            "partial": partial,
            "request_policy": policy["request"],
            "direct_policy": policy["direct"],
            "budget_policy": policy["budget"],
            "question": questions[0],
            "choice": questions[1],
            "nora_assignment": nora_assignment,
            "omar_assignment": omar_assignment,
            "org": org,
            "extension": extensions[0],
            "mark": ids["mark"],
            "future": future,
        },
    )


ON = [
    "target", "createdBy", "approver", "allowedRequestor", "AllowedRequestor", "allowedrequestor",
    "TARGET", "", "x", "'", "approver')",
]  # fmt: skip
BODY_POOLS: dict[str, list[Any]] = {
    "externalUserLifecycleAction": [
        "none", "blockSignIn", "blockSignInAndDelete", "BlockSignIn", "delete", "",
    ],
    "durationUntilExternalUserDeletedAfterBlocked": [
        "P30D", "30 days, 0:00:00", "P99999999D", "-P1D", "PT0S", "P1Y", "P0.5D", "P1000000D",
        "P1000001D", "99999999 days, 0:00:00", 30,
    ],
    "identitySources": [
        [],
        [{"@odata.type": G + "domainIdentitySource", "domainName": "fabrikam.example"}],
        [{"@odata.type": G + "azureActiveDirectoryTenant",
          "tenantId": "3b0b4b6e-2c55-4c1c-9d5b-0c7f2f7d1a11"}],
        [{"@odata.type": "nonsense"}],
    ],
    ".endpointConfiguration": [
        {"url": "https://hooks.contoso.example/x"},
        {"url": "http://127.0.0.1:0/"},
        {"url": "https://h:99999/"},
        {"url": "https://user:pw@h.example/"},
        {"url": "javascript:alert(1)"},
        {"logicAppWorkflowName": "x"},
    ],
    "secret": ["s3cret-Value_0123456789", "with space", "", "x" * 300],
    "reviewResult": ["Approve", "Deny", "approve", "NotReviewed", ""],
}  # fmt: skip


# ---------------------------------------------------------------- hostile mutations

DEEP: Any = "bottom"
for _ in range(60):
    DEEP = {"a": [DEEP]}

HOSTILE: list[Any] = [
    None, "", " ", "x" * 5000, "\u0000", "é中\U0001f600", "' OR 1=1 --", "%s%n", "../../",
    0, -1, 1.5, 2**63, -(2**63) - 1, 10**40, 1e308, -1e-308,
    True, False, [], {}, [None], [[]], [{}], {"id": None}, {"id": ["x"]}, DEEP,
    "P99999999D", "30 days, 0:00:00", "-P1D", "PT0S", "P1Y", "P1.5DT1.5H", "P" + "9" * 60 + "D",
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z",
    "2000-01-01T00:00:00Z", "not a date", ZERO, "#microsoft.graph.singleUser",
    {"@odata.type": "#microsoft.graph.singleUser"}, {"@odata.type": 5},
]  # fmt: skip


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here] if here else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*here, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*here, i))
    return out


def _parent(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        body = body[key]
    return body


COUNTS = st.integers(0, 3)
ACTIONS = st.sampled_from(["replace", "replace", "id", "remove", "wrap"])
HOSTILE_VALUES = st.sampled_from(HOSTILE)


def mutated(templates: list[dict[str, Any]], ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A template as written, or with up to three values replaced (by a hostile value or a real
    id of the wrong kind), removed, or wrapped in a list."""
    bodies, real_ids = st.sampled_from(templates), st.sampled_from(ids)

    @st.composite
    def mutate(draw: st.DrawFn) -> dict[str, Any]:
        body = copy.deepcopy(draw(bodies))
        for _ in range(draw(COUNTS)):
            paths = _paths(body)
            if not paths:
                break
            path = paths[draw(st.integers(0, len(paths) - 1))]
            parent = _parent(body, path)
            action = draw(ACTIONS)
            if action == "remove":
                del parent[path[-1]]
            elif action == "wrap":
                parent[path[-1]] = [parent[path[-1]]]
            else:
                value = draw(real_ids if action == "id" else HOSTILE_VALUES)
                parent[path[-1]] = copy.deepcopy(value)
        return body

    return mutate()
