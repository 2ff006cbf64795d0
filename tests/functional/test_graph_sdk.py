"""The real Microsoft Graph SDK for Python (``msgraph-sdk`` from PyPI) against a real remit server.

uvicorn serves remit on a free loopback port over the test database; each persona gets a
``GraphServiceClient`` with a static bearer token from remit's own ``TokenService``
(graph-api.md §B.1) and drives the delegation scenario with the SDK's typed request builders
and models, the way an administrator's script would. The server pages at two items so that the
SDK's absolute ``@odata.nextLink`` handling is exercised too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.identity_governance.entitlement_management.access_packages.item.access_package_item_request_builder import (  # noqa: E501
    AccessPackageItemRequestBuilder,
)
from msgraph.generated.identity_governance.entitlement_management.catalogs.item.resources.resources_request_builder import (  # noqa: E501
    ResourcesRequestBuilder,
)
from msgraph.generated.models.access_package import AccessPackage
from msgraph.generated.models.access_package_catalog import AccessPackageCatalog
from msgraph.generated.models.access_package_catalog_state import AccessPackageCatalogState
from msgraph.generated.models.access_package_catalog_type import AccessPackageCatalogType
from msgraph.generated.models.access_package_request_state import AccessPackageRequestState
from msgraph.generated.models.access_package_request_type import AccessPackageRequestType
from msgraph.generated.models.access_package_resource import AccessPackageResource
from msgraph.generated.models.access_package_resource_request import (
    AccessPackageResourceRequest,
)
from msgraph.generated.models.access_package_resource_role import AccessPackageResourceRole
from msgraph.generated.models.access_package_resource_role_scope import (
    AccessPackageResourceRoleScope,
)
from msgraph.generated.models.access_package_resource_scope import AccessPackageResourceScope
from msgraph.generated.models.group import Group
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment
from msgraph.generated.models.user import User
from msgraph.generated.role_management.entitlement_management.role_assignments.role_assignments_request_builder import (  # noqa: E501
    RoleAssignmentsRequestBuilder,
)

from remit.authz.roles import CATALOG_CREATOR, CATALOG_OWNER, PACKAGE_MANAGER
from remit.db import Database
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import Tenant
from tests.sdk_support import Remit, serving

HOST = "127.0.0.1"
PAGE_SIZE = 2


@pytest.fixture
def remit(
    db: Database, settings: Settings, clock: SteppingClock, app_client: TestClient
) -> Iterator[Remit]:
    # The directory without "Department managers": step 1 creates it through the SDK.
    tenant = Tenant.build(db, app_client, clock, delegated=False)
    with serving(db, settings, clock, tenant, page_size=PAGE_SIZE) as server:
        yield server


def _expand(builder: type, *names: str) -> RequestConfiguration[Any]:
    """A request configuration carrying ``$expand`` for one of the SDK's GET builders."""
    return RequestConfiguration(query_parameters=builder(expand=list(names)))


def test_delegation_scenario_through_the_graph_sdk(remit: Remit) -> None:
    t = remit.t
    hana, mamta, mark, lena = (remit.graph(a) for a in ("hana", "mamta", "mark", "lena"))

    async def scenario() -> None:
        # 1. Hana creates the security group "Department managers" (members bound by URL).
        binds = [f"{remit.base_url}/users/{t.ids[a]}" for a in ("mamta", "mark", "joe")]
        group = await hana.groups.post(
            Group(
                display_name="Department managers",
                mail_enabled=False,
                security_enabled=True,
                mail_nickname="deptmanagers",
                group_types=[],
                additional_data={"members@odata.bind": binds},
            )
        )
        assert group is not None
        assert group.id
        assert group.display_name == "Department managers"
        members = await hana.groups.by_group_id(group.id).members.get()
        assert members is not None
        assert members.value is not None
        assert all(isinstance(m, User) for m in members.value)  # @odata.type drives the class

        # 2. ... and makes the group Catalog creator, tenant-wide.
        rm = hana.role_management.entitlement_management
        creator = await rm.role_assignments.post(
            UnifiedRoleAssignment(
                principal_id=group.id, role_definition_id=CATALOG_CREATOR.id, app_scope_id="/"
            )
        )
        assert creator is not None
        assert creator.id
        assert creator.app_scope_id == "/"

        # 3. Mamta (a member) creates her catalog and becomes its owner; Mark creates his.
        marketing = await mamta.identity_governance.entitlement_management.catalogs.post(
            AccessPackageCatalog(
                display_name="Marketing",
                description="Marketing resources",
                state=AccessPackageCatalogState.Published,
                is_externally_visible=False,
            )
        )
        assert marketing is not None
        assert marketing.id
        assert marketing.catalog_type == AccessPackageCatalogType.UserManaged
        assert marketing.state == AccessPackageCatalogState.Published
        assert marketing.created_date_time is not None
        finance = await mark.identity_governance.entitlement_management.catalogs.post(
            AccessPackageCatalog(display_name="Finance", description="Finance resources")
        )
        assert finance is not None
        assert finance.id

        # 4. Each head lists only the catalog they own.
        mine = await mamta.identity_governance.entitlement_management.catalogs.get()
        assert mine is not None
        assert [c.id for c in mine.value or []] == [marketing.id]
        assert mine.odata_next_link is None

        # 5. She adds the Marketing group she owns; it arrives with its Member/Owner roles.
        mamta_em = mamta.identity_governance.entitlement_management
        added = await mamta_em.resource_requests.post(
            AccessPackageResourceRequest(
                request_type=AccessPackageRequestType.AdminAdd,
                resource=AccessPackageResource(
                    origin_id=t.ids["marketing"], origin_system="AadGroup"
                ),
                catalog=AccessPackageCatalog(id=marketing.id),
            )
        )
        assert added is not None
        assert added.state == AccessPackageRequestState.Delivered
        resources = await mamta_em.catalogs.by_access_package_catalog_id(
            marketing.id
        ).resources.get(
            _expand(
                ResourcesRequestBuilder.ResourcesRequestBuilderGetQueryParameters, "roles", "scopes"
            )
        )
        assert resources is not None
        assert resources.value is not None
        [resource] = resources.value
        assert resource.origin_id == t.ids["marketing"]
        assert resource.origin_system == "AadGroup"
        roles = {r.display_name: r for r in resource.roles or []}
        assert set(roles) == {"Member", "Owner"}
        assert roles["Member"].origin_id == f"Member_{t.ids['marketing']}"
        [root] = resource.scopes or []
        assert root.is_root_scope is True

        # 6. She names Omar co-owner and Lena AccessPackages manager of her catalog.
        scope = f"/AccessPackageCatalog/{marketing.id}"
        for alias, role in (("omar", CATALOG_OWNER), ("lena", PACKAGE_MANAGER)):
            granted = await mamta.role_management.entitlement_management.role_assignments.post(
                UnifiedRoleAssignment(
                    principal_id=t.ids[alias], role_definition_id=role.id, app_scope_id=scope
                )
            )
            assert granted is not None
            assert granted.app_scope_id == scope
        listed = await mamta.role_management.entitlement_management.role_assignments.get(
            RequestConfiguration(
                query_parameters=RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(
                    filter=f"appScopeId eq '{scope}'", expand=["principal"]
                )
            )
        )
        assert listed is not None
        principals = []
        while True:  # the server pages at two: follow the absolute nextLink verbatim
            principals += [a.principal for a in listed.value or []]
            if not listed.odata_next_link:
                break
            listed = await mamta.role_management.entitlement_management.role_assignments.with_url(
                listed.odata_next_link
            ).get()
            assert listed is not None
        assert all(isinstance(p, User) for p in principals)
        assert sorted(p.user_principal_name for p in principals) == [
            "lena@contoso.example", "mamta@contoso.example", "omar@contoso.example",
        ]  # fmt: skip

        # 7. Lena builds an access package from the catalog's Member role.
        lena_em = lena.identity_governance.entitlement_management
        package = await lena_em.access_packages.post(
            AccessPackage(
                display_name="Campaign 2027",
                description="Everything the 2027 campaign team needs",
                is_hidden=False,
                catalog=AccessPackageCatalog(id=marketing.id),
            )
        )
        assert package is not None
        assert package.id
        member = roles["Member"]
        role_scope = await lena_em.access_packages.by_access_package_id(
            package.id
        ).resource_role_scopes.post(
            AccessPackageResourceRoleScope(
                role=AccessPackageResourceRole(
                    id=member.id,
                    origin_id=member.origin_id,
                    origin_system="AadGroup",
                    resource=AccessPackageResource(id=resource.id),
                ),
                scope=AccessPackageResourceScope(
                    origin_id=t.ids["marketing"], origin_system="AadGroup", is_root_scope=True
                ),
            )
        )
        assert role_scope is not None
        assert role_scope.created_date_time is not None

        # 8. Read back with $expand, nested $expand included.
        back = await lena_em.access_packages.by_access_package_id(package.id).get(
            _expand(
                AccessPackageItemRequestBuilder.AccessPackageItemRequestBuilderGetQueryParameters,
                "catalog",
                "resourceRoleScopes($expand=role,scope)",
            )
        )
        assert back is not None
        assert back.catalog is not None
        assert back.catalog.display_name == "Marketing"
        [rrs] = back.resource_role_scopes or []
        assert rrs.role is not None
        assert rrs.scope is not None
        assert rrs.role.display_name == "Member"
        assert rrs.scope.is_root_scope is True
        assert rrs.id == role_scope.id == f"{rrs.role.id}_{rrs.scope.id}"

        # 9. Another head's catalog does not exist for Mamta: a typed 404 ODataError.
        with pytest.raises(ODataError) as raised:
            await mamta_em.catalogs.by_access_package_catalog_id(finance.id).get()
        assert raised.value.response_status_code == 404
        assert raised.value.error is not None
        assert raised.value.error.code == "itemNotFound"
        assert raised.value.error.message

    remit.run(scenario)


def test_sdk_errors_arrive_as_typed_odata_errors(remit: Remit) -> None:
    anonymous, nobody = remit.graph(None), remit.graph("nobody")

    async def scenario() -> None:
        with pytest.raises(ODataError) as raised:
            await anonymous.me.get()
        assert raised.value.response_status_code == 401
        assert raised.value.error is not None
        assert raised.value.error.code == "unauthenticated"
        assert "www-authenticate" in {k.lower() for k in raised.value.response_headers or {}}

        with pytest.raises(ODataError) as raised:
            await nobody.identity_governance.entitlement_management.catalogs.post(
                AccessPackageCatalog(display_name="Sales")
            )
        assert raised.value.response_status_code == 403
        assert raised.value.error is not None
        assert raised.value.error.code == "accessDenied"
        assert raised.value.error.inner_error is not None

        me = await nobody.me.get()
        assert me is not None
        assert me.user_principal_name == "nobody@contoso.example"

    remit.run(scenario)


def test_sdk_pages_through_a_collection_by_next_link(remit: Remit) -> None:
    hana = remit.graph("hana")
    for name in ("Alpha", "Beta", "Gamma", "Delta"):
        remit.t.create_catalog("hana", name)

    async def scenario() -> None:
        catalogs = hana.identity_governance.entitlement_management.catalogs
        page = await catalogs.get()
        names: list[str | None] = []
        pages = 0
        while page is not None:
            pages += 1
            assert len(page.value or []) <= PAGE_SIZE
            names += [c.display_name for c in page.value or []]
            page = (
                await catalogs.with_url(page.odata_next_link).get()
                if page.odata_next_link
                else None
            )
        assert sorted(n or "" for n in names) == ["Alpha", "Beta", "Delta", "Gamma", "General"]
        assert pages == 3

    remit.run(scenario)
