"""The fast single-catalog GET (``api/fast_reads.py``) answers exactly as the ORM route.

Until ``routes_catalogs`` serves ``GET catalogs/{id}`` with it, the fast handler is mounted
here under a test path and compared, persona by persona and catalog by catalog, with the
route as it is; then a revocation must show in the very next fast read (R13).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from remit.api import fast_reads
from remit.authz.roles import CATALOG_READER, PACKAGE_MANAGER
from remit.catalogs.operations import GENERAL_CATALOG_ID
from tests.factories import EM, PEOPLE, RM, Tenant

FAST = "/fast-read-under-test/catalogs"
OPTIONS = ({}, {"$select": "id,displayName"}, {"$expand": "accessPackages"}, {"$expand": "x"})


@pytest.fixture
def t(tenant: Tenant) -> Tenant:
    app: Any = tenant.client.app
    app.router.add_api_route(
        FAST + "/{catalog_id}", fast_reads.get_catalog, methods=["GET"], **fast_reads.SINGLE_READ
    )
    marketing = tenant.create_catalog("mamta", "Marketing")
    finance = tenant.create_catalog("mark", "Finance")
    tenant.ids.update(cat_marketing=marketing, cat_finance=finance)
    for alias, principal, role, catalog in (
        ("mamta", "lena", PACKAGE_MANAGER.id, marketing),
        ("mark", "finance", CATALOG_READER.id, finance),
    ):
        assert tenant.assign_role(alias, principal, role, catalog).status_code == 201
    assert tenant.create_package("lena", marketing, "Campaign 2027").status_code == 201
    return tenant


def _same(slow: httpx.Response, fast: httpx.Response) -> None:
    assert fast.status_code == slow.status_code, (slow.text, fast.text)
    if slow.status_code == 200:
        assert fast.json() == slow.json()
    else:
        assert fast.json()["error"]["code"] == slow.json()["error"]["code"]


def test_every_persona_reads_every_catalog_as_through_the_orm_route(t: Tenant) -> None:
    catalogs = [t.ids["cat_marketing"], t.ids["cat_finance"], GENERAL_CATALOG_ID, "nope"]
    for alias in PEOPLE:
        for catalog in catalogs:
            for params in OPTIONS:
                slow = t.get(alias, f"{EM}/catalogs/{catalog}", **params)
                _same(slow, t.get(alias, f"{FAST}/{catalog}", **params))


def test_without_a_good_token_it_is_401(t: Tenant) -> None:
    url = f"{FAST}/{t.ids['cat_marketing']}"
    assert t.client.get(url).status_code == 401
    bad = {"Authorization": "Bearer not.a.token"}
    assert t.client.get(url, headers=bad).status_code == 401


def test_a_revoked_role_is_seen_by_the_very_next_read(t: Tenant) -> None:
    url = f"{FAST}/{t.ids['cat_marketing']}"
    assert t.get("lena", url).status_code == 200  # warm: token remembered, connection pooled
    mine = t.get(
        "lena", f"{RM}/roleAssignments", **{"$filter": f"principalId eq '{t.ids['lena']}'"}
    )
    assert mine.status_code == 200, mine.text
    for assignment in mine.json()["value"]:
        assert (
            t.call("mamta", "DELETE", f"{RM}/roleAssignments/{assignment['id']}").status_code == 204
        )
    assert t.get("lena", url).status_code == 404


def test_leaving_the_group_that_holds_the_role_is_seen_by_the_very_next_read(t: Tenant) -> None:
    url = f"{FAST}/{t.ids['cat_finance']}"
    assert t.get("ines", url).status_code == 200  # a reader through the Finance group
    member = f"/v1.0/groups/{t.ids['finance']}/members/{t.ids['ines']}/$ref"
    assert t.call("mark", "DELETE", member).status_code == 204
    assert t.get("ines", url).status_code == 404


def test_a_disabled_account_is_refused_by_the_very_next_read(t: Tenant) -> None:
    url = f"{FAST}/{t.ids['cat_marketing']}"
    assert t.get("lena", url).status_code == 200
    r = t.call("admin", "PATCH", f"/v1.0/users/{t.ids['lena']}", {"accountEnabled": False})
    assert r.status_code == 204, r.text
    assert t.get("lena", url).status_code == 401
