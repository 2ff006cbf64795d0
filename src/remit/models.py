"""Imports every table so that ``Base.metadata`` is complete (Alembic, tests)."""

from remit.audit.models import AuditEvent, AuditHead
from remit.authz.models import RoleAssignment
from remit.catalogs.models import (
    Catalog,
    CatalogResource,
    ResourceRequest,
    ResourceRole,
    ResourceScope,
)
from remit.db import Base
from remit.directory.models import (
    Application,
    ApplicationOwner,
    AppRole,
    AppRoleAssignment,
    DirectoryRoleAssignment,
    Group,
    GroupMember,
    GroupOwner,
    Site,
    SiteAdmin,
    SiteRole,
    SiteRoleMember,
    User,
)
from remit.external.models import (
    ConnectedOrganization,
    ConnectedOrganizationDomain,
    ConnectedOrganizationSponsor,
    TenantSettings,
)
from remit.jobs.models import Job
from remit.lifecycle.models import (
    ApprovalStage,
    Assignment,
    AssignmentRequest,
    ResourceGrant,
    StageApprover,
)
from remit.notify.models import CustomExtension
from remit.packages.models import (
    AccessPackage,
    IncompatibleGroup,
    IncompatiblePackage,
    ResourceRoleScope,
)
from remit.policies.models import AssignmentPolicy, PolicyTarget

__all__ = [
    "AccessPackage",
    "AppRole",
    "AppRoleAssignment",
    "Application",
    "ApplicationOwner",
    "ApprovalStage",
    "Assignment",
    "AssignmentPolicy",
    "AssignmentRequest",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Catalog",
    "CatalogResource",
    "ConnectedOrganization",
    "ConnectedOrganizationDomain",
    "ConnectedOrganizationSponsor",
    "CustomExtension",
    "DirectoryRoleAssignment",
    "Group",
    "GroupMember",
    "GroupOwner",
    "IncompatibleGroup",
    "IncompatiblePackage",
    "Job",
    "PolicyTarget",
    "ResourceGrant",
    "ResourceRequest",
    "ResourceRole",
    "ResourceRoleScope",
    "ResourceScope",
    "RoleAssignment",
    "Site",
    "SiteAdmin",
    "SiteRole",
    "SiteRoleMember",
    "StageApprover",
    "TenantSettings",
    "User",
]
