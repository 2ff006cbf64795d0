"""Imports every table so that ``Base.metadata`` is complete (Alembic, tests)."""

from remit.db import Base
from remit.models.audit import AuditEvent, AuditHead
from remit.models.authz import RoleAssignment
from remit.models.catalogs import (
    Catalog,
    CatalogResource,
    ResourceRequest,
    ResourceRole,
    ResourceScope,
)
from remit.models.delivery import DeliveryRoute, DeliveryTarget
from remit.models.directory import (
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
from remit.models.external import (
    ConnectedOrganization,
    ConnectedOrganizationDomain,
    ConnectedOrganizationSponsor,
    TenantSettings,
)
from remit.models.jobs import Job
from remit.models.lifecycle import (
    ApprovalStage,
    Assignment,
    AssignmentRequest,
    ResourceGrant,
    StageApprover,
)
from remit.models.notify import CustomExtension
from remit.models.packages import (
    AccessPackage,
    IncompatibleGroup,
    IncompatiblePackage,
    ResourceRoleScope,
)
from remit.models.policies import AssignmentPolicy, PolicyTarget

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
    "DeliveryRoute",
    "DeliveryTarget",
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
