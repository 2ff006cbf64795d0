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
    DirectoryRoleAssignment,
    Group,
    GroupMember,
    GroupOwner,
    Site,
    SiteAdmin,
    SiteRole,
    User,
)
from remit.packages.models import (
    AccessPackage,
    IncompatibleGroup,
    IncompatiblePackage,
    ResourceRoleScope,
)

__all__ = [
    "AccessPackage",
    "AppRole",
    "Application",
    "ApplicationOwner",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Catalog",
    "CatalogResource",
    "DirectoryRoleAssignment",
    "Group",
    "GroupMember",
    "GroupOwner",
    "IncompatibleGroup",
    "IncompatiblePackage",
    "ResourceRequest",
    "ResourceRole",
    "ResourceRoleScope",
    "ResourceScope",
    "RoleAssignment",
    "Site",
    "SiteAdmin",
    "SiteRole",
    "User",
]
