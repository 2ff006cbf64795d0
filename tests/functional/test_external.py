"""External users (spec §6.4, §7): connected organizations, their sponsors, the tenant settings,
and the governed-guest lifecycle down to the deletion job. Through HTTP where there is an API;
the lifecycle functions are called as the lifecycle calls them, with the real database."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from remit.authz.actor import load_actor, system_actor
from remit.authz.roles import CATALOG_READER, CONNECTED_ORGANIZATION_ADMINISTRATOR
from remit.context import Ctx
from remit.directory import operations as d
from remit.errors import Conflict, Forbidden, Invalid, NotFound
from remit.external import guests, orgs
from remit.external import jobs as external_jobs
from remit.jobs.runner import Worker
from remit.models.audit import AuditEvent
from remit.models.directory import GroupMember, User
from remit.models.external import ConnectedOrganization, ConnectedOrganizationDomain
from remit.models.jobs import Job
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.policies import AssignmentPolicy, PolicyTarget
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant
from tests.matrix_support import fingerprint

ORGS = f"{EM}/connectedOrganizations"
SETTINGS = f"{EM}/settings"
GRAPH = "https://graph.microsoft.com/v1.0"
TENANT_ID = "3b0b4b6e-2c55-4c1c-9d5b-0c7f2f7d1a11"

ALL_SOURCES: list[dict[str, Any]] = [
    {
        "@odata.type": "#microsoft.graph.azureActiveDirectoryTenant",
        "tenantId": TENANT_ID,
        "displayName": "Fabrikam",
    },
    {
        "@odata.type": "#microsoft.graph.domainIdentitySource",
        "domainName": "Fabrikam.Example",
        "displayName": "fabrikam.example",
    },
    {
        "@odata.type": "#microsoft.graph.externalDomainFederation",
        "domainName": "fabrikam-partners.example",
        "issuerUri": "https://idp.fabrikam-partners.example/saml",
        "displayName": "Fabrikam partners",
    },
    {
        # clients may leave out the "#"
        "@odata.type": "microsoft.graph.crossCloudAzureActiveDirectoryTenant",
        "tenantId": "9d5b3b0b-4b6e-4c1c-9d5b-0c7f2f7d1a22",
        "cloudInstance": "microsoftonline.us",
        "displayName": "Fabrikam Gov",
    },
    {
        "@odata.type": "#microsoft.graph.socialIdentitySource",
        "socialIdentitySourceType": "Facebook",
        "displayName": "Facebook",
    },
]


def _create(t: Tenant, alias: str = "hana", **body: Any) -> dict[str, Any]:
    r = t.post(alias, ORGS, {"displayName": "Fabrikam", **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _activities(t: Tenant, target_id: str) -> list[str]:
    with t.db.read() as conn:
        return list(
            conn.execute(
                select(AuditEvent.activity)
                .where(AuditEvent.target_id == target_id)
                .order_by(AuditEvent.seq)
            ).scalars()
        )


@contextmanager
def as_system(t: Tenant) -> Iterator[Ctx]:
    with t.db.write() as s:
        yield Ctx(s, system_actor("test"), t.clock())


@contextmanager
def as_user(t: Tenant, alias: str) -> Iterator[Ctx]:
    with t.db.write() as s:
        yield Ctx(s, load_actor(s, t.ids[alias]), t.clock())


def _graph_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"]
    assert error["message"]
    assert error["innerError"]["request-id"]
    return dict(error)


# ---------------------------------------------------------------- organizations


def test_create_read_update_delete(tenant: Tenant) -> None:
    t = tenant
    created = _create(t, description="Our partner", identitySources=ALL_SOURCES, state="Configured")
    assert created["state"] == "configured"
    assert created["description"] == "Our partner"
    assert created["createdDateTime"].endswith("Z")
    assert created["@odata.context"].endswith(
        "#" + "identityGovernance/entitlementManagement/connectedOrganizations/$entity"
    )
    sources = created["identitySources"]
    assert [s["@odata.type"] for s in sources] == [
        "#microsoft.graph.azureActiveDirectoryTenant",
        "#microsoft.graph.domainIdentitySource",
        "#microsoft.graph.externalDomainFederation",
        "#microsoft.graph.crossCloudAzureActiveDirectoryTenant",
        "#microsoft.graph.socialIdentitySource",
    ]
    assert sources[1]["domainName"] == "fabrikam.example"  # lower-cased
    assert sources[3]["cloudInstance"] == "microsoftonline.us"
    assert sources[4]["socialIdentitySourceType"] == "facebook"
    oid = created["id"]
    with t.db.read() as conn:
        keys = set(
            conn.execute(
                select(ConnectedOrganizationDomain.domain).where(
                    ConnectedOrganizationDomain.organization_id == oid
                )
            ).scalars()
        )
    assert keys == {
        "fabrikam.example",
        "fabrikam-partners.example",
        f"tenant:{TENANT_ID}",
        "tenant:9d5b3b0b-4b6e-4c1c-9d5b-0c7f2f7d1a22",
    }

    got = t.get("hana", f"{ORGS}/{oid}")
    assert got.status_code == 200
    assert got.json()["identitySources"] == sources
    assert got.json()["createdDateTime"] == created["createdDateTime"]

    # state defaults to configured; a proposed one can be created too
    plain = _create(t, displayName="Plain")
    assert plain["state"] == "configured"
    assert plain["identitySources"] == []
    _create(t, displayName="Northwind", state="proposed")

    listed = t.get("hana", ORGS, **{"$filter": "state eq 'Proposed'", "$select": "displayName"})
    assert listed.status_code == 200
    assert [o["displayName"] for o in listed.json()["value"]] == ["Northwind"]
    assert set(listed.json()["value"][0]) == {"id", "displayName"}
    assert (
        "#identityGovernance/entitlementManagement/connectedOrganizations"
        in (listed.json()["@odata.context"])
    )

    page = t.get("hana", ORGS, **{"$top": "2", "$count": "true"})
    assert page.json()["@odata.count"] == 3
    assert len(page.json()["value"]) == 2
    rest = t.client.get(page.json()["@odata.nextLink"], headers=t.headers("hana"))
    assert len(rest.json()["value"]) == 1
    seen = {o["id"] for o in page.json()["value"] + rest.json()["value"]}
    assert oid in seen
    assert len(seen) == 3

    patched = t.call(
        "hana",
        "PATCH",
        f"{ORGS}/{oid}",
        {"displayName": "Fabrikam Ltd", "description": None, "state": "proposed"},
    )
    assert patched.status_code == 204, patched.text
    after = t.get("hana", f"{ORGS}/{oid}").json()
    assert (after["displayName"], after["description"], after["state"]) == (
        "Fabrikam Ltd",
        None,
        "proposed",
    )
    # identity sources can be replaced; the matching index follows
    r = t.call(
        "hana",
        "PATCH",
        f"{ORGS}/{oid}",
        {"identitySources": [ALL_SOURCES[1]]},
    )
    assert r.status_code == 204, r.text
    with as_system(t) as ctx:
        assert orgs.match_organization(ctx.session, "x@fabrikam-partners.example") is None
        found = orgs.match_organization(ctx.session, "x@fabrikam.example")
        assert found is not None
        assert found.id == oid

    assert t.call("hana", "DELETE", f"{ORGS}/{oid}").status_code == 204
    _graph_error(t.get("hana", f"{ORGS}/{oid}"), 404)
    _graph_error(t.call("hana", "DELETE", f"{ORGS}/{oid}"), 404)
    with t.db.read() as conn:
        assert not conn.execute(
            select(ConnectedOrganizationDomain).where(
                ConnectedOrganizationDomain.organization_id == oid
            )
        ).first()
    assert _activities(t, oid) == [
        "Create connected organization",
        "Update connected organization",
        "Update connected organization",
        "Delete connected organization",
    ]


BAD_CREATES: list[tuple[str, dict[str, Any], str | None]] = [
    ("no name", {"description": "x"}, None),
    ("blank name", {"displayName": "   "}, "displayName"),
    ("bad state", {"displayName": "X", "state": "active"}, "state"),
    ("sources not a list", {"displayName": "X", "identitySources": {"a": 1}}, None),
    (
        "unknown source type",
        {"displayName": "X", "identitySources": [{"@odata.type": "#microsoft.graph.user"}]},
        "identitySources[0].@odata.type",
    ),
    (
        "source without type",
        {"displayName": "X", "identitySources": [{"domainName": "a.example"}]},
        "identitySources[0].@odata.type",
    ),
    (
        "tenant id not a GUID",
        {
            "displayName": "X",
            "identitySources": [
                {"@odata.type": "#microsoft.graph.azureActiveDirectoryTenant", "tenantId": "x"}
            ],
        },
        "identitySources[0].tenantId",
    ),
    (
        "bad domain",
        {
            "displayName": "X",
            "identitySources": [
                {"@odata.type": "#microsoft.graph.domainIdentitySource", "domainName": "no"}
            ],
        },
        "identitySources[0].domainName",
    ),
    (
        "federation without issuer",
        {
            "displayName": "X",
            "identitySources": [
                {
                    "@odata.type": "#microsoft.graph.externalDomainFederation",
                    "domainName": "a.example",
                }
            ],
        },
        "identitySources[0].issuerUri",
    ),
    (
        "cross-cloud without cloud",
        {
            "displayName": "X",
            "identitySources": [
                {
                    "@odata.type": "#microsoft.graph.crossCloudAzureActiveDirectoryTenant",
                    "tenantId": TENANT_ID,
                }
            ],
        },
        "identitySources[0].cloudInstance",
    ),
    (
        "unknown social source",
        {
            "displayName": "X",
            "identitySources": [
                {
                    "@odata.type": "#microsoft.graph.socialIdentitySource",
                    "socialIdentitySourceType": "myspace",
                }
            ],
        },
        "identitySources[0].socialIdentitySourceType",
    ),
    (
        "the same source twice",
        {"displayName": "X", "identitySources": [ALL_SOURCES[1], ALL_SOURCES[1]]},
        "identitySources[1]",
    ),
]


@pytest.mark.parametrize(("case", "body", "target"), BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
def test_invalid_bodies_are_refused_and_change_nothing(
    tenant: Tenant, case: str, body: dict[str, Any], target: str | None
) -> None:
    before = fingerprint(tenant.db)
    error = _graph_error(tenant.post("hana", ORGS, body), 400)
    if target is not None:
        assert error.get("target") == target, (case, error)
    assert fingerprint(tenant.db) == before


def test_invalid_patches_change_nothing(tenant: Tenant) -> None:
    t = tenant
    oid = _create(t, identitySources=[ALL_SOURCES[1]])["id"]
    before = fingerprint(t.db)
    for body in (
        {"state": "gone"},
        {"displayName": ""},
        {"displayName": "Renamed", "identitySources": [{"@odata.type": "#x"}]},
        {"identitySources": "fabrikam.example"},
    ):
        _graph_error(t.call("hana", "PATCH", f"{ORGS}/{oid}", body), 400)
    _graph_error(t.call("hana", "PATCH", f"{ORGS}/nope", {"displayName": "X"}), 404)
    assert fingerprint(t.db) == before
    # an empty PATCH is allowed and changes nothing either
    assert t.call("hana", "PATCH", f"{ORGS}/{oid}", {}).status_code == 204
    assert fingerprint(t.db) == before


def test_a_domain_belongs_to_one_configured_organization(tenant: Tenant) -> None:
    t = tenant
    first = _create(t, identitySources=[ALL_SOURCES[0], ALL_SOURCES[1]])["id"]
    before = fingerprint(t.db)
    for sources in ([ALL_SOURCES[1]], [ALL_SOURCES[0]]):
        error = _graph_error(
            t.post("hana", ORGS, {"displayName": "Copy", "identitySources": sources}), 409
        )
        assert "Fabrikam" in error["message"]
    assert fingerprint(t.db) == before
    # a proposed organization may share it; making it configured may not
    second = _create(t, displayName="Copy", state="proposed", identitySources=[ALL_SOURCES[1]])
    _graph_error(t.call("hana", "PATCH", f"{ORGS}/{second['id']}", {"state": "configured"}), 409)
    with as_system(t) as ctx:
        found = orgs.match_organization(ctx.session, "someone@FABRIKAM.example")
        assert found is not None
        assert found.id == first


def test_delete_is_refused_while_a_policy_names_the_organization(tenant: Tenant) -> None:
    t = tenant
    oid = _create(t)["id"]
    catalog = t.create_catalog("mamta", "Partners")
    package = t.create_package("mamta", catalog, "Partner access").json()["id"]
    with as_system(t) as ctx:
        policy = AssignmentPolicy(
            access_package_id=package,
            catalog_id=catalog,
            display_name="Fabrikam users",
            allowed_target_scope="specificConnectedOrganizationUsers",
            specific_allowed_targets=[
                {
                    "@odata.type": "#microsoft.graph.connectedOrganizationMembers",
                    "connectedOrganizationId": oid,
                }
            ],
            expiration={"type": "noExpiration"},
            requestor_settings={},
            request_approval_settings={},
            created_at=ctx.now,
            modified_at=ctx.now,
        )
        ctx.session.add(policy)
        ctx.session.flush()
        ctx.session.add(
            PolicyTarget(policy_id=policy.id, kind="connectedOrganizationMembers", subject_id=oid)
        )
        policy_id = policy.id
    before = fingerprint(t.db)
    error = _graph_error(t.call("hana", "DELETE", f"{ORGS}/{oid}"), 409)
    assert "1 assignment policy" in error["message"]
    assert fingerprint(t.db) == before
    with as_system(t) as ctx:
        ctx.session.delete(ctx.session.get(AssignmentPolicy, policy_id))
    assert t.call("hana", "DELETE", f"{ORGS}/{oid}").status_code == 204


def test_the_tenant_holds_at_most_2500(tenant: Tenant) -> None:
    t = tenant
    with as_system(t) as ctx:
        ctx.session.execute(
            insert(ConnectedOrganization),
            [
                {
                    "id": str(uuid.uuid4()),
                    "display_name": f"Org {i}",
                    "state": "proposed",
                    "identity_sources": [],
                    "created_at": ctx.now,
                    "modified_at": ctx.now,
                }
                for i in range(orgs.MAX_ORGANIZATIONS - 1)
            ],
        )
    _create(t, displayName="The last one")
    before = fingerprint(t.db)
    error = _graph_error(t.post("hana", ORGS, {"displayName": "One too many"}), 409)
    assert error["code"] == "quotaLimitReached"
    with as_system(t) as ctx, pytest.raises(Conflict):
        orgs.propose_organization(ctx, "someone@northwind.example")
    assert fingerprint(t.db) == before


# ---------------------------------------------------------------- who may


def test_who_may_manage_and_read(tenant: Tenant) -> None:
    t = tenant
    oid = _create(t)["id"]
    catalog = t.create_catalog("mamta", "Marketing")  # mamta: catalog owner
    assert t.assign_role("mamta", "joe", CATALOG_READER.id, catalog).status_code == 201
    r = t.assign_role("hana", "sofia", CONNECTED_ORGANIZATION_ADMINISTRATOR.id, None)
    assert r.status_code == 201, r.text
    # only an administrator hands out the Connected Organization Administrator role
    _graph_error(t.assign_role("mamta", "omar", CONNECTED_ORGANIZATION_ADMINISTRATOR.id, None), 403)

    readers = ("admin", "hana", "sofia", "mamta", "joe")
    for alias in readers:
        assert t.get(alias, ORGS).status_code == 200, alias
        assert t.get(alias, f"{ORGS}/{oid}").status_code == 200, alias
        assert t.get(alias, f"{ORGS}/{oid}/internalSponsors").status_code == 200, alias
        assert t.get(alias, SETTINGS).status_code == 200, alias
    # members without an entitlement-management role, a catalog creator without a catalog, a
    # User Administrator: refused, whether or not the organization exists
    for alias in ("nobody", "mark", "ursula", "kenji"):
        for path in (ORGS, f"{ORGS}/{oid}", f"{ORGS}/missing", f"{ORGS}/{oid}/externalSponsors"):
            _graph_error(t.get(alias, path), 403)
        _graph_error(t.get(alias, SETTINGS), 403)

    before = fingerprint(t.db)
    for alias in ("mamta", "joe", "nobody", "ursula"):
        _graph_error(t.post(alias, ORGS, {"displayName": "Mine"}), 403)
        _graph_error(t.call(alias, "PATCH", f"{ORGS}/{oid}", {"displayName": "Mine"}), 403)
        _graph_error(t.call(alias, "DELETE", f"{ORGS}/{oid}"), 403)
        _graph_error(
            t.post(
                alias,
                f"{ORGS}/{oid}/internalSponsors/$ref",
                {"@odata.id": f"{GRAPH}/users/{t.ids[alias]}"},
            ),
            403,
        )
        _graph_error(t.call(alias, "PATCH", SETTINGS, {"externalUserLifecycleAction": "none"}), 403)
    # the Connected Organization Administrator manages organizations, not the settings
    _graph_error(t.call("sofia", "PATCH", SETTINGS, {"externalUserLifecycleAction": "none"}), 403)
    assert fingerprint(t.db) == before

    for alias in ("sofia", "admin"):
        mine = _create(t, alias, displayName=f"By {alias}")["id"]
        assert t.call(alias, "PATCH", f"{ORGS}/{mine}", {"description": "d"}).status_code == 204
        assert t.call(alias, "DELETE", f"{ORGS}/{mine}").status_code == 204

    # anonymous
    assert t.client.get(ORGS).status_code == 401
    assert t.client.post(ORGS, json={"displayName": "X"}).status_code == 401
    assert t.client.get(SETTINGS).status_code == 401


# ---------------------------------------------------------------- sponsors


def test_sponsors_by_ref(tenant: Tenant) -> None:
    t = tenant
    oid = _create(t, identitySources=[ALL_SOURCES[1]])["id"]
    guest = t.post(
        "ursula",
        "/v1.0/users",
        {"userPrincipalName": "gail@fabrikam.example", "displayName": "Gail", "userType": "Guest"},
    )
    assert guest.status_code == 201, guest.text
    gail = guest.json()["id"]
    internal, external = f"{ORGS}/{oid}/internalSponsors", f"{ORGS}/{oid}/externalSponsors"

    for ref in (
        f"{GRAPH}/users/{t.ids['sofia']}",
        f"http://remit.test/v1.0/groups/{t.ids['marketing']}",
        f"https://elsewhere.example/v1.0/directoryObjects/{t.ids['ines']}",
    ):
        r = t.post("hana", f"{internal}/$ref", {"@odata.id": ref})
        assert r.status_code == 204, r.text
    assert (
        t.post("hana", f"{external}/$ref", {"@odata.id": f"{GRAPH}/users/{gail}"}).status_code
        == 204
    )

    listed = t.get("hana", internal).json()["value"]
    by_id = {o["id"]: o["@odata.type"] for o in listed}
    assert by_id == {
        t.ids["sofia"]: "#microsoft.graph.user",
        t.ids["marketing"]: "#microsoft.graph.group",
        t.ids["ines"]: "#microsoft.graph.user",
    }
    assert [o["id"] for o in t.get("hana", external).json()["value"]] == [gail]
    page = t.get("hana", internal, **{"$top": "2"}).json()
    assert len(page["value"]) == 2
    assert "@odata.nextLink" in page
    filtered = t.get("hana", internal, **{"$filter": f"id eq '{t.ids['sofia']}'"}).json()
    assert [o["id"] for o in filtered["value"]] == [t.ids["sofia"]]

    expanded = t.get("hana", f"{ORGS}/{oid}", **{"$expand": "internalSponsors,externalSponsors"})
    assert {o["id"] for o in expanded.json()["internalSponsors"]} == set(by_id)
    assert [o["@odata.type"] for o in expanded.json()["externalSponsors"]] == [
        "#microsoft.graph.user"
    ]
    listed_orgs = t.get("hana", ORGS, **{"$expand": "externalSponsors"}).json()["value"]
    assert [o["id"] for o in listed_orgs[0]["externalSponsors"]] == [gail]
    _graph_error(t.get("hana", f"{ORGS}/{oid}", **{"$expand": "catalog"}), 400)

    before = fingerprint(t.db)
    for path, ref, status in (
        (internal, f"{GRAPH}/users/{t.ids['sofia']}", 409),  # already a sponsor
        (internal, f"{GRAPH}/users/{gail}", 400),  # a guest is not an internal sponsor
        (external, f"{GRAPH}/users/{t.ids['omar']}", 400),  # a member is not an external one
        (external, f"{GRAPH}/groups/{t.ids['marketing']}", 400),
        (internal, f"{GRAPH}/users/00000000-0000-0000-0000-00000000abcd", 400),
        (internal, f"{GRAPH}/applications/{t.ids['ledger']}", 400),
        (f"{ORGS}/missing/internalSponsors", f"{GRAPH}/users/{t.ids['omar']}", 404),
    ):
        _graph_error(t.post("hana", f"{path}/$ref", {"@odata.id": ref}), status)
    _graph_error(t.call("hana", "DELETE", f"{internal}/{gail}/$ref"), 404)
    assert fingerprint(t.db) == before

    assert t.call("hana", "DELETE", f"{internal}/{t.ids['sofia']}/$ref").status_code == 204
    assert t.call("hana", "DELETE", f"{external}/{gail}/$ref").status_code == 204
    assert {o["id"] for o in t.get("hana", internal).json()["value"]} == {
        t.ids["marketing"],
        t.ids["ines"],
    }
    assert t.get("hana", external).json()["value"] == []
    with as_system(t) as ctx:
        assert orgs.sponsors_of(ctx.session, oid, "internal") == sorted(
            [(t.ids["marketing"], "group"), (t.ids["ines"], "user")]
        )
        assert orgs.sponsors_of(ctx.session, oid, "external") == []
    assert _activities(t, oid).count("Add internal sponsor to connected organization") == 3
    assert _activities(t, oid).count("Remove external sponsor from connected organization") == 1


# ---------------------------------------------------------------- settings


def _settings(t: Tenant, alias: str = "hana") -> dict[str, Any]:
    r = t.get(alias, SETTINGS)
    assert r.status_code == 200, r.text
    body = dict(r.json())
    assert body["@odata.type"] == "#microsoft.graph.entitlementManagementSettings"
    return {
        k: body[k]
        for k in ("externalUserLifecycleAction", "durationUntilExternalUserDeletedAfterBlocked")
    }


def test_settings(tenant: Tenant) -> None:
    t = tenant
    assert _settings(t) == {
        "externalUserLifecycleAction": "blockSignInAndDelete",
        "durationUntilExternalUserDeletedAfterBlocked": "P30D",
    }
    steps: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"externalUserLifecycleAction": "None"}, {"externalUserLifecycleAction": "none"}),
        (
            {"durationUntilExternalUserDeletedAfterBlocked": "14 days, 0:00:00"},
            {"durationUntilExternalUserDeletedAfterBlocked": "P14D"},
        ),
        (
            {
                "externalUserLifecycleAction": "BLOCKSIGNIN",
                "durationUntilExternalUserDeletedAfterBlocked": "0:00:00",
            },
            {
                "externalUserLifecycleAction": "blockSignIn",
                "durationUntilExternalUserDeletedAfterBlocked": "PT0S",
            },
        ),
        (
            {"durationUntilExternalUserDeletedAfterBlocked": "P1DT12H"},
            {"durationUntilExternalUserDeletedAfterBlocked": "P1DT12H"},
        ),
        (
            {
                "@odata.type": "#microsoft.graph.entitlementManagementSettings",
                "externalUserLifecycleAction": "blockSignInAndDelete",
                "durationUntilExternalUserDeletedAfterBlocked": "P3660D",
            },
            {
                "externalUserLifecycleAction": "blockSignInAndDelete",
                "durationUntilExternalUserDeletedAfterBlocked": "P3660D",
            },
        ),
    ]
    expected = _settings(t)
    for body, change in steps:
        r = t.call("hana", "PATCH", SETTINGS, body)
        assert r.status_code == 204, r.text
        expected.update(change)
        assert _settings(t) == expected
    assert _activities(t, "1").count("Update entitlement management settings") == len(steps)
    with t.db.read() as conn:
        details = conn.execute(
            select(AuditEvent.details)
            .where(AuditEvent.activity == "Update entitlement management settings")
            .order_by(AuditEvent.seq)
            .limit(1)
        ).scalar_one()
    assert details["before"]["externalUserLifecycleAction"] == "blockSignInAndDelete"
    assert details["after"]["externalUserLifecycleAction"] == "none"

    before = fingerprint(t.db)
    for body, target in (
        ({"externalUserLifecycleAction": "deleteAtOnce"}, "externalUserLifecycleAction"),
        ({"externalUserLifecycleAction": None}, "externalUserLifecycleAction"),
        ({"durationUntilExternalUserDeletedAfterBlocked": "P3661D"}, None),
        ({"durationUntilExternalUserDeletedAfterBlocked": "P1Y"}, None),
        ({"durationUntilExternalUserDeletedAfterBlocked": 30}, None),
        ({"durationUntilExternalUserDeletedAfterBlocked": "-P1D"}, None),
        ({"durationUntilExternalUserDeletedAfterBlocked": "PT0.5S"}, None),
        (  # one bad value: nothing changes, not even the good one
            {
                "externalUserLifecycleAction": "none",
                "durationUntilExternalUserDeletedAfterBlocked": "soon",
            },
            "durationUntilExternalUserDeletedAfterBlocked",
        ),
    ):
        error = _graph_error(t.call("hana", "PATCH", SETTINGS, body), 400)
        assert error["target"] == (target or "durationUntilExternalUserDeletedAfterBlocked")
    assert fingerprint(t.db) == before
    assert _settings(t) == expected
    # an unchanged value is not an event
    assert (
        t.call(
            "hana", "PATCH", SETTINGS, {"externalUserLifecycleAction": "blocksigninanddelete"}
        ).status_code
        == 204
    )
    assert fingerprint(t.db) == before
    assert t.call("admin", "PATCH", SETTINGS, {}).status_code == 204


# ---------------------------------------------------------------- guests


def _guest(t: Tenant, email: str, org_id: str | None = None) -> str:
    with as_system(t) as ctx:
        return guests.ensure_guest(ctx, email=email, organization_id=org_id).id


def _user(t: Tenant, user_id: str) -> User | None:
    with t.db.write() as s:
        found = s.get(User, user_id)
        if found is not None:
            s.expunge(found)
        return found


def _set(t: Tenant, **changes: Any) -> None:
    r = t.call("hana", "PATCH", SETTINGS, changes)
    assert r.status_code == 204, r.text


def test_matching_and_proposed_organizations(tenant: Tenant) -> None:
    t = tenant
    configured = _create(t, identitySources=[ALL_SOURCES[1]])["id"]
    with as_system(t) as ctx:
        s = ctx.session
        hit = orgs.match_organization(s, "Alice@Fabrikam.Example")
        assert hit is not None
        assert hit.id == configured
        for miss in ("alice@sub.fabrikam.example", "alice@", "not an email", "a@b@c"):
            assert orgs.match_organization(s, miss) is None, miss
        proposed = orgs.propose_organization(ctx, "bob@Northwind.example")
        assert (proposed.state, proposed.display_name) == ("proposed", "northwind.example")
        assert proposed.identity_sources == [
            {
                "@odata.type": "#microsoft.graph.domainIdentitySource",
                "domainName": "northwind.example",
                "displayName": "northwind.example",
            }
        ]
        again = orgs.propose_organization(ctx, "carol@northwind.example")
        assert again.id == proposed.id  # the one that matches already
        proposed_id = proposed.id
        with pytest.raises(Invalid):
            orgs.propose_organization(ctx, "nobody")
    assert "Create proposed connected organization" in _activities(t, proposed_id)
    # an administrator configures an organization for the same domain: it wins the match
    later = _create(
        t,
        displayName="Northwind",
        identitySources=[
            {
                "@odata.type": "#microsoft.graph.domainIdentitySource",
                "domainName": "northwind.example",
            }
        ],
    )["id"]
    with as_system(t) as ctx:
        hit = orgs.match_organization(ctx.session, "bob@northwind.example")
        assert hit is not None
        assert hit.id == later


def test_ensure_guest(tenant: Tenant) -> None:
    t = tenant
    oid = _create(t, identitySources=[ALL_SOURCES[1]])["id"]
    with as_system(t) as ctx:
        user = guests.ensure_guest(
            ctx, email="Alice@Fabrikam.example", display_name="Alice A", organization_id=oid
        )
        assert user.user_principal_name == "Alice_Fabrikam.example#EXT#@contoso.example"
        assert (user.user_type, user.subject_lifecycle, user.connected_organization_id) == (
            "Guest",
            "governed",
            oid,
        )
        assert (user.mail, user.display_name, user.account_enabled) == (
            "Alice@Fabrikam.example",
            "Alice A",
            True,
        )
        alice = user.id
        # found again by mail or UPN, whatever the case
        assert guests.ensure_guest(ctx, email="alice@fabrikam.EXAMPLE").id == alice
        # an existing member is returned as it is
        assert guests.ensure_guest(ctx, email="SOFIA@contoso.example").id == t.ids["sofia"]
        bob = guests.ensure_guest(ctx, email="bob@elsewhere.example")
        assert (bob.display_name, bob.connected_organization_id) == ("bob", None)
        for bad in ("no-at-sign", "a@b"):
            with pytest.raises(Invalid):
                guests.ensure_guest(ctx, email=bad)
        with pytest.raises(Invalid):
            guests.ensure_guest(ctx, email="carol@fabrikam.example", organization_id="missing")
    assert _activities(t, alice) == ["Invite external user"]
    # the guest is a directory user like any other
    listed = t.get("hana", f"/v1.0/users/{alice}").json()
    assert listed["userType"] == "Guest"
    # deleting the organization leaves its guests, as users of no organization
    assert t.call("hana", "DELETE", f"{ORGS}/{oid}").status_code == 204
    found = _user(t, alice)
    assert found is not None
    assert found.connected_organization_id is None


def _run_worker(t: Tenant, settings: Settings, clock: SteppingClock) -> None:
    assert external_jobs.SWEEP  # registers the job kinds
    Worker(t.db, settings, clock=clock).drain()


def test_block_then_delete_after_the_delay(
    tenant: Tenant, settings: Settings, clock: SteppingClock
) -> None:
    t = tenant
    alice = _guest(t, "alice@fabrikam.example")
    with as_system(t) as ctx:
        d.add_group_member(ctx, t.ids["marketing"], alice)
        d.add_group_owner(ctx, t.ids["legal"], alice)
    blocked_at = clock()
    with as_system(t) as ctx:
        guests.on_last_assignment_ended(ctx, alice)
    user = _user(t, alice)
    assert user is not None
    assert user.account_enabled is False
    assert user.blocked_at == blocked_at
    assert user.delete_after == blocked_at + timedelta(days=30)
    assert _activities(t, alice)[-1] == "Block external user and schedule deletion"

    # a blocked guest cannot sign in
    r = t.client.get(
        "/v1.0/me",
        headers={
            "Authorization": "Bearer "
            + _token_for(t, alice, "alice_fabrikam.example#EXT#@contoso.example")
        },
    )
    assert r.status_code == 401

    # the settings change afterwards: the date already set stays
    _set(t, durationUntilExternalUserDeletedAfterBlocked="P1D")
    with as_system(t) as ctx:
        guests.on_last_assignment_ended(ctx, alice)  # again: nothing moves
    user = _user(t, alice)
    assert user is not None
    assert user.delete_after == blocked_at + timedelta(days=30)

    clock.advance(days=29, hours=23)
    _run_worker(t, settings, clock)
    assert _user(t, alice) is not None
    clock.advance(days=1)
    _run_worker(t, settings, clock)
    assert _user(t, alice) is None
    with t.db.read() as conn:
        assert not conn.execute(select(GroupMember).where(GroupMember.member_id == alice)).first()
    assert _activities(t, alice)[-1] == "Delete user"
    # the periodic row stays armed for its next slot
    with t.db.read() as conn:
        job = conn.execute(select(Job).where(Job.kind == external_jobs.SWEEP)).one()
        assert job.status == "queued"
        assert job.run_after > clock()


def _token_for(t: Tenant, user_id: str, upn: str) -> str:
    state = t.client.app.state.remit  # type: ignore[attr-defined]
    return str(state.tokens.issue(user_id, upn, now=t.clock()))


def test_a_guest_given_access_again_is_kept(
    tenant: Tenant, settings: Settings, clock: SteppingClock
) -> None:
    t = tenant
    kept = _guest(t, "kept@fabrikam.example")
    assigned = _guest(t, "assigned@fabrikam.example")
    with as_system(t) as ctx:
        guests.on_last_assignment_ended(ctx, kept)
        guests.on_last_assignment_ended(ctx, assigned)
    catalog = t.create_catalog("mamta", "Partners")
    package = t.create_package("mamta", catalog, "Partner access").json()["id"]
    with as_system(t) as ctx:
        # given access again before the date: unblocked
        guests.restore_on_new_assignment(ctx, kept)
        # an active assignment that was not reported yet also keeps the guest
        ctx.session.add(
            Assignment(
                access_package_id=package,
                catalog_id=catalog,
                target_id=assigned,
                state="delivered",
                status="Delivered",
                start_at=ctx.now,
                expiration={"type": "noExpiration"},
                created_at=ctx.now,
                modified_at=ctx.now,
                active_key=f"{assigned}:{package}",
            )
        )
    user = _user(t, kept)
    assert user is not None
    assert (user.account_enabled, user.blocked_at, user.delete_after) == (True, None, None)
    assert _activities(t, kept)[-1] == "Unblock external user"
    clock.advance(days=31)
    _run_worker(t, settings, clock)
    assert _user(t, kept) is not None
    assert _user(t, assigned) is not None
    # while it holds an assignment, losing another one does not block it
    with as_system(t) as ctx:
        guests.on_last_assignment_ended(ctx, kept)
    with as_system(t) as ctx:
        ctx.session.add(
            Assignment(
                access_package_id=package,
                catalog_id=catalog,
                target_id=kept,
                state="delivered",
                status="Delivered",
                start_at=ctx.now,
                expiration={"type": "noExpiration"},
                created_at=ctx.now,
                modified_at=ctx.now,
                active_key=f"{kept}:{package}",
            )
        )
    user = _user(t, kept)
    assert user is not None
    assert user.blocked_at is not None
    with as_system(t) as ctx:
        guests.restore_on_new_assignment(ctx, kept)
        guests.on_last_assignment_ended(ctx, kept)
    user = _user(t, kept)
    assert user is not None
    assert user.blocked_at is None
    assert user.account_enabled


def test_each_setting(tenant: Tenant, settings: Settings, clock: SteppingClock) -> None:
    t = tenant
    _set(t, externalUserLifecycleAction="none")
    untouched = _guest(t, "none@fabrikam.example")
    with as_system(t) as ctx:
        guests.on_last_assignment_ended(ctx, untouched)
    user = _user(t, untouched)
    assert user is not None
    assert user.account_enabled
    assert user.blocked_at is None

    _set(t, externalUserLifecycleAction="blockSignIn")
    blocked = _guest(t, "blocked@fabrikam.example")
    with as_system(t) as ctx:
        guests.on_last_assignment_ended(ctx, blocked)
    user = _user(t, blocked)
    assert user is not None
    assert not user.account_enabled
    assert user.delete_after is None
    assert _activities(t, blocked)[-1] == "Block external user"

    # a guest that existed before (not governed) stays, whatever the setting
    _set(
        t,
        externalUserLifecycleAction="blockSignInAndDelete",
        durationUntilExternalUserDeletedAfterBlocked="PT0S",
    )
    old = t.post(
        "ursula",
        "/v1.0/users",
        {"userPrincipalName": "old@fabrikam.example", "displayName": "Old", "userType": "Guest"},
    ).json()["id"]
    with as_system(t) as ctx:
        guests.on_last_assignment_ended(ctx, old)
        guests.on_last_assignment_ended(ctx, t.ids["sofia"])  # a member: nothing either
        guests.on_last_assignment_ended(ctx, "no-such-user")

    # zero days: deleted at once, by the job queued for it
    now_gone = _guest(t, "now@fabrikam.example")
    with as_system(t) as ctx:
        guests.on_last_assignment_ended(ctx, now_gone)
    with t.db.read() as conn:
        queued = (
            conn.execute(select(Job.payload).where(Job.kind == "external.delete_guest"))
            .scalars()
            .all()
        )
    assert queued == [{"userId": now_gone}]
    _run_worker(t, settings, clock)
    assert _user(t, now_gone) is None
    for kept in (untouched, blocked, old, t.ids["sofia"]):
        assert _user(t, kept) is not None
    clock.advance(days=4000)
    _run_worker(t, settings, clock)
    assert _user(t, blocked) is not None  # blocked without a date is never deleted


def test_the_sweep_works_in_chunks(
    tenant: Tenant, settings: Settings, clock: SteppingClock
) -> None:
    t = tenant
    count = external_jobs.CHUNK + 1
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with as_system(t) as ctx:
        ctx.session.execute(
            insert(User),
            [
                {
                    "id": uid,
                    "user_principal_name": f"g{i}_fabrikam.example#EXT#@contoso.example",
                    "upn_key": f"g{i}_fabrikam.example#ext#@contoso.example",
                    "display_name": f"Guest {i}",
                    "mail": f"g{i}@fabrikam.example",
                    "user_type": "Guest",
                    "account_enabled": False,
                    "created_at": ctx.now,
                    "subject_lifecycle": "governed",
                    "blocked_at": ctx.now,
                    "delete_after": ctx.now + timedelta(days=i % 3),
                }
                for i, uid in enumerate(ids)
            ],
        )
    clock.advance(days=3)
    _run_worker(t, settings, clock)
    with t.db.read() as conn:
        left = conn.execute(select(func.count()).select_from(User).where(User.id.in_(ids)))
        assert left.scalar() == 0
        deleted = conn.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.activity == "Delete user", AuditEvent.target_id.in_(ids))
        ).scalar()
    assert deleted == count


def test_mark_governed(tenant: Tenant) -> None:
    t = tenant
    catalog = t.create_catalog("mamta", "Partners")
    other = t.create_catalog("mark", "Finance partners")
    package = t.create_package("mamta", catalog, "Partner access").json()["id"]
    assert t.assign_role("mamta", "joe", CATALOG_READER.id, catalog).status_code == 201
    gail = t.post(
        "ursula",
        "/v1.0/users",
        {"userPrincipalName": "gail@fabrikam.example", "displayName": "Gail", "userType": "Guest"},
    ).json()["id"]
    with as_user(t, "mamta") as ctx, pytest.raises(Invalid, match="requested access"):
        guests.mark_governed(ctx, gail, catalog_id=catalog)
    with as_system(t) as ctx:
        ctx.session.add(
            AssignmentRequest(
                request_type="userAdd",
                state="delivered",
                status="Delivered",
                access_package_id=package,
                catalog_id=catalog,
                target_id=gail,
                requestor_id=gail,
                created_at=ctx.now,
            )
        )
    for alias, error in (("nobody", NotFound), ("mark", NotFound), ("joe", Forbidden)):
        with as_user(t, alias) as ctx, pytest.raises(error):
            guests.mark_governed(ctx, gail, catalog_id=catalog)
    with as_user(t, "mark") as ctx, pytest.raises(Invalid):
        guests.mark_governed(ctx, gail, catalog_id=other)
    with as_user(t, "mamta") as ctx:
        with pytest.raises(Invalid, match="guest"):
            guests.mark_governed(ctx, t.ids["sofia"], catalog_id=catalog)
        assert guests.mark_governed(ctx, gail, catalog_id=catalog).subject_lifecycle == "governed"
    assert _activities(t, gail)[-1] == "Mark external user as governed"


def test_racing_requests_from_a_new_domain_propose_one_organization(tenant: Tenant) -> None:
    t = tenant
    barrier = threading.Barrier(4)
    found: list[str] = []
    errors: list[BaseException] = []

    def propose(i: int) -> None:
        try:
            barrier.wait()
            with as_system(t) as ctx:
                found.append(orgs.propose_organization(ctx, f"user{i}@racing.example").id)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=propose, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(found)) == 1
    with t.db.read() as conn:
        count = conn.execute(
            select(func.count())
            .select_from(ConnectedOrganizationDomain)
            .where(ConnectedOrganizationDomain.domain == "racing.example")
        ).scalar()
    assert count == 1
