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
