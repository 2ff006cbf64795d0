"""The task vocabulary. No permission string appears anywhere else in the code."""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    # Tenant-wide entitlement-management tasks (spec §1.2 and its additional rules)
    CATALOG_CREATORS_MANAGE = "em:catalogCreators:manage"
    CONNECTED_ORGS_MANAGE = "em:connectedOrganizations:manage"
    SETTINGS_UPDATE = "em:settings:update"
    CATALOG_CREATE = "catalog:create"
    AUTO_ASSIGNMENT_POLICY_MANAGE = "policy:autoAssignment:manage"
    TENANT_ROLES_READ = "em:tenantRoles:read"
    TENANT_AUDIT_READ = "audit:tenant:read"
    REQUEST_RECORD_DELETE = "em:requestRecords:delete"

    # Catalog-scoped tasks: held on one catalog, or on every catalog by an administrator
    CATALOG_READ = "catalog:read"
    CATALOG_UPDATE = "catalog:update"
    CATALOG_DELETE = "catalog:delete"
    CATALOG_RESOURCES_MANAGE = "catalog:resources:manage"
    CATALOG_OWNERS_MANAGE = "catalog:owners:manage"
    CATALOG_ROLES_MANAGE = "catalog:roles:manage"
    PACKAGE_READ = "package:read"
    PACKAGE_CREATE = "package:create"
    PACKAGE_UPDATE = "package:update"
    PACKAGE_RESOURCE_ROLES_MANAGE = "package:resourceRoles:manage"
    PACKAGE_INCOMPATIBLE_MANAGE = "package:incompatible:manage"
    PACKAGE_HIDE = "package:hide"
    PACKAGE_DELETE = "package:delete"
    POLICY_MANAGE = "policy:manage"
    ASSIGNMENT_DIRECT_ADD = "assignment:directAdd"
    ASSIGNMENT_DIRECT_REMOVE = "assignment:directRemove"
    ASSIGNMENT_READ = "assignment:read"
    REQUEST_READ = "request:read"
    REQUEST_ERRORS_READ = "request:deliveryErrors:read"
    REQUEST_REPROCESS = "request:reprocess"
    REQUEST_CANCEL = "request:cancel"
    AUDIT_READ = "audit:read"

    # Directory administration (outside entitlement management)
    DIRECTORY_READ = "directory:read"
    USERS_MANAGE = "directory:users:manage"
    GROUPS_CREATE = "directory:groups:create"
    GROUPS_MANAGE = "directory:groups:manage"
    APPLICATIONS_MANAGE = "directory:applications:manage"
    SITES_MANAGE = "directory:sites:manage"
    DIRECTORY_ROLES_MANAGE = "directory:roles:manage"


CATALOG_TASKS: frozenset[Task] = frozenset(
    t
    for t in Task
    if t.value.split(":")[0] in {"catalog", "package", "policy", "assignment", "request", "audit"}
    and t not in {Task.CATALOG_CREATE, Task.AUTO_ASSIGNMENT_POLICY_MANAGE, Task.TENANT_AUDIT_READ}
)
TENANT_TASKS: frozenset[Task] = frozenset(Task) - CATALOG_TASKS


# What each task is, in words: every message that names a task (a refusal, an explanation, the
# CLI and the API alike) says this, never the identifier. Read as "you are not allowed to …".
TASK_PHRASES: dict[Task, str] = {
    Task.CATALOG_CREATORS_MANAGE: "manage catalog creators",
    Task.CONNECTED_ORGS_MANAGE: "manage connected organizations",
    Task.SETTINGS_UPDATE: "change the entitlement-management settings",
    Task.CATALOG_CREATE: "create catalogs",
    Task.AUTO_ASSIGNMENT_POLICY_MANAGE: "manage automatic assignment policies",
    Task.TENANT_ROLES_READ: "read the tenant's role assignments",
    Task.TENANT_AUDIT_READ: "read the tenant's audit log",
    Task.REQUEST_RECORD_DELETE: "delete request records",
    Task.CATALOG_READ: "read the catalog",
    Task.CATALOG_UPDATE: "edit the catalog",
    Task.CATALOG_DELETE: "delete the catalog",
    Task.CATALOG_RESOURCES_MANAGE: "add or remove the catalog's resources",
    Task.CATALOG_OWNERS_MANAGE: "add or remove the catalog's owners",
    Task.CATALOG_ROLES_MANAGE: "manage the catalog's roles",
    Task.PACKAGE_READ: "read access packages",
    Task.PACKAGE_CREATE: "create access packages",
    Task.PACKAGE_UPDATE: "edit access packages",
    Task.PACKAGE_RESOURCE_ROLES_MANAGE: "change the resource roles of access packages",
    Task.PACKAGE_INCOMPATIBLE_MANAGE: "manage the incompatibilities of access packages",
    Task.PACKAGE_HIDE: "hide access packages",
    Task.PACKAGE_DELETE: "delete access packages",
    Task.POLICY_MANAGE: "create or edit assignment policies",
    Task.ASSIGNMENT_DIRECT_ADD: "assign access packages directly",
    Task.ASSIGNMENT_DIRECT_REMOVE: "remove access package assignments",
    Task.ASSIGNMENT_READ: "read access package assignments",
    Task.REQUEST_READ: "read access package requests",
    Task.REQUEST_ERRORS_READ: "read the delivery errors of requests",
    Task.REQUEST_REPROCESS: "reprocess requests",
    Task.REQUEST_CANCEL: "cancel requests",
    Task.AUDIT_READ: "read the catalog's audit log",
    Task.DIRECTORY_READ: "read the directory",
    Task.USERS_MANAGE: "manage users",
    Task.GROUPS_CREATE: "create groups",
    Task.GROUPS_MANAGE: "manage groups",
    Task.APPLICATIONS_MANAGE: "manage applications",
    Task.SITES_MANAGE: "manage sites",
    Task.DIRECTORY_ROLES_MANAGE: "assign directory roles",
}
if set(TASK_PHRASES) != set(Task):  # a new task must come with its words
    raise RuntimeError("TASK_PHRASES out of step with the task list")


def phrase(task: Task) -> str:
    """The task in words, e.g. "create catalogs" for ``catalog:create``."""
    return TASK_PHRASES[task]
