"""R2: nobody can grant more than they hold, through HTTP on the current engine.

The paths that confer rights today: role assignment (EM and directory roles, and membership of
role-assignable groups), resource onboarding (spec §2.2), and adding resource roles to an access
package. Every refusal is checked twice: its status, and that no row of any table changed.
Where a line allows something, it is a control that shows the refusal beside it is specific.

The world is the matrix's (``tests/matrix_support.py``): on the ``own`` catalog omar is owner,
lena access package manager, sofia assignment manager, ines reader, nina owner through nested
groups; mark owns the ``other`` catalog. Directory ownership comes from the factories: mamta owns
Marketing, Marketing campaigns (M365), Tier-0 admins (role-assignable), Campaign Planner and the
Marketing hub; mark owns Finance, Ledger and the Finance hub; the personas own "Matrix group".
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from remit.authz.actor import system_actor
from remit.authz.roles import (
    CATALOG_CREATOR,
    CATALOG_OWNER,
    CATALOG_READER,
    PACKAGE_MANAGER,
    DirectoryRole,
)
from remit.catalogs.operations import GENERAL_CATALOG_ID as GENERAL
from remit.context import Ctx
from remit.directory import operations as d
from tests.factories import EM, RM, Tenant, upn
from tests.matrix_support import CATALOG_ROLES, World, build_world, fingerprint, grant

DIRECTORY_ROLES = "/v1.0/roleManagement/directory/roleAssignments"
SYSTEMS = {"group": "AadGroup", "app": "AadApplication", "site": "SharePointOnline"}


@pytest.fixture
def w(tenant: Tenant) -> World:
    """The matrix world, plus a few more catalog owners who hold directory roles."""
    world = build_world(tenant)
    with tenant.db.write() as s:
        root = Ctx(s, system_actor("amplification"), tenant.clock())
        tenant.ids["priya"] = d.create_user(
            root, user_principal_name=upn("priya"), display_name="Priya Privileged"
        ).id
        d.assign_directory_role(
            root,
            principal_id=tenant.ids["priya"],
            role=DirectoryRole.PRIVILEGED_ROLE_ADMINISTRATOR,
        )
        # Directory admins who also own the own catalog; mark manages packages in both.
        for alias in ("priya", "ursula", "kenji"):
            grant(root, tenant.ids[alias], CATALOG_OWNER.id, world["own"])
        grant(root, tenant.ids["mark"], PACKAGE_MANAGER.id, world["own"])
    return world


class Attempts:
    """Calls through the API and collects every wrong outcome, to report them all at once.

    A refusal must have its status, a Graph error body, and leave every table as it was; an
    allowed call (a control) must succeed and change something.
    """

    def __init__(self, w: World) -> None:
        self.w = w
        self.problems: list[str] = []
        self.count = 0
        self._digest: str | None = None

    def _call(self, alias: str, method: str, path: str, body: Any) -> tuple[httpx.Response, bool]:
        before = self._digest or fingerprint(self.w.t.db)
        response = self.w.t.call(alias, method, path, json=body)
        self._digest = fingerprint(self.w.t.db)
        self.count += 1
        return response, self._digest != before

    def refused(
        self,
        why: str,
        alias: str,
        status: int,
        method: str,
        path: str,
        body: Any = None,
        code: str | None = None,
    ) -> None:
        response, changed = self._call(alias, method, path, body)
        error = (response.json().get("error") if response.content else None) or {}
        if response.status_code != status or not error or code not in (None, error["code"]):
            self.problems.append(
                f"{why} [{alias}]: expected {status} {code or ''}, got {response.status_code} "
                f"{response.text[:200]}"
            )
        elif changed:
            self.problems.append(f"{why} [{alias}]: refused with {status}, but changed data")

    def allowed(
        self, why: str, alias: str, method: str, path: str, body: Any = None, status: int = 201
    ) -> None:
        response, changed = self._call(alias, method, path, body)
        if response.status_code != status or not changed:
            self.problems.append(
                f"{why} [{alias}] (control): expected {status} and a change, got "
                f"{response.status_code}, changed={changed} {response.text[:200]}"
            )

    def verify(self) -> None:
        assert self.count, "no attempt was made"
        assert not self.problems, f"{len(self.problems)} of {self.count} attempts wrong:\n" + (
            "\n".join(self.problems)
        )


@pytest.fixture
def attempts(w: World) -> Attempts:
    return Attempts(w)


def assignment(principal: str, role_id: str, scope: str) -> dict[str, str]:
    return {"principalId": principal, "roleDefinitionId": role_id, "appScopeId": scope}


def on(catalog_id: str) -> str:
    return f"/AccessPackageCatalog/{catalog_id}"


def ref(user_id: str) -> dict[str, str]:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/users/{user_id}"}


ASSIGN = f"{RM}/roleAssignments"

# ---------------------------------------------------------------- EM role assignment


def test_only_administrators_make_catalog_creators(w: World, attempts: Attempts) -> None:
    """Not a catalog owner (directly or through groups), a manager, a reader, a User
    Administrator, nor a catalog creator itself; not for themselves, a user or a group."""
    for alias in ("omar", "nina", "lena", "sofia", "ines", "joe", "ursula", "nobody"):
        for principal in (alias, "sofia", "marketing"):
            body = assignment(w[principal], CATALOG_CREATOR.id, "/")
            attempts.refused(f"creator for {principal}", alias, 403, "POST", ASSIGN, body)
    attempts.allowed(
        "creator for sofia", "hana", "POST", ASSIGN, assignment(w["sofia"], CATALOG_CREATOR.id, "/")
    )
    attempts.verify()


def test_catalog_owner_cannot_assign_a_role_outside_the_catalog(
    w: World, attempts: Attempts
) -> None:
    """Another owner's catalog, an empty one, the General catalog, one that does not exist:
    for the owner none of them exists, so 404, whichever role and whoever receives it."""
    for alias in ("omar", "nina", "joe"):
        for catalog in (w["other"], w["other_empty"], GENERAL, "no-such-catalog"):
            for role, role_id in CATALOG_ROLES.items():
                body = assignment(w[alias], role_id, on(catalog))
                attempts.refused(f"{role} on {catalog}", alias, 404, "POST", ASSIGN, body)
    attempts.allowed(
        "apm on own",
        "omar",
        "POST",
        ASSIGN,
        assignment(w["joe"], PACKAGE_MANAGER.id, on(w["own"])),
    )
    attempts.verify()


def test_managers_and_readers_cannot_assign_or_remove_any_catalog_role(
    w: World, attempts: Attempts
) -> None:
    """An APM, an APAM or a reader of the catalog grants nothing on it, not even to itself."""
    for alias in ("lena", "sofia", "ines"):
        for principal in (alias, "mark"):
            for role, role_id in CATALOG_ROLES.items():
                body = assignment(w[principal], role_id, on(w["own"]))
                attempts.refused(f"{role} for {principal}", alias, 403, "POST", ASSIGN, body)
        for key in ("own:ra:owner", "own:ra:apm", "own:ra:apam", "own:ra:reader"):
            attempts.refused(f"delete {key}", alias, 403, "DELETE", f"{ASSIGN}/{w[key]}")
    attempts.verify()


def test_only_role_administrators_assign_directory_roles(w: World, attempts: Attempts) -> None:
    """Catalog owners, managers, IGA, User and Groups Administrators cannot, not even through
    the entitlement-management endpoint; a Privileged Role Administrator cannot mint a Global
    Administrator or remove one."""
    roles = (
        DirectoryRole.GLOBAL_ADMINISTRATOR,
        DirectoryRole.PRIVILEGED_ROLE_ADMINISTRATOR,
        DirectoryRole.GROUPS_ADMINISTRATOR,
        DirectoryRole.IDENTITY_GOVERNANCE_ADMINISTRATOR,
    )
    for alias in ("omar", "nina", "lena", "hana", "ursula", "kenji", "nobody"):
        for role in roles:
            body = {
                "principalId": w[alias],
                "roleDefinitionId": role.value,
                "directoryScopeId": "/",
            }
            attempts.refused(
                f"directory role {role.name}", alias, 403, "POST", DIRECTORY_ROLES, body
            )
    for alias in ("omar", "hana", "admin"):
        for scope in ("/", on(w["own"])):
            body = assignment(w[alias], DirectoryRole.GLOBAL_ADMINISTRATOR.value, scope)
            attempts.refused(f"GA as an EM role on {scope}", alias, 400, "POST", ASSIGN, body)
    ga = {
        "principalId": w["priya"],
        "roleDefinitionId": DirectoryRole.GLOBAL_ADMINISTRATOR.value,
        "directoryScopeId": "/",
    }
    attempts.refused("PRA makes a GA", "priya", 403, "POST", DIRECTORY_ROLES, ga)
    listed = w.t.get("admin", DIRECTORY_ROLES).json()["value"]
    admin_ga = next(a["id"] for a in listed if a["principalId"] == w["admin"])
    attempts.refused("PRA removes a GA", "priya", 403, "DELETE", f"{DIRECTORY_ROLES}/{admin_ga}")
    # The control: the same caller gives a lesser role, so the refusals above are specific.
    lesser = {**ga, "roleDefinitionId": DirectoryRole.GROUPS_ADMINISTRATOR.value}
    attempts.allowed("PRA makes a Groups Administrator", "priya", "POST", DIRECTORY_ROLES, lesser)
    attempts.verify()


def test_only_role_administrators_change_a_role_assignable_group(
    w: World, attempts: Attempts
) -> None:
    """Its membership confers directory roles: not its owner (mamta), nor User, Groups or
    Identity Governance Administrators, nor catalog owners."""
    group = f"/v1.0/groups/{w['tier0']}"
    for alias in ("mamta", "ursula", "kenji", "hana", "omar", "nobody"):
        attempts.refused("add member", alias, 403, "POST", f"{group}/members/$ref", ref(w[alias]))
        attempts.refused("add owner", alias, 403, "POST", f"{group}/owners/$ref", ref(w[alias]))
        attempts.refused("remove owner", alias, 403, "DELETE", f"{group}/owners/{w['mamta']}/$ref")
        body = {"displayName": f"Tier-0 by {alias}", "isAssignableToRole": True}
        attempts.refused("create role-assignable", alias, 403, "POST", "/v1.0/groups", body)
    attempts.allowed(
        "PRA adds a member", "priya", "POST", f"{group}/members/$ref", ref(w["mark"]), status=204
    )
    attempts.verify()


def test_no_tenant_role_on_a_catalog_and_no_catalog_role_on_the_tenant(
    w: World, attempts: Attempts
) -> None:
    """Whoever asks (an administrator too), and by either name of the scope property."""
    own = w["own"]
    cases = [
        (CATALOG_CREATOR.id, on(own)),
        *((role_id, "/") for role_id in CATALOG_ROLES.values()),
        (CATALOG_OWNER.id, "/AccessPackageCatalog/"),
        (CATALOG_OWNER.id, f"/AccessPackageCatalog/{own}/extra"),
        (CATALOG_OWNER.id, f"/catalogs/{own}"),
        (CATALOG_OWNER.id, own),
        (CATALOG_OWNER.id, ""),
    ]
    for alias in ("admin", "hana", "omar"):
        for role_id, scope in cases:
            why = f"{role_id} on {scope!r}"
            body = assignment(w["sofia"], role_id, scope)
            attempts.refused(why, alias, 400, "POST", ASSIGN, body)
            body = {
                "principalId": w["sofia"],
                "roleDefinitionId": role_id,
                "directoryScopeId": scope,
            }
            attempts.refused(f"{why} as directoryScopeId", alias, 400, "POST", ASSIGN, body)
    attempts.verify()


# ---------------------------------------------------------------- resource onboarding (§2.2)

# (caller, catalog, kind, directory object, expected status); 201 lines are the controls.
RESOURCE_RULES: dict[str, list[tuple[str, str, str, str, int]]] = {
    "a catalog owner adds only what they own": [
        ("omar", "own", "group", "finance", 403),
        ("omar", "own", "group", "campaigns", 403),
        ("omar", "own", "app", "ledger", 403),
        ("omar", "own", "site", "finsite", 403),
        ("nina", "own", "group", "finance", 403),
        ("nina", "own", "app", "planner", 403),
        ("mamta", "own", "group", "finance", 403),
        ("mamta", "own", "app", "ledger", 403),
        ("mamta", "own", "site", "finsite", 403),
        ("mamta", "own", "group", "campaigns", 201),
        ("omar", "own", "group", "own:group", 201),
    ],
    "and only into a catalog they own": [
        ("omar", "other", "group", "own:group", 404),
        ("mamta", "other", "group", "marketing", 404),
        ("joe", "own", "group", "legal", 404),
        ("joe", "other_empty", "group", "legal", 404),
    ],
    "role-assignable groups need GA, or PRA and owner": [
        ("mamta", "own", "group", "tier0", 403),  # she owns the group and the catalog
        ("hana", "own", "group", "tier0", 403),
        ("kenji", "own", "group", "tier0", 403),
        ("priya", "other", "group", "tier0", 404),  # PRA, but not that catalog's owner
        ("priya", "own", "group", "finance", 403),  # PRA covers role-assignable groups only
        ("priya", "own", "group", "tier0", 201),
        ("admin", "other", "group", "tier0", 201),
    ],
    "a User Administrator who owns the catalog: groups and apps, not role-assignable": [
        ("ursula", "own", "group", "tier0", 403),
        ("ursula", "own", "site", "finsite", 403),
        ("ursula", "other", "group", "finance", 404),
        ("ursula", "own", "group", "finance", 201),
        ("ursula", "own", "app", "ledger", 201),
    ],
    "IGA alone adds applications, not groups or sites": [
        ("hana", "other", "group", "campaigns", 403),
        ("hana", "other", "group", "legal", 403),
        ("hana", "other", "site", "mksite", 403),
        ("hana", "other", "app", "planner", 201),
        ("hana", "own", "group", "own:group", 201),  # she owns this one
    ],
    "a Groups Administrator who owns the catalog: groups only": [
        ("kenji", "own", "app", "ledger", 403),
        ("kenji", "own", "site", "finsite", 403),
        ("kenji", "other", "group", "finance", 404),
        ("kenji", "own", "group", "finance", 201),
    ],
    "managers, assignment managers and readers add nothing, even what they own": [
        ("lena", "own", "group", "own:group", 403),
        ("sofia", "own", "app", "own:app", 403),
        ("ines", "own", "site", "own:site", 403),
    ],
}


@pytest.mark.parametrize("rule", list(RESOURCE_RULES))
def test_resource_add_needs_the_catalog_and_the_object(
    w: World, attempts: Attempts, rule: str
) -> None:
    for alias, catalog, kind, obj, status in RESOURCE_RULES[rule]:
        body = {
            "requestType": "adminAdd",
            "catalog": {"id": w[catalog]},
            "resource": {"originSystem": SYSTEMS[kind], "originId": w[obj]},
        }
        why = f"{kind} {obj} into {catalog}"
        if status == 201:
            attempts.allowed(why, alias, "POST", f"{EM}/resourceRequests", body)
            continue
        # A 403 says which half of §2.2 is missing: the catalog role, or the object's right.
        code = "accessDenied" if alias in ("lena", "sofia", "ines") else "CallerNotResourceOwner"
        attempts.refused(
            why,
            alias,
            status,
            "POST",
            f"{EM}/resourceRequests",
            body,
            code if status == 403 else None,
        )
    attempts.verify()


def test_removing_a_resource_needs_the_same_rights(w: World, attempts: Attempts) -> None:
    """An administrator put Finance and Tier-0 into the catalog: owners who may not add them may
    not take them out either, nor may a manager; the controls are owners who may."""
    removers = {
        "finance": (("omar", "nina", "lena", "mamta", "hana"), "kenji"),
        "tier0": (("omar", "nina", "lena", "mamta", "hana", "ursula", "kenji"), "priya"),
    }
    for group, (refused, allowed) in removers.items():
        resource = {"originSystem": "AadGroup", "originId": w[group]}
        add = {"requestType": "adminAdd", "catalog": {"id": w["own"]}, "resource": resource}
        attempts.allowed(f"add {group}", "admin", "POST", f"{EM}/resourceRequests", add)
        remove = {**add, "requestType": "adminRemove"}
        for alias in refused:
            why = f"remove {group}"
            attempts.refused(why, alias, 403, "POST", f"{EM}/resourceRequests", remove)
        attempts.allowed(f"remove {group}", allowed, "POST", f"{EM}/resourceRequests", remove)
    attempts.verify()


# ---------------------------------------------------------------- package resource roles


def test_a_package_takes_roles_only_from_its_own_catalog(w: World, attempts: Attempts) -> None:
    """Whoever asks (its APM, its owners, someone who manages both catalogs, administrators),
    a resource role from outside the package's catalog is refused with 400 and no change."""
    own_role = {"id": w["own:role:owner"]}
    member_of_finance = {"originId": f"Member_{w['finance']}", "originSystem": "AadGroup"}
    bodies = {
        "role of the other catalog, by id": {"role": {"id": w["other:role:owner"]}},
        "role of the other catalog, by originId": {"role": member_of_finance},
        "role of the other catalog, by originId and resource": {
            "role": {**member_of_finance, "resource": {"id": w["other:resource"]}}
        },
        "own role, scope of the other catalog": {
            "role": own_role,
            "scope": {"id": w["other:scope"]},
        },
        "own role, scope of another resource": {
            "role": own_role,
            "scope": {"originId": w["removable"], "originSystem": "AadGroup"},
        },
        "a group the catalog does not hold": {
            "role": {"originId": f"Member_{w['legal']}", "originSystem": "AadGroup"}
        },
    }
    path = f"{EM}/accessPackages/{w['own:pkg']}/resourceRoleScopes"
    for alias in ("lena", "omar", "nina", "mark", "admin", "hana"):
        for why, body in bodies.items():
            attempts.refused(why, alias, 400, "POST", path, body)
    for alias, status in (("sofia", 403), ("ines", 403), ("joe", 404), ("nobody", 404)):
        attempts.refused("a role of the catalog", alias, status, "POST", path, {"role": own_role})
    # The control: the same call with a role of the package's own catalog.
    attempts.allowed("a role of the catalog", "lena", "POST", path, {"role": own_role})
    attempts.verify()


def test_user_administrator_cannot_disable_an_administrator(tenant: Tenant) -> None:
    """Found by the matrix work: a User Administrator must not change privileged users."""
    for target in ("admin", "hana", "kenji"):
        r = tenant.call(
            "ursula", "PATCH", f"/v1.0/users/{tenant.ids[target]}", {"accountEnabled": False}
        )
        assert r.status_code == 403, r.text
        assert tenant.get("hana", f"/v1.0/users/{tenant.ids[target]}").json()["accountEnabled"]
    # Ordinary users remain hers to manage.
    r = tenant.call(
        "ursula",
        "PATCH",
        f"/v1.0/users/{tenant.ids['sofia']}",
        {"jobTitle": "Senior content marketer"},
    )
    assert r.status_code == 204


def test_no_group_can_be_nested_in_a_role_assignable_group(tenant: Tenant) -> None:
    """Directory roles held by a role-assignable group never flow to a nested group."""
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/groups/{tenant.ids['marketing']}"}
    r = tenant.post("admin", f"/v1.0/groups/{tenant.ids['tier0']}/members/$ref", ref)
    assert r.status_code == 400, r.text
    members = tenant.get("admin", f"/v1.0/groups/{tenant.ids['tier0']}/members").json()["value"]
    assert members == []


# ---------------------------------------------------------------- groups that hold roles (#11)

EXPLAIN = "/remit/explain"


@pytest.fixture
def held(w: World) -> World:
    """Groups whose members hold roles through them, beside the world's own:

    * ``managers`` (Department managers, owned by hana) holds Catalog creator on the tenant;
      ``assistants`` (owned by nobody) is nested in it, so its members are creators too;
    * ``outer`` holds Catalog owner on the own catalogs and ``inner`` is nested in it;
    * ``auditors`` (owned by omar and mark) holds Catalog reader on the other catalog, mark's;
    * ``mk_readers`` (owned by nobody) holds Catalog reader on the own catalog, which kenji,
      a Groups Administrator, owns (the fixture ``w``).
    """
    t = w.t
    with t.db.write() as s:
        root = Ctx(s, system_actor("amplification"), t.clock())
        w.ids["assistants"] = d.create_group(
            root, display_name="Managers' assistants", owner_ids=[t.ids["nobody"]]
        ).id
        d.add_group_member(root, t.ids["managers"], w.ids["assistants"])
        w.ids["auditors"] = d.create_group(
            root, display_name="Auditors", owner_ids=[t.ids["omar"], t.ids["mark"]]
        ).id
        grant(root, w.ids["auditors"], CATALOG_READER.id, w["other"])
        w.ids["mk_readers"] = d.create_group(
            root, display_name="Marketing readers", owner_ids=[t.ids["nobody"]]
        ).id
        grant(root, w.ids["mk_readers"], CATALOG_READER.id, w["own"])
    return w


def members(w: World, group: str) -> str:
    return f"/v1.0/groups/{w[group]}/members"


def owners(w: World, group: str) -> str:
    return f"/v1.0/groups/{w[group]}/owners"


def test_a_groups_administrator_cannot_join_a_group_that_holds_a_role(
    held: World, attempts: Attempts
) -> None:
    """Kenji (Groups Administrator) and Ursula (User Administrator) manage groups, not roles:
    joining a catalog-creator group, a group nested in it or one that holds a catalog role on a
    catalog they do not own makes them what they may not make anyone; adding a group, adding
    or removing an owner or a member is the same change."""
    w = held
    for alias in ("kenji", "ursula"):
        for group in ("managers", "assistants", "outer", "inner", "auditors"):
            why = f"{alias} joins {group}"
            attempts.refused(why, alias, 403, "POST", f"{members(w, group)}/$ref", ref(w[alias]))
            why = f"{alias} owns {group}"
            attempts.refused(why, alias, 403, "POST", f"{owners(w, group)}/$ref", ref(w[alias]))
        nested = {"@odata.id": f"https://graph.microsoft.com/v1.0/groups/{w['own:group']}"}
        attempts.refused(
            "nest a group of theirs", alias, 403, "POST", f"{members(w, 'managers')}/$ref", nested
        )
        attempts.refused(
            "remove a creator", alias, 403, "DELETE", f"{members(w, 'managers')}/{w['mark']}/$ref"
        )
        attempts.refused(
            "remove its owner", alias, 403, "DELETE", f"{owners(w, 'managers')}/{w['hana']}/$ref"
        )
        attempts.refused(
            "remove the nested group",
            alias,
            403,
            "DELETE",
            f"{members(w, 'managers')}/{w['assistants']}/$ref",
        )
    # Controls: a group that holds no role is theirs to change; a group that holds a role on a
    # catalog kenji owns (and so may assign) is his too.
    attempts.allowed("kenji joins Legal", "kenji", "POST", f"{members(w, 'legal')}/$ref",
                     ref(w["kenji"]), status=204)  # fmt: skip
    attempts.allowed("kenji joins Marketing readers", "kenji", "POST",
                     f"{members(w, 'mk_readers')}/$ref", ref(w["kenji"]), status=204)  # fmt: skip
    attempts.verify()


def test_an_owner_of_a_group_that_holds_a_role_needs_the_right_to_assign_it(
    held: World, attempts: Attempts
) -> None:
    """Owning the group is the right on the group, not on what it confers: nobody owns the
    assistants (catalog creators) and Marketing readers; omar owns the auditors (readers of
    mark's catalog). Mark, who owns both the auditors and their catalog, may; so may hana,
    who owns Department managers and may assign catalog creators."""
    w = held
    for alias, group in (
        ("nobody", "assistants"),
        ("nobody", "mk_readers"),
        ("omar", "auditors"),
    ):
        why = f"{alias} adds a member to {group}"
        attempts.refused(why, alias, 403, "POST", f"{members(w, group)}/$ref", ref(w["sofia"]))
        why = f"{alias} adds an owner to {group}"
        attempts.refused(why, alias, 403, "POST", f"{owners(w, group)}/$ref", ref(w["sofia"]))
    attempts.allowed("mark adds to the auditors", "mark", "POST",
                     f"{members(w, 'auditors')}/$ref", ref(w["sofia"]), status=204)  # fmt: skip
    attempts.allowed("hana adds to her managers", "hana", "POST",
                     f"{members(w, 'managers')}/$ref", ref(w["sofia"]), status=204)  # fmt: skip
    attempts.allowed("hana removes from her managers", "hana", "DELETE",
                     f"{members(w, 'managers')}/{w['sofia']}/$ref", status=204)  # fmt: skip
    attempts.verify()


def test_administrators_who_may_assign_the_roles_change_such_groups(
    held: World, attempts: Attempts
) -> None:
    """The controls: the Global Administrator, for every group; beside them the Privileged Role
    Administrator, who manages neither groups nor catalog roles."""
    w = held
    for group in ("managers", "assistants", "outer", "inner", "auditors", "mk_readers"):
        attempts.allowed(f"GA adds to {group}", "admin", "POST", f"{members(w, group)}/$ref",
                         ref(w["kenji"]), status=204)  # fmt: skip
        attempts.allowed(f"GA adds an owner to {group}", "admin", "POST",
                         f"{owners(w, group)}/$ref", ref(w["kenji"]), status=204)  # fmt: skip
        attempts.refused(f"PRA joins {group}", "priya", 403, "POST",
                         f"{members(w, group)}/$ref", ref(w["priya"]))  # fmt: skip
    attempts.verify()


def test_a_role_assignable_group_that_holds_global_administrator_is_a_global_admins(
    held: World, attempts: Attempts
) -> None:
    """Directory roles: the Privileged Role Administrator may change a role-assignable group,
    unless it holds Global Administrator, which only a Global Administrator may give."""
    w = held
    group = f"/v1.0/groups/{w['tier0']}"
    attempts.allowed("PRA adds to Tier-0", "priya", "POST", f"{group}/members/$ref",
                     ref(w["mark"]), status=204)  # fmt: skip
    body = {
        "principalId": w["tier0"],
        "roleDefinitionId": DirectoryRole.GLOBAL_ADMINISTRATOR.value,
        "directoryScopeId": "/",
    }
    attempts.allowed("GA makes Tier-0 global admins", "admin", "POST", DIRECTORY_ROLES, body)
    attempts.refused("PRA joins Tier-0", "priya", 403, "POST", f"{group}/members/$ref",
                     ref(w["priya"]))  # fmt: skip
    attempts.refused("PRA removes mark from Tier-0", "priya", 403, "DELETE",
                     f"{group}/members/{w['mark']}/$ref")  # fmt: skip
    attempts.allowed("GA adds to Tier-0", "admin", "POST", f"{group}/members/$ref",
                     ref(w["priya"]), status=204)  # fmt: skip
    attempts.verify()


def test_the_refusal_says_which_role_in_words_and_names_no_hidden_catalog(held: World) -> None:
    w = held
    r = w.t.post("kenji", f"{members(w, 'inner')}/$ref", ref(w["kenji"]))
    assert r.status_code == 403, r.text
    message = r.json()["error"]["message"]
    # Outer also holds Catalog owner on the own catalog, which kenji owns (and so may give);
    # the archive is not his to see, so it is not named.
    assert message == (
        "you may not change the members of Inner because Inner holds Catalog owner "
        "(a catalog, through group Outer) and you may not assign it"
    ), message
    # Omar cannot see mark's catalog: the message says a catalog, not which.
    r = w.t.post("omar", f"{owners(w, 'auditors')}/$ref", ref(w["sofia"]))
    assert r.status_code == 403, r.text
    message = r.json()["error"]["message"]
    assert "Catalog reader (a catalog)" in message, message
    assert "Finance" not in message, message


def test_explain_says_why_a_group_may_or_may_not_be_changed(held: World) -> None:
    """``GET /remit/explain`` with a group: the same rule, with its reasons."""
    w, t = held, held.t
    task = {"task": "directory:groups:manage"}
    denied = t.get("kenji", EXPLAIN, **task, group=w["managers"]).json()
    assert denied["allowed"] is False, denied
    assert denied["groupId"] == w["managers"]
    assert denied["reasons"][0] == (
        "kenji@contoso.example may not change the members or owners of Department managers "
        "because Department managers holds Catalog creator (tenant) and kenji@contoso.example "
        "may not assign it"
    ), denied
    # The right on the group itself is still said: his Groups Administrator role.
    assert any("Groups Administrator" in r for r in denied["reasons"]), denied
    nested = t.get("kenji", EXPLAIN, **task, group=w["assistants"]).json()
    assert not nested["allowed"]
    assert "through group Department managers" in nested["reasons"][0], nested
    mine = t.get("hana", EXPLAIN, **task, group=w["managers"]).json()
    assert mine["allowed"] is True, mine
    assert "owner of group Department managers" in mine["reasons"], mine
    assert any("holds Catalog creator (tenant), which" in r for r in mine["reasons"]), mine
    # Asked by an administrator about someone else, as for any task.
    about = t.get("admin", EXPLAIN, **task, group=w["mk_readers"], user=w["kenji"]).json()
    assert about["allowed"] is True, about
    assert any("Catalog reader (catalog Marketing)" in r for r in about["reasons"]), about
    # The group question goes with its task only.
    for bad in ({"task": "catalog:create"}, {**task, "catalog": w["own"]}):
        r = t.get("hana", EXPLAIN, **bad, group=w["managers"])
        assert r.status_code == 400, r.text
    assert t.get("hana", EXPLAIN, **task, group="no-such-group").status_code == 404


# ---------------------------------------------------------------- onboarding such groups (#11)

RESOURCE_REQUESTS = f"{EM}/resourceRequests"


def onboard(w: World, group: str, catalog: str) -> dict[str, Any]:
    return {
        "requestType": "adminAdd",
        "catalog": {"id": w[catalog]},
        "resource": {"originSystem": "AadGroup", "originId": w[group]},
    }


def test_a_group_that_holds_a_role_is_onboarded_only_by_who_may_assign_the_role(
    held: World, attempts: Attempts
) -> None:
    """A group in a catalog has its members changed by the catalog's access packages, so
    onboarding it needs what changing its members needs (decision 0022): the right to assign
    every role it holds, directly or through the groups it is in. Kenji (Groups Administrator)
    and Ursula (User Administrator) own the own catalog and may add any ordinary group to it,
    omar owns the catalog and the auditors (readers of mark's catalog): none may add a group
    that confers what they may not give. The controls are people who may assign the roles."""
    w = held
    for alias in ("kenji", "ursula"):
        for group in ("managers", "assistants", "outer", "inner", "auditors"):
            attempts.refused(f"{alias} onboards {group}", alias, 403, "POST", RESOURCE_REQUESTS,
                             onboard(w, group, "own"), "accessDenied")  # fmt: skip
    attempts.refused("omar onboards his auditors", "omar", 403, "POST", RESOURCE_REQUESTS,
                     onboard(w, "auditors", "own"), "accessDenied")  # fmt: skip
    # Controls: hana (IGA) owns Department managers and may assign catalog creators; the Global
    # Administrator may assign everything; mark owns the auditors and the catalog they read;
    # kenji owns the catalog whose reader Marketing readers hold; Legal holds no role.
    for alias, group, catalog in (
        ("hana", "managers", "own"),
        ("admin", "managers", "other"),
        ("admin", "assistants", "own"),
        ("admin", "inner", "own"),
        ("mark", "auditors", "other"),
        ("kenji", "mk_readers", "own"),
        ("kenji", "legal", "own"),
    ):
        attempts.allowed(f"{alias} onboards {group}", alias, "POST", RESOURCE_REQUESTS,
                         onboard(w, group, catalog))  # fmt: skip
    attempts.verify()


def test_the_onboarding_refusal_says_why_in_words(held: World) -> None:
    w = held
    r = w.t.post("kenji", RESOURCE_REQUESTS, onboard(w, "managers", "own"))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"] == (
        "you may not add Department managers to catalog Marketing, whose access packages would "
        "change its members, because Department managers holds Catalog creator (tenant) and you "
        "may not assign it"
    ), r.text
    r = w.t.post("omar", RESOURCE_REQUESTS, onboard(w, "auditors", "own"))
    assert r.status_code == 403, r.text
    message = r.json()["error"]["message"]
    assert "Auditors holds Catalog reader (a catalog)" in message, message
    assert "Finance" not in message, message  # mark's catalog is not omar's to see


def test_explain_says_why_a_group_may_or_may_not_be_onboarded(held: World) -> None:
    """``GET /remit/explain?task=catalog:resources:manage&catalog=C&group=G``: the catalog's
    right, the right on the group (spec §2.2) and the roles the group holds."""
    w, t = held, held.t
    ask = {"task": "catalog:resources:manage", "catalog": w["own"]}
    denied = t.get("kenji", EXPLAIN, **ask, group=w["managers"]).json()
    assert denied["allowed"] is False, denied
    assert denied["groupId"] == w["managers"], denied
    assert denied["reasons"][0].startswith(
        "kenji@contoso.example may not add Department managers to catalog Marketing"
    ), denied
    assert any("Groups Administrator" in r for r in denied["reasons"]), denied
    allowed = t.get("hana", EXPLAIN, **ask, group=w["managers"]).json()
    assert allowed["allowed"] is True, allowed
    assert "owner of group Department managers" in allowed["reasons"], allowed
    plain = t.get("kenji", EXPLAIN, **ask, group=w["legal"]).json()
    assert plain["allowed"] is True, plain
    assert any("holds no role" in r for r in plain["reasons"]), plain
    # The §2.2 half alone: omar may not add Finance, which he does not own.
    other = t.get("omar", EXPLAIN, **ask, group=w["finance"]).json()
    assert other["allowed"] is False, other
    assert "Finance" in other["reasons"][0], other


def test_a_group_given_a_role_after_it_was_onboarded_is_the_assigners_decision(
    held: World, attempts: Attempts
) -> None:
    """The opposite order (decision 0022): kenji onboards Legal, which holds no role, and puts
    its Member role in a package; then the Global Administrator makes Legal's members catalog
    creators. The administrator may give that role, and what follows is their decision: the
    resource stays, and kenji may still put the Member role in a package."""
    w, t = held, held.t
    attempts.allowed("onboard Legal", "kenji", "POST", RESOURCE_REQUESTS,
                     onboard(w, "legal", "own"))  # fmt: skip
    creators = assignment(w["legal"], CATALOG_CREATOR.id, "/")
    attempts.allowed("GA makes Legal creators", "admin", "POST", ASSIGN, creators)
    package = t.post("kenji", f"{EM}/accessPackages",
                     {"displayName": "Legal", "catalog": {"id": w["own"]}})  # fmt: skip
    assert package.status_code == 201, package.text
    member = {"role": {"originId": f"Member_{w['legal']}", "originSystem": "AadGroup"}}
    path = f"{EM}/accessPackages/{package.json()['id']}/resourceRoleScopes"
    attempts.allowed("Legal's Member role in a package", "kenji", "POST", path, member)
    attempts.verify()
