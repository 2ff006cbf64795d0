"""The delegation scenario of issue #2, one test per step, through HTTP on the current engine.

Each test replays the steps before it (through the API) and then checks its own step, so every
step stands alone and the file still reads top to bottom as the story.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from remit.audit.chain import verify
from remit.authz.roles import CATALOG_CREATOR, CATALOG_OWNER, PACKAGE_MANAGER
from remit.db import Database
from tests.conftest import SteppingClock
from tests.factories import EM, RM, Tenant

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def t(db: Database, app_client: TestClient, clock: SteppingClock) -> Tenant:
    return Tenant.build(db, app_client, clock, delegated=False)


def step1_group(t: Tenant) -> str:
    """Hana creates the security group "Department managers" with Mamta, Mark and Joe."""
    binds = [f"https://graph.example/v1.0/users/{t.ids[a]}" for a in ("mamta", "mark", "joe")]
    r = t.post(
        "hana",
        "/v1.0/groups",
        {
            "displayName": "Department managers",
            "mailEnabled": False,
            "securityEnabled": True,
            "mailNickname": "deptmanagers",
            "groupTypes": [],
            "members@odata.bind": binds,
        },
    )
    assert r.status_code == 201, r.text
    t.ids["managers"] = r.json()["id"]
    return str(r.json()["id"])


def step2_creators(t: Tenant) -> dict[str, Any]:
    r = t.assign_role("hana", "managers", CATALOG_CREATOR.id, None)
    assert r.status_code == 201, r.text
    return dict(r.json())


def step3_catalogs(t: Tenant) -> dict[str, str]:
    cats = {
        "mamta": t.create_catalog("mamta", "Marketing"),
        "mark": t.create_catalog("mark", "Finance"),
        "joe": t.create_catalog("joe", "Legal"),
    }
    t.ids.update(
        {"cat_marketing": cats["mamta"], "cat_finance": cats["mark"], "cat_legal": cats["joe"]}
    )
    return cats


def step5_resources(t: Tenant) -> dict[str, dict[str, Any]]:
    cat = t.ids["cat_marketing"]
    added = {}
    for key, system in (
        ("marketing", "AadGroup"),
        ("planner", "AadApplication"),
        ("mksite", "SharePointOnline"),
    ):
        r = t.add_resource("mamta", cat, system, t.ids[key])
        assert r.status_code == 201, r.text
        added[key] = r.json()
    return added


def step7_co_owner(t: Tenant) -> None:
    r = t.assign_role("mamta", "omar", CATALOG_OWNER.id, t.ids["cat_marketing"])
    assert r.status_code == 201, r.text


def step8_manager(t: Tenant) -> None:
    r = t.assign_role("mamta", "lena", PACKAGE_MANAGER.id, t.ids["cat_marketing"])
    assert r.status_code == 201, r.text


def step9_package(t: Tenant) -> str:
    cat = t.ids["cat_marketing"]
    r = t.create_package("lena", cat, "Campaign 2027")
    assert r.status_code == 201, r.text
    package = r.json()["id"]
    roles = t.get("lena", f"{EM}/catalogs/{cat}/resourceRoles", **{"$expand": "resource"})
    assert roles.status_code == 200, roles.text
    wanted = {"Member", "Planner", "Members"}
    for role in roles.json()["value"]:
        if role["displayName"] in wanted:
            r = t.post(
                "lena",
                f"{EM}/accessPackages/{package}/resourceRoleScopes",
                {
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
                },
            )
            assert r.status_code == 201, r.text
    t.ids["campaign"] = package
    return str(package)


def replay(t: Tenant, upto: int) -> None:
    steps = [
        step1_group,
        step2_creators,
        step3_catalogs,
        None,
        step5_resources,
        None,
        step7_co_owner,
        step8_manager,
        step9_package,
    ]
    for step in steps[: upto - 1]:
        if step is not None:
            step(t)


def test_step1_admin_creates_department_managers_group(t: Tenant) -> None:
    group_id = step1_group(t)
    members = t.get("hana", f"/v1.0/groups/{group_id}/members").json()["value"]
    assert {m["userPrincipalName"] for m in members} == {
        "mamta@contoso.example",
        "mark@contoso.example",
        "joe@contoso.example",
    }
    assert all(m["@odata.type"] == "#microsoft.graph.user" for m in members)


def test_step2_admin_makes_the_group_catalog_creators(t: Tenant) -> None:
    replay(t, 2)
    created = step2_creators(t)
    assert created["appScopeId"] == "/"
    listed = t.get(
        "hana",
        f"{RM}/roleAssignments",
        **{"$filter": f"roleDefinitionId eq '{CATALOG_CREATOR.id}'", "$expand": "principal"},
    ).json()["value"]
    assert [a["principal"]["displayName"] for a in listed] == ["Department managers"]
    assert listed[0]["principal"]["@odata.type"] == "#microsoft.graph.group"
    # Before the assignment a department head could not create a catalog; a plain user still can't.
    assert t.post("nobody", f"{EM}/catalogs", {"displayName": "Sales"}).status_code == 403


def test_step3_each_head_creates_a_catalog_and_becomes_its_owner(t: Tenant) -> None:
    replay(t, 3)
    cats = step3_catalogs(t)
    for alias, cat in cats.items():
        owners = t.get(
            alias,
            f"{RM}/roleAssignments",
            **{"$filter": f"appScopeId eq '/AccessPackageCatalog/{cat}'"},
        ).json()["value"]
        assert [(o["principalId"], o["roleDefinitionId"]) for o in owners] == [
            (t.ids[alias], CATALOG_OWNER.id)
        ]
    body = t.get("mamta", f"{EM}/catalogs/{cats['mamta']}").json()
    assert body["catalogType"] == "userManaged"
    assert body["state"] == "published"


def test_step4_heads_cannot_see_each_others_catalogs(t: Tenant) -> None:
    replay(t, 4)
    for alias, own in (("mamta", "cat_marketing"), ("mark", "cat_finance"), ("joe", "cat_legal")):
        listed = t.get(alias, f"{EM}/catalogs").json()["value"]
        assert [c["id"] for c in listed] == [t.ids[own]]
    for other in ("cat_finance", "cat_legal"):
        r = t.get("mamta", f"{EM}/catalogs/{t.ids[other]}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "itemNotFound"
    # The administrator sees all of them, and the built-in General catalog.
    names = {c["displayName"] for c in t.get("hana", f"{EM}/catalogs").json()["value"]}
    assert names == {"General", "Marketing", "Finance", "Legal"}


def test_step5_owner_adds_the_resources_her_department_owns(t: Tenant) -> None:
    replay(t, 5)
    added = step5_resources(t)
    assert all(r["state"] == "delivered" and r["requestType"] == "adminAdd" for r in added.values())
    listed = t.get(
        "mamta", f"{EM}/catalogs/{t.ids['cat_marketing']}/resources", **{"$expand": "roles,scopes"}
    ).json()["value"]
    by_system = {r["originSystem"]: r for r in listed}
    group = by_system["AadGroup"]
    assert {r["originId"] for r in group["roles"]} == {
        f"Member_{t.ids['marketing']}",
        f"Owner_{t.ids['marketing']}",
    }
    assert group["scopes"][0]["isRootScope"] is True
    assert {r["displayName"] for r in by_system["AadApplication"]["roles"]} == {"Planner", "Viewer"}
    assert {r["displayName"] for r in by_system["SharePointOnline"]["roles"]} == {
        "Members",
        "Owners",
        "Visitors",
    }


def test_step6_owner_cannot_add_what_she_does_not_own(t: Tenant) -> None:
    replay(t, 6)
    cat = t.ids["cat_marketing"]
    r = t.add_resource("mamta", cat, "AadGroup", t.ids["finance"])
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "CallerNotResourceOwner"
    assert t.add_resource("mamta", cat, "AadApplication", t.ids["ledger"]).status_code == 403
    assert t.add_resource("mamta", cat, "SharePointOnline", t.ids["finsite"]).status_code == 403
    # She owns Tier-0 admins, but it is role-assignable: only GA / PRA may onboard it.
    assert t.add_resource("mamta", cat, "AadGroup", t.ids["tier0"]).status_code == 403
    # Her own group into someone else's catalog: that catalog does not exist for her.
    assert (
        t.add_resource("mamta", t.ids["cat_finance"], "AadGroup", t.ids["marketing"]).status_code
        == 404
    )
    # A refusal changes nothing: the catalog still holds exactly what step 5 added.
    listed = t.get("mamta", f"{EM}/catalogs/{cat}/resources").json()["value"]
    assert {r["originId"] for r in listed} == {t.ids[k] for k in ("marketing", "planner", "mksite")}


def test_step7_owner_adds_a_co_owner(t: Tenant) -> None:
    replay(t, 7)
    step7_co_owner(t)
    cat = t.ids["cat_marketing"]
    assert [c["id"] for c in t.get("omar", f"{EM}/catalogs").json()["value"]] == [cat]
    r = t.call("omar", "PATCH", f"{EM}/catalogs/{cat}", {"description": "Marketing resources"})
    assert r.status_code == 204
    assert t.get("mamta", f"{EM}/catalogs/{cat}").json()["description"] == "Marketing resources"


def test_step8_owner_names_a_project_lead_access_package_manager(t: Tenant) -> None:
    replay(t, 8)
    step8_manager(t)
    cat = t.ids["cat_marketing"]
    listed = t.get(
        "lena",
        f"{RM}/roleAssignments",
        **{"$filter": f"principalId eq '{t.ids['lena']}'", "$expand": "roleDefinition"},
    ).json()
    assert [a["roleDefinition"]["displayName"] for a in listed["value"]] == [
        "AccessPackages manager"
    ]
    assert [c["id"] for c in t.get("lena", f"{EM}/catalogs").json()["value"]] == [cat]


def test_step9_manager_builds_an_access_package_from_catalog_resources(t: Tenant) -> None:
    replay(t, 9)
    package = step9_package(t)
    body = t.get(
        "lena",
        f"{EM}/accessPackages/{package}",
        **{"$expand": "catalog,resourceRoleScopes($expand=role,scope)"},
    ).json()
    assert body["catalog"]["displayName"] == "Marketing"
    assert sorted(s["role"]["displayName"] for s in body["resourceRoleScopes"]) == [
        "Member",
        "Members",
        "Planner",
    ]
    assert all(
        s["id"] == f"{s['role']['id']}_{s['scope']['id']}" for s in body["resourceRoleScopes"]
    )


def test_step10_manager_can_do_nothing_outside_the_catalog(t: Tenant) -> None:
    replay(t, 10)
    cat, finance = t.ids["cat_marketing"], t.ids["cat_finance"]
    assert t.create_package("lena", finance, "Sneaky").status_code == 404
    assert t.add_resource("lena", cat, "AadGroup", t.ids["campaigns"]).status_code == 403
    assert t.assign_role("lena", "sofia", PACKAGE_MANAGER.id, cat).status_code == 403
    assert t.call("lena", "PATCH", f"{EM}/catalogs/{cat}", {"displayName": "X"}).status_code == 403
    assert t.call("lena", "DELETE", f"{EM}/catalogs/{cat}").status_code == 403
    assert t.post("lena", f"{EM}/catalogs", {"displayName": "Lena's"}).status_code == 403
    assert t.get("lena", f"{EM}/catalogs/{finance}").status_code == 404
    # Inside it she manages packages: hide, rename.
    r = t.call("lena", "PATCH", f"{EM}/accessPackages/{t.ids['campaign']}", {"isHidden": True})
    assert r.status_code == 204


def test_step11_every_step_is_audited_and_the_chain_verifies(t: Tenant, db: Database) -> None:
    replay(t, 10)
    events = t.get("hana", "/v1.0/auditLogs/directoryAudits", **{"$top": "500"}).json()["value"]
    activities = [e["activityDisplayName"] for e in events]
    for expected in (
        "Add group",
        "Create role assignment",
        "Create access package catalog",
        "Add resource to catalog",
        "Create access package",
        "Add resource role to access package",
    ):
        assert expected in activities
    lena_events = [e for e in events if e["initiatedBy"]["user"]["id"] == t.ids["lena"]]
    assert {e["activityDisplayName"] for e in lena_events} == {
        "Create access package",
        "Add resource role to access package",
    }
    # Mamta sees her catalog's history, not Finance's, and no tenant-level events.
    mine = t.get("mamta", "/v1.0/auditLogs/directoryAudits", **{"$top": "500"}).json()["value"]
    catalogs = {d["value"] for e in mine for d in e["additionalDetails"] if d["key"] == "catalogId"}
    assert catalogs == {t.ids["cat_marketing"]}
    with db.read() as conn:
        result = verify(conn)
    assert result.ok, result.problems
    assert result.events >= len(events)
