"""The demo tenant (contoso.example): personas of the delegation scenario, with realistic extras.

Everything is created through the operations, as the people who would do it, so the demo's own
audit trail tells the story: the Global Administrator sets up the directory, Hana (Identity
Governance Administrator) makes "Department managers" catalog creators, and Mark and Joe have
already built their department catalogs; Mark offers "Invoice approvals" to Finance staff.
Mamta's Marketing catalog is left for the README tour.
"""

from __future__ import annotations

from sqlalchemy import func, select

from remit.authz.actor import load_actor, system_actor
from remit.authz.roles import CATALOG_CREATOR, DirectoryRole
from remit.catalogs.operations import create_catalog
from remit.catalogs.resources import add_resource
from remit.clock import utcnow
from remit.context import Ctx
from remit.db import Database
from remit.directory import operations as d
from remit.lifecycle.package_roles import add_resource_role_scope
from remit.models.catalogs import CatalogResource, ResourceRole
from remit.models.directory import User
from remit.packages.operations import create_package
from remit.policies.operations import create_policy
from remit.roles.operations import create_role_assignment

DOMAIN = "contoso.example"

# (alias, display name, department, job title, manager alias)
PEOPLE = [
    ("admin", "Contoso Administrator", "IT", "Global administrator", None),
    ("hana", "Hana Ito", "IT", "Identity governance lead", None),
    ("mamta", "Mamta Rao", "Marketing", "Head of Marketing", None),
    ("mark", "Mark Fischer", "Finance", "Head of Finance", None),
    ("joe", "Joe Okafor", "Legal", "General Counsel", None),
    ("lena", "Lena Novak", "Marketing", "Campaign project lead", "mamta"),
    ("omar", "Omar Haddad", "Marketing", "Marketing operations manager", "mamta"),
    ("sofia", "Sofia Costa", "Marketing", "Content marketer", "lena"),
    ("tom", "Tom Becker", "Marketing", "Designer", "lena"),
    ("ines", "Ines Moreau", "Finance", "Controller", "mark"),
    ("raj", "Raj Patel", "Finance", "Accountant", "ines"),
    ("ava", "Ava Lindqvist", "Legal", "Paralegal", "joe"),
    ("kenji", "Kenji Sato", "IT", "Groups administrator", "hana"),
]


def upn(alias: str) -> str:
    return f"{alias}@{DOMAIN}"


def is_empty(db: Database) -> bool:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(User)).scalar_one() == 0


def load_if_empty(db: Database) -> bool:
    if not is_empty(db):
        return False
    load(db)
    return True


def load(db: Database) -> None:
    now = utcnow()
    with db.write() as session:
        root = Ctx(session, system_actor("demo loader"), now)
        ids: dict[str, str] = {}
        for alias, name, dept, title, manager in PEOPLE:
            ids[alias] = d.create_user(
                root,
                user_principal_name=upn(alias),
                display_name=name,
                department=dept,
                job_title=title,
                manager_id=ids.get(manager) if manager else None,
            ).id
        d.assign_directory_role(
            root, principal_id=ids["admin"], role=DirectoryRole.GLOBAL_ADMINISTRATOR
        )
        admin = Ctx(session, load_actor(session, ids["admin"]), now)
        d.assign_directory_role(
            admin, principal_id=ids["hana"], role=DirectoryRole.IDENTITY_GOVERNANCE_ADMINISTRATOR
        )
        d.assign_directory_role(
            admin, principal_id=ids["kenji"], role=DirectoryRole.GROUPS_ADMINISTRATOR
        )

        groups = {}
        for name, kind, owner, members in (
            ("Marketing", "security", "mamta", ["mamta", "lena", "omar", "sofia", "tom"]),
            ("Marketing campaigns", "microsoft365", "mamta", ["lena", "sofia"]),
            ("Brand designers", "security", "lena", ["tom"]),
            ("Finance", "security", "mark", ["mark", "ines", "raj"]),
            ("Finance approvers", "security", "mark", ["ines"]),
            ("Legal", "security", "joe", ["joe", "ava"]),
            ("All employees", "security", "hana", [a for a, *_ in PEOPLE]),
        ):
            groups[name] = d.create_group(
                admin,
                display_name=name,
                kind=kind,
                owner_ids=[ids[owner]],
                member_ids=[ids[m] for m in members],
                description=f"{name} ({kind})",
            ).id
        d.add_group_member(admin, groups["Marketing"], groups["Brand designers"])
        groups["Tier-0 admins"] = d.create_group(
            admin,
            display_name="Tier-0 admins",
            is_assignable_to_role=True,
            owner_ids=[ids["mamta"]],
            description="role-assignable",
        ).id
        d.create_application(
            admin,
            display_name="Campaign Planner",
            app_roles=[("Planner", "planner"), ("Viewer", "viewer")],
            owner_ids=[ids["mamta"]],
        )
        d.create_application(admin, display_name="Brand Portal", owner_ids=[ids["mamta"]])
        d.create_application(
            admin,
            display_name="Ledger",
            app_roles=[("Bookkeeper", "bookkeeper"), ("Auditor", "auditor")],
            owner_ids=[ids["mark"]],
        )
        d.create_application(
            admin,
            display_name="Contract Vault",
            app_roles=[("Reader", "reader")],
            owner_ids=[ids["joe"]],
        )
        for hub, site_admin in (("Marketing", "mamta"), ("Finance", "mark"), ("Legal", "joe")):
            d.create_site(
                admin,
                display_name=f"{hub} hub",
                web_url=f"https://sites.{DOMAIN}/{hub.lower()}",
                admin_ids=[ids[site_admin]],
            )

        managers = d.create_group(
            admin,
            display_name="Department managers",
            member_ids=[ids["mamta"], ids["mark"], ids["joe"]],
            owner_ids=[ids["hana"]],
            description="Heads of department; they may create catalogs",
        ).id
        hana = Ctx(session, load_actor(session, ids["hana"]), now)
        create_role_assignment(
            hana, principal_id=managers, role_definition_id=CATALOG_CREATOR.id, app_scope_id="/"
        )

        mark = Ctx(session, load_actor(session, ids["mark"]), now)
        finance = create_catalog(
            mark, display_name="Finance", description="Finance department resources"
        )
        mark = Ctx(session, load_actor(session, ids["mark"]), now)
        add_resource(
            mark,
            catalog_id=finance.id,
            origin_system_name="AadGroup",
            origin_id=groups["Finance approvers"],
        )
        _invoice_approvals(mark, finance.id, groups["Finance"], ids["mark"])
        joe = Ctx(session, load_actor(session, ids["joe"]), now)
        create_catalog(joe, display_name="Legal", description="Legal department resources")


def _invoice_approvals(mark: Ctx, catalog_id: str, finance_group: str, mark_id: str) -> None:
    """Mark's access package: membership of "Finance approvers" for 30 days, requested by
    Finance staff with a justification and approved by their manager (Mark if they have none)."""
    package = create_package(
        mark,
        display_name="Invoice approvals",
        catalog_id=catalog_id,
        description="Approve supplier invoices (member of Finance approvers)",
    )
    member_role = mark.session.execute(
        select(ResourceRole.id)
        .join(CatalogResource, CatalogResource.id == ResourceRole.resource_id)
        .where(CatalogResource.catalog_id == catalog_id, ResourceRole.display_name == "Member")
    ).scalar_one()
    add_resource_role_scope(mark, package.id, role_id=member_role)
    create_policy(
        mark,
        {
            "displayName": "Finance staff",
            "description": "Finance staff request; their manager approves; 30 days",
            "accessPackage": {"id": package.id},
            "allowedTargetScope": "specificDirectoryUsers",
            "specificAllowedTargets": [
                {"@odata.type": "#microsoft.graph.groupMembers", "groupId": finance_group}
            ],
            "expiration": {"type": "afterDuration", "duration": "P30D"},
            "requestorSettings": {
                "enableTargetsToSelfAddAccess": True,
                "enableTargetsToSelfUpdateAccess": True,
                "enableTargetsToSelfRemoveAccess": True,
            },
            "requestApprovalSettings": {
                "isApprovalRequiredForAdd": True,
                "isApprovalRequiredForUpdate": True,
                "isRequestorJustificationRequired": True,
                "stages": [
                    {
                        "durationBeforeAutomaticDenial": "P14D",
                        "primaryApprovers": [
                            {"@odata.type": "#microsoft.graph.requestorManager", "managerLevel": 1}
                        ],
                        "fallbackPrimaryApprovers": [
                            {"@odata.type": "#microsoft.graph.singleUser", "userId": mark_id}
                        ],
                    }
                ],
            },
        },
    )


def sign_in_names(count: int = 6) -> list[tuple[str, str]]:
    """The first demo users, as (userPrincipalName, display name): whom ``serve --demo`` offers
    a token for."""
    return [(upn(alias), name) for alias, name, *_ in PEOPLE[:count]]
