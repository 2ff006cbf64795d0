"""Role definitions and the one table from role to tasks (spec §1.1 and §1.2, graph-api §A.2).

Entitlement-management role ids are Microsoft's; directory role ids are Entra's template ids,
so Graph scripts that name roles by id work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from remit.authz.tasks import CATALOG_TASKS, Task

EM_PREFIX = "microsoft.entitlementManagement"


@dataclass(frozen=True)
class EmRole:
    id: str
    display_name: str
    portal_name: str
    catalog_scoped: bool
    allowed_resource_actions: tuple[str, ...]


CATALOG_CREATOR = EmRole(
    "ba92d953-d8e0-4e39-a797-0cbedb0a89e8",
    "Catalog creator",
    "Catalog creator",
    False,
    (f"{EM_PREFIX}/AccessPackageCatalog/Create",),
)
CATALOG_OWNER = EmRole(
    "ae79f266-94d4-4dab-b730-feca7e132178",
    "Catalog owner",
    "Catalog owner",
    True,
    (f"{EM_PREFIX}/allEntities/allTasks",),
)
CATALOG_READER = EmRole(
    "44272f93-9762-48e8-af59-1b5351b1d6b3",
    "Catalog reader",
    "Catalog reader",
    True,
    (f"{EM_PREFIX}/allEntities/Read",),
)
PACKAGE_MANAGER = EmRole(
    "7f480852-ebdc-47d4-87de-0d8498384a83",
    "AccessPackages manager",
    "Access package manager",
    True,
    (
        f"{EM_PREFIX}/AccessPackageCatalog/AccessPackage/allTasks",
        f"{EM_PREFIX}/AccessPackageCatalog/allEntities/Read",
    ),
)
ASSIGNMENT_MANAGER = EmRole(
    "e2182095-804a-4656-ae11-64734e9b7ae5",
    "AccessPackage assignment manager",
    "Access package assignment manager",
    True,
    (
        f"{EM_PREFIX}/AccessPackageCatalog/AccessPackage/GrantRequests/allTasks",
        f"{EM_PREFIX}/AccessPackageCatalog/AccessPackage/Grants/allTasks",
        f"{EM_PREFIX}/AccessPackageCatalog/allEntities/Read",
    ),
)
# Tenant-wide (appScopeId "/"), assigned like the catalog creator. Microsoft's docs print the id
# one hex digit short (e65cf63f-…-cb667e9d90f); the full id is the one Microsoft365DSC uses for
# role assignments. The resource action is named by analogy (decision 0012).
CONNECTED_ORGANIZATION_ADMINISTRATOR = EmRole(
    "e65cf63f-9cc2-4b48-8871-cb667e9d90fb",
    "Connected organization administrator",
    "Connected Organization Administrator",
    False,
    (f"{EM_PREFIX}/connectedOrganizations/allTasks",),
)
EM_ROLES: dict[str, EmRole] = {
    r.id: r
    for r in (
        CATALOG_CREATOR,
        CATALOG_OWNER,
        CATALOG_READER,
        PACKAGE_MANAGER,
        ASSIGNMENT_MANAGER,
        CONNECTED_ORGANIZATION_ADMINISTRATOR,
    )
}


class DirectoryRole(StrEnum):
    """Entra directory role template ids."""

    GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
    IDENTITY_GOVERNANCE_ADMINISTRATOR = "45d8d3c5-c802-45c6-b32a-1d70b5e1e86e"
    USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"
    GROUPS_ADMINISTRATOR = "fdd7a751-b60b-444a-984c-02652fe8fa1c"
    APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
    CLOUD_APPLICATION_ADMINISTRATOR = "158c047a-c907-4556-b7ef-446551a6b5f7"
    SHAREPOINT_ADMINISTRATOR = "f28a1f50-f6e7-4571-818b-6a12f2af6b6c"
    PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
    EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
    INTUNE_ADMINISTRATOR = "3a2c62db-5318-420d-8d74-23affee5d9d5"


DIRECTORY_ROLE_NAMES: dict[DirectoryRole, str] = {
    DirectoryRole.GLOBAL_ADMINISTRATOR: "Global Administrator",
    DirectoryRole.IDENTITY_GOVERNANCE_ADMINISTRATOR: "Identity Governance Administrator",
    DirectoryRole.USER_ADMINISTRATOR: "User Administrator",
    DirectoryRole.GROUPS_ADMINISTRATOR: "Groups Administrator",
    DirectoryRole.APPLICATION_ADMINISTRATOR: "Application Administrator",
    DirectoryRole.CLOUD_APPLICATION_ADMINISTRATOR: "Cloud Application Administrator",
    DirectoryRole.SHAREPOINT_ADMINISTRATOR: "SharePoint Administrator",
    DirectoryRole.PRIVILEGED_ROLE_ADMINISTRATOR: "Privileged Role Administrator",
    DirectoryRole.EXCHANGE_ADMINISTRATOR: "Exchange Administrator",
    DirectoryRole.INTUNE_ADMINISTRATOR: "Intune Administrator",
}

# Every member user (not a guest) may read the directory, as in Entra's default settings.
MEMBER_USER = "member-user"

_VIEW = frozenset(
    {Task.CATALOG_READ, Task.PACKAGE_READ, Task.ASSIGNMENT_READ, Task.REQUEST_READ, Task.AUDIT_READ}
)
_ASSIGN = _VIEW | {
    Task.ASSIGNMENT_DIRECT_ADD,
    Task.ASSIGNMENT_DIRECT_REMOVE,
    Task.REQUEST_ERRORS_READ,
    Task.REQUEST_REPROCESS,
    Task.REQUEST_CANCEL,
}
_MANAGE_PACKAGES = _ASSIGN | {
    Task.PACKAGE_CREATE,
    Task.PACKAGE_UPDATE,
    Task.PACKAGE_RESOURCE_ROLES_MANAGE,
    Task.PACKAGE_INCOMPATIBLE_MANAGE,
    Task.PACKAGE_HIDE,
    Task.PACKAGE_DELETE,
    Task.POLICY_MANAGE,
}
_OWN_CATALOG = _MANAGE_PACKAGES | {
    Task.CATALOG_UPDATE,
    Task.CATALOG_DELETE,
    Task.CATALOG_RESOURCES_MANAGE,
    Task.CATALOG_OWNERS_MANAGE,
    Task.CATALOG_ROLES_MANAGE,
}
if _OWN_CATALOG != CATALOG_TASKS:  # the catalog owner holds every catalog-scoped task
    raise RuntimeError("role table out of step with the task list")

_EM_ADMIN = CATALOG_TASKS | {
    Task.CATALOG_CREATORS_MANAGE,
    Task.CONNECTED_ORGS_MANAGE,
    Task.SETTINGS_UPDATE,
    Task.CATALOG_CREATE,
    Task.AUTO_ASSIGNMENT_POLICY_MANAGE,
    Task.TENANT_ROLES_READ,
    Task.TENANT_AUDIT_READ,
    Task.REQUEST_RECORD_DELETE,
    Task.DIRECTORY_READ,
}

# Entitlement-management roles: catalog-scoped ones apply to their catalog only.
EM_ROLE_TASKS: dict[str, frozenset[Task]] = {
    CATALOG_CREATOR.id: frozenset({Task.CATALOG_CREATE}),
    CATALOG_OWNER.id: _OWN_CATALOG,
    PACKAGE_MANAGER.id: _MANAGE_PACKAGES,
    ASSIGNMENT_MANAGER.id: _ASSIGN,
    CATALOG_READER.id: _VIEW,
    CONNECTED_ORGANIZATION_ADMINISTRATOR.id: frozenset({Task.CONNECTED_ORGS_MANAGE}),
}

# Directory roles: tenant-wide; a catalog task held here applies to every catalog.
DIRECTORY_ROLE_TASKS: dict[str, frozenset[Task]] = {
    DirectoryRole.GLOBAL_ADMINISTRATOR: frozenset(Task),
    DirectoryRole.IDENTITY_GOVERNANCE_ADMINISTRATOR: _EM_ADMIN,
    # Reduced rights since Microsoft removed the legacy ones (spec §1.1): directory only.
    DirectoryRole.USER_ADMINISTRATOR: frozenset(
        {Task.DIRECTORY_READ, Task.USERS_MANAGE, Task.GROUPS_CREATE, Task.GROUPS_MANAGE}
    ),
    DirectoryRole.GROUPS_ADMINISTRATOR: frozenset(
        {Task.DIRECTORY_READ, Task.GROUPS_CREATE, Task.GROUPS_MANAGE}
    ),
    DirectoryRole.INTUNE_ADMINISTRATOR: frozenset(
        {Task.DIRECTORY_READ, Task.GROUPS_CREATE, Task.GROUPS_MANAGE}
    ),
    DirectoryRole.EXCHANGE_ADMINISTRATOR: frozenset({Task.DIRECTORY_READ}),
    DirectoryRole.APPLICATION_ADMINISTRATOR: frozenset(
        {Task.DIRECTORY_READ, Task.APPLICATIONS_MANAGE}
    ),
    DirectoryRole.CLOUD_APPLICATION_ADMINISTRATOR: frozenset(
        {Task.DIRECTORY_READ, Task.APPLICATIONS_MANAGE}
    ),
    DirectoryRole.SHAREPOINT_ADMINISTRATOR: frozenset({Task.DIRECTORY_READ, Task.SITES_MANAGE}),
    DirectoryRole.PRIVILEGED_ROLE_ADMINISTRATOR: frozenset(
        {Task.DIRECTORY_READ, Task.DIRECTORY_ROLES_MANAGE}
    ),
    # Entra's defaults: members read the directory and create (and then own) security groups.
    MEMBER_USER: frozenset({Task.DIRECTORY_READ, Task.GROUPS_CREATE}),
}


def role_name(role_id: str) -> str:
    if role_id in EM_ROLES:
        return EM_ROLES[role_id].portal_name
    if role_id == MEMBER_USER:
        return "Member user"
    try:
        return DIRECTORY_ROLE_NAMES[DirectoryRole(role_id)]
    except ValueError:
        return role_id


def catalog_roles_granting(task: Task) -> tuple[str, ...]:
    """The catalog-scoped EM role ids that carry ``task`` (for SQL visibility filters)."""
    return tuple(
        rid
        for rid, tasks in EM_ROLE_TASKS.items()
        if EM_ROLES[rid].catalog_scoped and task in tasks
    )


def assigning_task(role: EmRole) -> Task:
    """The task that gives (or takes away) ``role``: tenant-wide roles are an administrator's;
    the catalog owner role is the catalog's owners'; the other catalog roles need the catalog's
    role-management task (owners and administrators too)."""
    if not role.catalog_scoped:
        return Task.CATALOG_CREATORS_MANAGE
    return Task.CATALOG_OWNERS_MANAGE if role is CATALOG_OWNER else Task.CATALOG_ROLES_MANAGE
