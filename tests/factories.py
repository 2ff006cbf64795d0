"""Factories: a small tenant built through the operations, and API helpers per persona."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from remit.api.state import AppState
from remit.authz.actor import Actor, load_actor, system_actor
from remit.authz.roles import CATALOG_CREATOR, DirectoryRole
from remit.context import Ctx
from remit.db import Database
from remit.directory import operations as d
from remit.roles.operations import create_role_assignment

EM = "/v1.0/identityGovernance/entitlementManagement"
RM = "/v1.0/roleManagement/entitlementManagement"
DOMAIN = "contoso.example"

# alias → (display name, department)
PEOPLE = {
    "admin": ("Contoso Administrator", "IT"),
    "hana": ("Hana Ito", "IT"),
    "mamta": ("Mamta Rao", "Marketing"),
    "mark": ("Mark Fischer", "Finance"),
    "joe": ("Joe Okafor", "Legal"),
    "lena": ("Lena Novak", "Marketing"),  # project lead, becomes access package manager
    "omar": ("Omar Haddad", "Marketing"),  # becomes co-owner
    "sofia": ("Sofia Costa", "Marketing"),
    "ines": ("Ines Moreau", "Finance"),
    "kenji": ("Kenji Sato", "IT"),  # Groups Administrator
    "ursula": ("Ursula Admin", "IT"),  # User Administrator (reduced rights)
    "nobody": ("Nora Body", "Sales"),  # a plain member user with no roles
}


def upn(alias: str) -> str:
    return f"{alias}@{DOMAIN}"


@dataclass
class Tenant:
    db: Database
    client: TestClient
    clock: Callable[[], datetime]
    ids: dict[str, str] = field(default_factory=dict)
    _tokens: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        db: Database,
        client: TestClient,
        clock: Callable[[], datetime],
        *,
        delegated: bool = True,
    ) -> Tenant:
        """The directory; with ``delegated``, also "Department managers" as catalog creators."""
        t = cls(db, client, clock)
        now = clock()
        with db.write() as s:
            root = Ctx(s, system_actor("test"), now)
            for alias, (name, dept) in PEOPLE.items():
                t.ids[alias] = d.create_user(
                    root, user_principal_name=upn(alias), display_name=name, department=dept
                ).id
            for alias, role in (
                ("admin", DirectoryRole.GLOBAL_ADMINISTRATOR),
                ("hana", DirectoryRole.IDENTITY_GOVERNANCE_ADMINISTRATOR),
                ("kenji", DirectoryRole.GROUPS_ADMINISTRATOR),
                ("ursula", DirectoryRole.USER_ADMINISTRATOR),
            ):
                d.assign_directory_role(root, principal_id=t.ids[alias], role=role)
            groups = {
                "marketing": ("Marketing", "mamta", ["mamta", "lena", "omar", "sofia"], "security"),
                "campaigns": ("Marketing campaigns", "mamta", ["lena"], "microsoft365"),
                "finance": ("Finance", "mark", ["mark", "ines"], "security"),
                "legal": ("Legal", "joe", ["joe"], "security"),
            }
            for key, (name, owner, members, kind) in groups.items():
                t.ids[key] = d.create_group(
                    root,
                    display_name=name,
                    kind=kind,
                    owner_ids=[t.ids[owner]],
                    member_ids=[t.ids[m] for m in members],
                ).id
            t.ids["tier0"] = d.create_group(
                root,
                display_name="Tier-0 admins",
                is_assignable_to_role=True,
                owner_ids=[t.ids["mamta"]],
            ).id
            t.ids["planner"] = d.create_application(
                root,
                display_name="Campaign Planner",
                app_roles=[("Planner", "planner"), ("Viewer", "viewer")],
                owner_ids=[t.ids["mamta"]],
            ).id
            t.ids["brand"] = d.create_application(
                root, display_name="Brand Portal", owner_ids=[t.ids["mamta"]]
            ).id
            t.ids["ledger"] = d.create_application(
                root,
                display_name="Ledger",
                app_roles=[("Bookkeeper", "bookkeeper")],
                owner_ids=[t.ids["mark"]],
            ).id
            t.ids["mksite"] = d.create_site(
                root,
                display_name="Marketing hub",
                web_url=f"https://sites.{DOMAIN}/marketing",
                admin_ids=[t.ids["mamta"]],
            ).id
            t.ids["finsite"] = d.create_site(
                root,
                display_name="Finance hub",
                web_url=f"https://sites.{DOMAIN}/finance",
                admin_ids=[t.ids["mark"]],
            ).id
            if not delegated:
                return t
            t.ids["managers"] = d.create_group(
                root,
                display_name="Department managers",
                owner_ids=[t.ids["hana"]],
                member_ids=[t.ids[m] for m in ("mamta", "mark", "joe")],
            ).id
            hana = Ctx(s, load_actor(s, t.ids["hana"]), now)
            create_role_assignment(
                hana,
                principal_id=t.ids["managers"],
                role_definition_id=CATALOG_CREATOR.id,
                app_scope_id="/",
            )
        return t

    # ------------------------------------------------------------ API helpers

    def token(self, alias: str) -> str:
        """A token for the persona, issued again once the (test) clock has moved on an hour."""
        now = self.clock()
        held = self._tokens.get(alias)
        if held is None or not timedelta(0) <= now - held[1] < timedelta(minutes=30):
            state: AppState = self.client.app.state.remit  # type: ignore[attr-defined]
            held = (state.tokens.issue(self.ids[alias], upn(alias), now=now), now)
            self._tokens[alias] = held
        return held[0]

    def headers(self, alias: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(alias)}"}

    def call(
        self,
        alias: str,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.client.request(
            method, path, json=json, params=params, headers=self.headers(alias)
        )

    def get(self, alias: str, path: str, **params: str) -> httpx.Response:
        return self.call(alias, "GET", path, params=params or None)

    def post(self, alias: str, path: str, json: Any = None) -> httpx.Response:
        return self.call(alias, "POST", path, json=json)

    def actor(self, alias: str) -> Actor:
        with self.db.write() as s:
            return load_actor(s, self.ids[alias])

    # ------------------------------------------------------------ scenario building blocks

    def create_catalog(self, alias: str, name: str) -> str:
        r = self.post(alias, f"{EM}/catalogs", {"displayName": name, "description": name})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def add_resource(
        self, alias: str, catalog_id: str, origin_system: str, origin_id: str
    ) -> httpx.Response:
        return self.post(
            alias,
            f"{EM}/resourceRequests",
            {
                "requestType": "adminAdd",
                "catalog": {"id": catalog_id},
                "resource": {"originId": origin_id, "originSystem": origin_system},
            },
        )

    def assign_role(
        self, alias: str, principal: str, role_id: str, catalog_id: str | None
    ) -> httpx.Response:
        scope = f"/AccessPackageCatalog/{catalog_id}" if catalog_id else "/"
        return self.post(
            alias,
            f"{RM}/roleAssignments",
            {
                "principalId": self.ids.get(principal, principal),
                "roleDefinitionId": role_id,
                "appScopeId": scope,
            },
        )

    def create_package(self, alias: str, catalog_id: str, name: str) -> httpx.Response:
        return self.post(
            alias, f"{EM}/accessPackages", {"displayName": name, "catalog": {"id": catalog_id}}
        )
