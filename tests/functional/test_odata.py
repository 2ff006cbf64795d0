"""Graph conventions through HTTP: OData query options, paging, shapes, errors, status codes."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from remit.authz.roles import CATALOG_OWNER
from tests.factories import EM, RM, Tenant


@pytest.fixture
def cats(tenant: Tenant) -> list[str]:
    return [tenant.create_catalog("hana", f"Catalog {i:02d}") for i in range(7)]


def test_filter_contains_tolower_and_enum_case(tenant: Tenant, cats: list[str]) -> None:
    tenant.call("hana", "PATCH", f"{EM}/catalogs/{cats[3]}", {"state": "unpublished"})
    found = tenant.get(
        "hana", f"{EM}/catalogs", **{"$filter": "contains(tolower(displayName),'catalog 0')"}
    ).json()
    assert len(found["value"]) == 7
    unpublished = tenant.get(
        "hana", f"{EM}/catalogs", **{"$filter": "state eq 'Unpublished'"}
    ).json()["value"]
    assert [c["id"] for c in unpublished] == [cats[3]]
    both = tenant.get(
        "hana",
        f"{EM}/catalogs",
        **{
            "$filter": "(state eq 'published' and isExternallyVisible eq true) and "
            "displayName eq 'Catalog 01'"
        },
    ).json()["value"]
    assert [c["id"] for c in both] == [cats[1]]


def test_filter_on_a_path_operand(tenant: Tenant) -> None:
    cat = tenant.create_catalog("mamta", "Marketing")
    tenant.add_resource("mamta", cat, "AadGroup", tenant.ids["marketing"])
    tenant.add_resource("mamta", cat, "AadApplication", tenant.ids["planner"])
    resources = tenant.get("mamta", f"{EM}/catalogs/{cat}/resources").json()["value"]
    group = next(r for r in resources if r["originSystem"] == "AadGroup")
    roles = tenant.get(
        "mamta",
        f"{EM}/catalogs/{cat}/resourceRoles",
        **{
            "$filter": f"(originSystem eq 'AadGroup' and resource/id eq '{group['id']}')",
            "$expand": "resource",
        },
    ).json()["value"]
    assert {r["displayName"] for r in roles} == {"Member", "Owner"}
    assert all(r["resource"]["id"] == group["id"] for r in roles)


@pytest.mark.parametrize(
    "bad",
    [
        "displayName eq",
        "nosuchfield eq 'x'",
        "displayName eq 'a' and",
        "((",
        "1 eq 1 eq",
        "substringof('a', displayName)",
        "id in ('a', 'b'",
        "x" * 3000,
    ],
)
def test_bad_filter_is_a_graph_400(tenant: Tenant, bad: str) -> None:
    r = tenant.get("hana", f"{EM}/catalogs", **{"$filter": bad})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "invalidRequest"
    assert error["innerError"]["request-id"] == r.headers["request-id"]


def test_select_keeps_only_named_properties(tenant: Tenant, cats: list[str]) -> None:
    item = tenant.get("hana", f"{EM}/catalogs/{cats[0]}", **{"$select": "displayName,state"}).json()
    assert set(item) == {"@odata.context", "id", "displayName", "state"}


def test_expand_of_an_unknown_navigation_is_refused(tenant: Tenant, cats: list[str]) -> None:
    r = tenant.get("hana", f"{EM}/catalogs", **{"$expand": "owners"})
    assert r.status_code == 400
    assert "$expand" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "other"),
    [
        (f"{EM}/catalogs", {"$filter": "nope eq 1"}),
        ("/v1.0/users", {"$skiptoken": "!!"}),
        (f"{EM}/assignmentRequests", {"$orderby": "nope"}),
        (f"{EM}/catalogs", {"$count": "true", "$top": "1"}),
    ],
)
def test_a_bad_expand_is_reported_before_the_other_query_options(
    tenant: Tenant, cats: list[str], path: str, other: dict[str, str]
) -> None:
    """Faults come in the order the routes always gave: authorization, $expand, then $filter,
    $orderby and the continuation (the list ceremony runs the check before any SQL of its own)."""
    r = tenant.get("hana", path, **{"$expand": "bogus", **other})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["target"] == "$expand"


def test_a_caller_who_may_not_read_a_list_is_refused_before_a_bad_expand(tenant: Tenant) -> None:
    r = tenant.get("sofia", f"{EM}/connectedOrganizations", **{"$expand": "bogus"})
    assert r.status_code == 403, r.text


def test_paging_follows_absolute_next_links_to_the_end(tenant: Tenant, cats: list[str]) -> None:
    seen: list[str] = []
    url = f"{EM}/catalogs?$top=3&$count=true&$select=displayName"
    pages = 0
    while url:
        body = tenant.client.get(url, headers=tenant.headers("hana")).json()
        assert body["@odata.count"] == 8  # seven plus General
        assert len(body["value"]) <= 3
        seen += [c["id"] for c in body["value"]]
        next_link = body.get("@odata.nextLink")
        if next_link:
            parts = urlsplit(next_link)
            assert (parts.scheme, parts.netloc) == ("http", "remit.test")
            assert "%24select=displayName" in parts.query or "$select=displayName" in parts.query
            url = f"{parts.path}?{parts.query}"
        else:
            url = ""
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 8


def test_orderby_with_skip_paging(tenant: Tenant, cats: list[str]) -> None:
    first = tenant.get(
        "hana", f"{EM}/catalogs", **{"$orderby": "displayName desc", "$top": "2"}
    ).json()
    assert [c["displayName"] for c in first["value"]] == ["General", "Catalog 06"]
    assert "%24skip=2" in first["@odata.nextLink"]
    bad = tenant.get("hana", f"{EM}/catalogs", **{"$orderby": "displayName sideways"})
    assert bad.status_code == 400


def test_collections_and_entities_carry_odata_context(tenant: Tenant, cats: list[str]) -> None:
    listed = tenant.get("hana", f"{EM}/catalogs").json()
    assert listed["@odata.context"].endswith(
        "/v1.0/$metadata#identityGovernance/entitlementManagement/catalogs"
    )
    one = tenant.get("hana", f"{EM}/catalogs/{cats[0]}").json()
    assert one["@odata.context"].endswith("catalogs/$entity")


def test_creates_return_201_with_the_object_and_json_content_type(tenant: Tenant) -> None:
    r = tenant.post("mamta", f"{EM}/catalogs", {"displayName": "Marketing"})
    assert r.status_code == 201
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["id"]
    assert r.json()["catalogType"] == "userManaged"
    r = tenant.assign_role("mamta", "omar", CATALOG_OWNER.id, r.json()["id"])
    assert r.status_code == 201
    assert r.json()["roleDefinitionId"] == CATALOG_OWNER.id


def test_expanded_principals_carry_their_odata_type(tenant: Tenant) -> None:
    items = tenant.get(
        "hana", f"{RM}/roleAssignments", **{"$expand": "principal,roleDefinition"}
    ).json()["value"]
    assert items[0]["principal"]["@odata.type"] == "#microsoft.graph.group"
    assert items[0]["roleDefinition"]["displayName"] == "Catalog creator"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1.0/nothingHere", 404, "itemNotFound"),
        ("PUT", f"{EM}/catalogs", 405, "notSupported"),
        ("GET", f"{EM}/catalogs/00000000-0000-0000-0000-00000000abcd", 404, "itemNotFound"),
        ("POST", f"{EM}/catalogs", 400, "invalidRequest"),
    ],
)
def test_errors_are_graph_shaped(
    tenant: Tenant, method: str, path: str, status: int, code: str
) -> None:
    r = tenant.client.request(
        method,
        path,
        headers={**tenant.headers("hana"), "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == code


def test_duplicate_catalog_name_is_a_conflict(tenant: Tenant) -> None:
    tenant.create_catalog("hana", "Shared")
    r = tenant.post("hana", f"{EM}/catalogs", {"displayName": "shared"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"


def test_catalog_with_packages_cannot_be_deleted(tenant: Tenant) -> None:
    cat = tenant.create_catalog("mamta", "Marketing")
    package = tenant.create_package("mamta", cat, "Campaign").json()["id"]
    assert tenant.call("mamta", "DELETE", f"{EM}/catalogs/{cat}").status_code == 409
    assert tenant.call("mamta", "DELETE", f"{EM}/accessPackages/{package}").status_code == 204
    assert tenant.call("mamta", "DELETE", f"{EM}/catalogs/{cat}").status_code == 204
    general = "c0000000-0000-4000-8000-000000000001"
    assert tenant.call("hana", "DELETE", f"{EM}/catalogs/{general}").status_code == 400


def test_resource_in_use_cannot_be_removed_and_package_never_moves(tenant: Tenant) -> None:
    cat = tenant.create_catalog("mamta", "Marketing")
    other = tenant.create_catalog("mamta", "Marketing 2")
    tenant.add_resource("mamta", cat, "AadGroup", tenant.ids["marketing"])
    package = tenant.create_package("mamta", cat, "Campaign").json()["id"]
    r = tenant.post(
        "mamta",
        f"{EM}/accessPackages/{package}/resourceRoleScopes",
        {"role": {"originId": f"Member_{tenant.ids['marketing']}", "originSystem": "AadGroup"}},
    )
    assert r.status_code == 201, r.text
    remove = {
        "requestType": "adminRemove",
        "catalog": {"id": cat},
        "resource": {"originId": tenant.ids["marketing"], "originSystem": "AadGroup"},
    }
    assert tenant.post("mamta", f"{EM}/resourceRequests", remove).status_code == 409
    moved = tenant.call(
        "mamta", "PATCH", f"{EM}/accessPackages/{package}", {"catalog": {"id": other}}
    )
    assert moved.status_code == 400
    assert (
        tenant.call(
            "mamta", "DELETE", f"{EM}/accessPackages/{package}/resourceRoleScopes/{r.json()['id']}"
        ).status_code
        == 204
    )
    assert tenant.post("mamta", f"{EM}/resourceRequests", remove).status_code == 201


def test_incompatible_packages_and_groups_by_reference(tenant: Tenant) -> None:
    cat = tenant.create_catalog("mamta", "Marketing")
    a = tenant.create_package("mamta", cat, "A").json()["id"]
    b = tenant.create_package("mamta", cat, "B").json()["id"]
    ref = {
        "@odata.id": f"http://127.0.0.1:9/v1.0/identityGovernance/entitlementManagement/"
        f"accessPackages/{b}"
    }
    assert (
        tenant.post(
            "mamta", f"{EM}/accessPackages/{a}/incompatibleAccessPackages/$ref", ref
        ).status_code
        == 204
    )
    assert (
        tenant.post(
            "mamta", f"{EM}/accessPackages/{a}/incompatibleAccessPackages/$ref", ref
        ).status_code
        == 409
    )
    group_ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/groups/{tenant.ids['finance']}"}
    assert (
        tenant.post(
            "mamta", f"{EM}/accessPackages/{a}/incompatibleGroups/$ref", group_ref
        ).status_code
        == 204
    )
    expanded = tenant.get(
        "mamta",
        f"{EM}/accessPackages/{a}",
        **{"$expand": "incompatibleAccessPackages,incompatibleGroups"},
    ).json()
    assert [p["id"] for p in expanded["incompatibleAccessPackages"]] == [b]
    assert [g["displayName"] for g in expanded["incompatibleGroups"]] == ["Finance"]
    reverse = tenant.get("mamta", f"{EM}/accessPackages/{b}/accessPackagesIncompatibleWith")
    assert [p["id"] for p in reverse.json()["value"]] == [a]
    assert (
        tenant.call(
            "mamta", "DELETE", f"{EM}/accessPackages/{a}/incompatibleAccessPackages/{b}/$ref"
        ).status_code
        == 204
    )
    self_ref = {"@odata.id": f"/v1.0/identityGovernance/entitlementManagement/accessPackages/{a}"}
    assert (
        tenant.post(
            "mamta", f"{EM}/accessPackages/{a}/incompatibleAccessPackages/$ref", self_ref
        ).status_code
        == 400
    )
