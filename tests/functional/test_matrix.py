"""R1: the delegation matrix of spec §1.2 (with the resource rule of §2.2), through HTTP.

``TABLE_TEXT`` is the one source of truth: each line is an API operation on one scope, with the
expected outcome for every persona (``tests/matrix_support.py`` says who they are and builds the
world). Scopes: ``own`` = the catalog on which the persona holds its role, or a directory object
it owns; ``other`` = someone else's; ``tenant`` = no catalog; ``self`` = the caller's own user or
role assignment. Outcomes:

* ``A`` allowed: 2xx; a list holds the target; a write changes the database (a no-op does not).
* ``D`` denied: 403 with a Graph error, and a write changes nothing (every table is compared).
* ``N`` not found: the target is outside the persona's scope, so for them it does not exist:
  404 (a top-level list simply leaves it out), and a write changes nothing.
* ``-`` not applicable (the persona has nothing in that scope).

The anonymous caller is one more column, implicit: every line answers 401 and changes nothing.

Each test builds the tenant once and runs every line of one scope for one persona (reads first,
then writes, each on a target reserved for it), and reports every failing cell at once.

Where the spec is silent, the lines follow the role descriptions and the (impl) notes: readers
and assignment managers see the catalog, its resources, packages, role assignments and audit
events; a catalog creator without a catalog sees nothing (its "access denied" is a 404 here,
since every object is outside its scope); role-assignment lists show only explicit assignments,
so a role held through a group is not listed as the caller's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from remit.authz.roles import (
    CATALOG_CREATOR,
    DirectoryRole,
)
from tests.factories import DOMAIN, EM, RM, Tenant
from tests.matrix_support import (
    ANONYMOUS,
    CATALOG_ROLES,
    PERSONAS,
    Persona,
    World,
    build_world,
    fingerprint,
)

GRAPH = "https://graph.microsoft.com/v1.0"
PERSONA_KEYS = tuple(p.key for p in PERSONAS)
SCOPES = ("own", "other", "tenant", "self")

# Columns: ga iga creator owner apm apam reader useradmin member nested (matrix_support.PERSONAS).
TABLE_TEXT = """
# operation                               scope   ga iga cre own apm apam rdr ua mem nst
# ---- catalogs (spec §1.2: create = admin/creator; edit/delete = owner; view = any role)
catalogs.list                             own     A  A   N   A   A   A    A   N  N   A
catalogs.list                             other   A  A   N   N   N   N    N   N  N   N
catalogs.create                           tenant  A  A   A   D   D   D    D   D  D   D
catalog.get                               own     A  A   N   A   A   A    A   N  N   A
catalog.get                               other   A  A   N   N   N   N    N   N  N   N
catalog.update                            own     A  A   N   A   D   D    D   N  N   A
catalog.update                            other   A  A   N   N   N   N    N   N  N   N
catalog.update[no-op]                     own     A  A   N   A   D   D    D   N  N   A
catalog.update[no-op]                     other   A  A   N   N   N   N    N   N  N   N
catalog.delete                            own     A  A   N   A   D   D    D   N  N   A
catalog.delete                            other   A  A   N   N   N   N    N   N  N   N
# ---- catalog resources (§2.2: owner or admin, plus rights on the object, which all hold here)
catalog.resources                         own     A  A   N   A   A   A    A   N  N   A
catalog.resources                         other   A  A   N   N   N   N    N   N  N   N
catalog.resource.get                      own     A  A   N   A   A   A    A   N  N   A
catalog.resource.get                      other   A  A   N   N   N   N    N   N  N   N
catalog.resource.roles                    own     A  A   N   A   A   A    A   N  N   A
catalog.resource.roles                    other   A  A   N   N   N   N    N   N  N   N
catalog.resource.scopes                   own     A  A   N   A   A   A    A   N  N   A
catalog.resource.scopes                   other   A  A   N   N   N   N    N   N  N   N
catalog.resourceRoles                     own     A  A   N   A   A   A    A   N  N   A
catalog.resourceRoles                     other   A  A   N   N   N   N    N   N  N   N
catalog.resourceScopes                    own     A  A   N   A   A   A    A   N  N   A
catalog.resourceScopes                    other   A  A   N   N   N   N    N   N  N   N
catalog.accessPackages                    own     A  A   N   A   A   A    A   N  N   A
catalog.accessPackages                    other   A  A   N   N   N   N    N   N  N   N
resourceRequests.add                      own     A  A   N   A   D   D    D   N  N   A
resourceRequests.add                      other   A  A   N   N   N   N    N   N  N   N
resourceRequests.remove                   own     A  A   N   A   D   D    D   N  N   A
resourceRequests.remove                   other   A  A   N   N   N   N    N   N  N   N
resourceRequests.list                     own     A  A   N   A   A   A    A   N  N   A
resourceRequests.list                     other   A  A   N   N   N   N    N   N  N   N
resourceRequest.get                       own     A  A   N   A   A   A    A   N  N   A
resourceRequest.get                       other   A  A   N   N   N   N    N   N  N   N
# ---- access packages (create/edit/hide/delete/resource roles/SoD = owner, APM)
packages.list                             own     A  A   N   A   A   A    A   N  N   A
packages.list                             other   A  A   N   N   N   N    N   N  N   N
packages.create                           own     A  A   N   A   A   D    D   N  N   A
packages.create                           other   A  A   N   N   N   N    N   N  N   N
packages.create[no-catalog]               tenant  A  A   N   N   N   N    N   N  N   N
package.get                               own     A  A   N   A   A   A    A   N  N   A
package.get                               other   A  A   N   N   N   N    N   N  N   N
package.update                            own     A  A   N   A   A   D    D   N  N   A
package.update                            other   A  A   N   N   N   N    N   N  N   N
package.update[no-op]                     own     A  A   N   A   A   D    D   N  N   A
package.update[no-op]                     other   A  A   N   N   N   N    N   N  N   N
package.hide                              own     A  A   N   A   A   D    D   N  N   A
package.hide                              other   A  A   N   N   N   N    N   N  N   N
package.delete                            own     A  A   N   A   A   D    D   N  N   A
package.delete                            other   A  A   N   N   N   N    N   N  N   N
package.catalog                           own     A  A   N   A   A   A    A   N  N   A
package.catalog                           other   A  A   N   N   N   N    N   N  N   N
package.rrs.list                          own     A  A   N   A   A   A    A   N  N   A
package.rrs.list                          other   A  A   N   N   N   N    N   N  N   N
package.rrs.get                           own     A  A   N   A   A   A    A   N  N   A
package.rrs.get                           other   A  A   N   N   N   N    N   N  N   N
package.rrs.add                           own     A  A   N   A   A   D    D   N  N   A
package.rrs.add                           other   A  A   N   N   N   N    N   N  N   N
package.rrs.remove                        own     A  A   N   A   A   D    D   N  N   A
package.rrs.remove                        other   A  A   N   N   N   N    N   N  N   N
package.incompatiblePackages              own     A  A   N   A   A   A    A   N  N   A
package.incompatiblePackages              other   A  A   N   N   N   N    N   N  N   N
package.incompatibleWith                  own     A  A   N   A   A   A    A   N  N   A
package.incompatibleWith                  other   A  A   N   N   N   N    N   N  N   N
package.incompatiblePackages.add          own     A  A   N   A   A   D    D   N  N   A
package.incompatiblePackages.add          other   A  A   N   N   N   N    N   N  N   N
package.incompatiblePackages.remove       own     A  A   N   A   A   D    D   N  N   A
package.incompatiblePackages.remove       other   A  A   N   N   N   N    N   N  N   N
package.incompatibleGroups                own     A  A   N   A   A   A    A   N  N   A
package.incompatibleGroups                other   A  A   N   N   N   N    N   N  N   N
package.incompatibleGroups.add            own     A  A   N   A   A   D    D   N  N   A
package.incompatibleGroups.add            other   A  A   N   N   N   N    N   N  N   N
package.incompatibleGroups.remove         own     A  A   N   A   A   D    D   N  N   A
package.incompatibleGroups.remove         other   A  A   N   N   N   N    N   N  N   N
# ---- EM role management (§1.3: creators by admins; catalog roles by admins and owners)
roleDefinitions.list                      tenant  A  A   A   A   A   A    A   A  A   A
roleDefinition.get                        tenant  A  A   A   A   A   A    A   A  A   A
roleAssignments.list                      own     A  A   N   A   A   A    A   N  N   A
roleAssignments.list                      other   A  A   N   N   N   N    N   N  N   N
roleAssignments.list                      tenant  A  A   N   N   N   N    N   N  N   N
roleAssignments.list                      self    -  -   -   A   A   A    A   -  -   -
roleAssignment.get                        own     A  A   N   A   A   A    A   N  N   A
roleAssignment.get                        other   A  A   N   N   N   N    N   N  N   N
roleAssignment.get                        tenant  A  A   N   N   N   N    N   N  N   N
roleAssignment.get                        self    -  -   -   A   A   A    A   -  -   -
roleAssignments.create[owner]             own     A  A   N   A   D   D    D   N  N   A
roleAssignments.create[owner]             other   A  A   N   N   N   N    N   N  N   N
roleAssignments.create[apm]               own     A  A   N   A   D   D    D   N  N   A
roleAssignments.create[apm]               other   A  A   N   N   N   N    N   N  N   N
roleAssignments.create[apam]              own     A  A   N   A   D   D    D   N  N   A
roleAssignments.create[apam]              other   A  A   N   N   N   N    N   N  N   N
roleAssignments.create[reader]            own     A  A   N   A   D   D    D   N  N   A
roleAssignments.create[reader]            other   A  A   N   N   N   N    N   N  N   N
roleAssignments.create[creator]           tenant  A  A   D   D   D   D    D   D  D   D
roleAssignment.delete[owner]              own     A  A   N   A   D   D    D   N  N   A
roleAssignment.delete[owner]              other   A  A   N   N   N   N    N   N  N   N
roleAssignment.delete[apm]                own     A  A   N   A   D   D    D   N  N   A
roleAssignment.delete[apam]               own     A  A   N   A   D   D    D   N  N   A
roleAssignment.delete[reader]             own     A  A   N   A   D   D    D   N  N   A
roleAssignment.delete[creator]            tenant  A  A   N   N   N   N    N   N  N   N
# ---- audit log (catalog events follow the catalog; tenant events are for admins)
audits.list                               own     A  A   N   A   A   A    A   N  N   A
audits.list                               other   A  A   N   N   N   N    N   N  N   N
audits.list                               tenant  A  A   N   N   N   N    N   N  N   N
audit.get                                 own     A  A   N   A   A   A    A   N  N   A
audit.get                                 other   A  A   N   N   N   N    N   N  N   N
audit.get                                 tenant  A  A   N   N   N   N    N   N  N   N
# ---- directory (Entra defaults: members read and create groups; owners manage their objects)
users.list                                tenant  A  A   A   A   A   A    A   A  A   A
users.create                              tenant  A  D   D   D   D   D    D   A  D   D
me                                        self    A  A   A   A   A   A    A   A  A   A
user.get                                  self    A  A   A   A   A   A    A   A  A   A
user.get                                  other   A  A   A   A   A   A    A   A  A   A
user.update                               self    A  D   D   D   D   D    D   A  D   D
user.update                               other   A  D   D   D   D   D    D   A  D   D
user.manager                              other   A  A   A   A   A   A    A   A  A   A
user.manager.set                          other   A  D   D   D   D   D    D   A  D   D
user.memberOf                             other   A  A   A   A   A   A    A   A  A   A
user.transitiveMemberOf                   other   A  A   A   A   A   A    A   A  A   A
groups.list                               tenant  A  A   A   A   A   A    A   A  A   A
groups.create                             tenant  A  A   A   A   A   A    A   A  A   A
groups.create[role-assignable]            tenant  A  D   D   D   D   D    D   D  D   D
group.get                                 other   A  A   A   A   A   A    A   A  A   A
group.members                             other   A  A   A   A   A   A    A   A  A   A
group.members.add                         own     A  A   A   A   A   A    A   A  A   A
group.members.add                         other   A  D   D   D   D   D    D   A  D   D
group.members.add[role-assignable]        other   A  D   D   D   D   D    D   D  D   D
group.members.remove                      own     A  A   A   A   A   A    A   A  A   A
group.members.remove                      other   A  D   D   D   D   D    D   A  D   D
group.owners                              other   A  A   A   A   A   A    A   A  A   A
group.owners.add                          own     A  A   A   A   A   A    A   A  A   A
group.owners.add                          other   A  D   D   D   D   D    D   A  D   D
group.owners.remove                       own     A  A   A   A   A   A    A   A  A   A
group.owners.remove                       other   A  D   D   D   D   D    D   A  D   D
applications.list                         tenant  A  A   A   A   A   A    A   A  A   A
applications.create                       tenant  A  D   D   D   D   D    D   D  D   D
application.get                           other   A  A   A   A   A   A    A   A  A   A
application.owners                        other   A  A   A   A   A   A    A   A  A   A
application.owners.add                    own     A  A   A   A   A   A    A   A  A   A
application.owners.add                    other   A  D   D   D   D   D    D   D  D   D
sites.list                                tenant  A  A   A   A   A   A    A   A  A   A
sites.create                              tenant  A  D   D   D   D   D    D   D  D   D
site.get                                  other   A  A   A   A   A   A    A   A  A   A
site.administrators                       other   A  A   A   A   A   A    A   A  A   A
site.administrators.add                   own     A  A   A   A   A   A    A   A  A   A
site.administrators.add                   other   A  D   D   D   D   D    D   D  D   D
directoryRoles.list                       tenant  A  A   A   A   A   A    A   A  A   A
directoryRoles.create                     tenant  A  D   D   D   D   D    D   D  D   D
directoryRoles.delete                     tenant  A  D   D   D   D   D    D   D  D   D
# ---- remit's own endpoints
remit.tasks                               tenant  A  A   A   A   A   A    A   A  A   A
remit.explain                             self    A  A   A   A   A   A    A   A  A   A
remit.explain[other-user]                 own     A  A   N   A   D   D    D   N  N   A
remit.explain[other-user]                 other   A  A   N   N   N   N    N   N  N   N
remit.explain[other-user,tenant]         tenant  A  A   D   D   D   D    D   D  D   D
"""


@dataclass(frozen=True)
class Row:
    op: str
    scope: str
    expect: dict[str, str]

    @property
    def id(self) -> str:
        return f"{self.op}@{self.scope}"


def parse_table(text: str) -> tuple[Row, ...]:
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        op, scope, *cells = line.split()
        if scope not in SCOPES or len(cells) != len(PERSONA_KEYS) or set(cells) - set("ADN-"):
            raise ValueError(f"bad matrix line: {line!r}")
        rows.append(Row(op, scope, dict(zip(PERSONA_KEYS, cells, strict=True))))
    return tuple(rows)


TABLE = parse_table(TABLE_TEXT)


# ---------------------------------------------------------------- operations
#
# A request is written with placeholders: ``<key>`` is an id of the world, where ``$`` stands
# for the line's scope (``<$:pkg>`` is ``own:pkg`` on an ``own`` line) and ``<me>`` for the
# caller. Paths start with ``EM/`` (entitlement management), ``RM/`` (its role management),
# ``/`` (outside Graph), or are under ``/v1.0/``.


@dataclass(frozen=True)
class Op:
    name: str
    method: str
    kind: str  # "list" (top level: out of scope = left out), "get", "write"
    path: str
    body: Any = None
    expect: str | None = None  # an id the response's "value" must hold when allowed
    noop: bool = False  # a write that, even when allowed, must change nothing
    query: dict[str, str] | None = None

    @property
    def route(self) -> str:
        """The path as the OpenAPI document spells it, with parameters blanked."""
        return re.sub(r"<[^<>]+>", "{}", _url(self.path))


def _url(path: str) -> str:
    if path.startswith("/"):
        return path
    for short, full in (("EM/", f"{EM}/"), ("RM/", f"{RM}/")):
        if path.startswith(short):
            return full + path[len(short) :]
    return f"/v1.0/{path}"


def _ref(collection: str, key: str) -> dict[str, str]:
    return {"@odata.id": f"{GRAPH}/{collection}/<{key}>"}


def _assign(role_id: str, scope: str = "/AccessPackageCatalog/<$>") -> dict[str, str]:
    return {"principalId": "<$:assignee>", "roleDefinitionId": role_id, "appScopeId": scope}


_ROLES = CATALOG_ROLES
_DR = "roleManagement/directory/roleAssignments"

# A data table: one operation per line reads better than the formatter's layout.
# fmt: off
OPS: dict[str, Op] = {op.name: op for op in (
    # catalogs
    Op("catalogs.list", "GET", "list", "EM/catalogs", expect="<$>"),
    Op("catalogs.create", "POST", "write", "EM/catalogs", {"displayName": "New <me>"}),
    Op("catalog.get", "GET", "get", "EM/catalogs/<$>"),
    Op("catalog.update", "PATCH", "write", "EM/catalogs/<$>", {"description": "changed"}),
    # An empty PATCH changes nothing, but still needs the right to edit (no 2xx for a reader).
    Op("catalog.update[no-op]", "PATCH", "write", "EM/catalogs/<$>", {}, noop=True),
    Op("catalog.delete", "DELETE", "write", "EM/catalogs/<$_empty>"),
    # catalog resources and resource requests
    Op("catalog.resources", "GET", "get", "EM/catalogs/<$>/resources", expect="<$:resource>"),
    Op("catalog.resource.get", "GET", "get", "EM/catalogs/<$>/resources/<$:resource>"),
    Op("catalog.resource.roles", "GET", "get", "EM/catalogs/<$>/resources/<$:resource>/roles",
       expect="<$:role:member>"),
    Op("catalog.resource.scopes", "GET", "get", "EM/catalogs/<$>/resources/<$:resource>/scopes",
       expect="<$:scope>"),
    Op("catalog.resourceRoles", "GET", "get", "EM/catalogs/<$>/resourceRoles",
       expect="<$:role:member>"),
    Op("catalog.resourceScopes", "GET", "get", "EM/catalogs/<$>/resourceScopes",
       expect="<$:scope>"),
    Op("catalog.accessPackages", "GET", "get", "EM/catalogs/<$>/accessPackages",
       expect="<$:pkg>"),
    Op("resourceRequests.add", "POST", "write", "EM/resourceRequests", {
        "requestType": "adminAdd", "catalog": {"id": "<$>"},
        "resource": {"originSystem": "AadGroup", "originId": "<own:group>"}}),
    Op("resourceRequests.remove", "POST", "write", "EM/resourceRequests", {
        "requestType": "adminRemove", "catalog": {"id": "<$>"},
        "resource": {"id": "<$:removable>"}}),
    Op("resourceRequests.list", "GET", "list", "EM/resourceRequests", expect="<$:resreq>"),
    Op("resourceRequest.get", "GET", "get", "EM/resourceRequests/<$:resreq>"),
    # access packages
    Op("packages.list", "GET", "list", "EM/accessPackages", expect="<$:pkg>"),
    Op("packages.create", "POST", "write", "EM/accessPackages",
       {"displayName": "New <me>", "catalog": {"id": "<$>"}}),
    Op("packages.create[no-catalog]", "POST", "write", "EM/accessPackages",
       {"displayName": "New <me>"}),
    Op("package.get", "GET", "get", "EM/accessPackages/<$:pkg>"),
    Op("package.update", "PATCH", "write", "EM/accessPackages/<$:pkg>",
       {"displayName": "Renamed", "description": "changed"}),
    Op("package.update[no-op]", "PATCH", "write", "EM/accessPackages/<$:pkg>", {}, noop=True),
    Op("package.hide", "PATCH", "write", "EM/accessPackages/<$:pkg>", {"isHidden": True}),
    Op("package.delete", "DELETE", "write", "EM/accessPackages/<$:pkg_del>"),
    Op("package.catalog", "GET", "get", "EM/accessPackages/<$:pkg>/catalog"),
    Op("package.rrs.list", "GET", "get", "EM/accessPackages/<$:pkg>/resourceRoleScopes",
       expect="<$:rrs>"),
    Op("package.rrs.get", "GET", "get", "EM/accessPackages/<$:pkg>/resourceRoleScopes/<$:rrs>"),
    Op("package.rrs.add", "POST", "write", "EM/accessPackages/<$:pkg>/resourceRoleScopes",
       {"role": {"id": "<$:role:owner>"}, "scope": {"id": "<$:scope>"}}),
    Op("package.rrs.remove", "DELETE", "write",
       "EM/accessPackages/<$:pkg>/resourceRoleScopes/<$:rrs>"),
    Op("package.incompatiblePackages", "GET", "get",
       "EM/accessPackages/<$:pkg>/incompatibleAccessPackages", expect="<$:pkg2>"),
    Op("package.incompatibleWith", "GET", "get",
       "EM/accessPackages/<$:pkg2>/accessPackagesIncompatibleWith", expect="<$:pkg>"),
    Op("package.incompatiblePackages.add", "POST", "write",
       "EM/accessPackages/<$:pkg>/incompatibleAccessPackages/$ref",
       _ref("identityGovernance/entitlementManagement/accessPackages", "$:pkg3")),
    Op("package.incompatiblePackages.remove", "DELETE", "write",
       "EM/accessPackages/<$:pkg>/incompatibleAccessPackages/<$:pkg2>/$ref"),
    Op("package.incompatibleGroups", "GET", "get",
       "EM/accessPackages/<$:pkg>/incompatibleGroups", expect="<$:sod_group>"),
    Op("package.incompatibleGroups.add", "POST", "write",
       "EM/accessPackages/<$:pkg>/incompatibleGroups/$ref", _ref("groups", "$:new_sod_group")),
    Op("package.incompatibleGroups.remove", "DELETE", "write",
       "EM/accessPackages/<$:pkg>/incompatibleGroups/<$:sod_group>/$ref"),
    # entitlement-management role management
    Op("roleDefinitions.list", "GET", "get", "RM/roleDefinitions", expect="<creator_role>"),
    Op("roleDefinition.get", "GET", "get", "RM/roleDefinitions/<creator_role>"),
    Op("roleAssignments.list", "GET", "list", "RM/roleAssignments", expect="<$:ra>"),
    Op("roleAssignment.get", "GET", "get", "RM/roleAssignments/<$:ra>"),
    *(Op(f"roleAssignments.create[{key}]", "POST", "write", "RM/roleAssignments",
         _assign(role_id)) for key, role_id in _ROLES.items()),
    Op("roleAssignments.create[creator]", "POST", "write", "RM/roleAssignments",
       _assign(CATALOG_CREATOR.id, "/")),
    *(Op(f"roleAssignment.delete[{key}]", "DELETE", "write", f"RM/roleAssignments/<$:ra:{key}>")
      for key in (*_ROLES, "creator")),
    # audit log
    Op("audits.list", "GET", "list", "auditLogs/directoryAudits", expect="<$:event>"),
    Op("audit.get", "GET", "get", "auditLogs/directoryAudits/<$:event>"),
    # directory: users
    Op("users.list", "GET", "list", "users", expect="<mark>"),
    Op("users.create", "POST", "write", "users",
       {"userPrincipalName": f"new.<me>@{DOMAIN}", "displayName": "New user"}),
    Op("me", "GET", "get", "me"),
    Op("user.get", "GET", "get", "users/<$:user>"),
    Op("user.update", "PATCH", "write", "users/<$:user>", {"jobTitle": "Changed"}),
    Op("user.manager", "GET", "get", "users/<sofia>/manager"),
    Op("user.manager.set", "PUT", "write", "users/<mark>/manager/$ref", _ref("users", "ines")),
    Op("user.memberOf", "GET", "get", "users/<mark>/memberOf", expect="<finance>"),
    Op("user.transitiveMemberOf", "GET", "get", "users/<mark>/transitiveMemberOf",
       expect="<finance>"),
    # directory: groups
    Op("groups.list", "GET", "list", "groups", expect="<finance>"),
    Op("groups.create", "POST", "write", "groups", {"displayName": "New", "groupTypes": []}),
    Op("groups.create[role-assignable]", "POST", "write", "groups",
       {"displayName": "New tier-0", "isAssignableToRole": True}),
    Op("group.get", "GET", "get", "groups/<finance>"),
    Op("group.members", "GET", "get", "groups/<finance>/members", expect="<mark>"),
    Op("group.members.add", "POST", "write", "groups/<$:group>/members/$ref",
       _ref("users", "$:newcomer")),
    # Membership of a role-assignable group confers its directory roles: role admins only.
    Op("group.members.add[role-assignable]", "POST", "write", "groups/<tier0>/members/$ref",
       _ref("users", "me")),
    Op("group.members.remove", "DELETE", "write", "groups/<$:group>/members/<$:leaver>/$ref"),
    Op("group.owners", "GET", "get", "groups/<finance>/owners", expect="<mark>"),
    Op("group.owners.add", "POST", "write", "groups/<$:group>/owners/$ref",
       _ref("users", "$:newcomer")),
    Op("group.owners.remove", "DELETE", "write", "groups/<$:group>/owners/<$:leaver>/$ref"),
    # directory: applications, sites and directory roles
    Op("applications.list", "GET", "list", "applications", expect="<ledger>"),
    Op("applications.create", "POST", "write", "applications", {"displayName": "New app"}),
    Op("application.get", "GET", "get", "applications/<ledger>"),
    Op("application.owners", "GET", "get", "applications/<ledger>/owners", expect="<mark>"),
    Op("application.owners.add", "POST", "write", "applications/<$:app>/owners/$ref",
       _ref("users", "kenji")),
    Op("sites.list", "GET", "list", "sites", expect="<finsite>"),
    Op("sites.create", "POST", "write", "sites",
       {"displayName": "New site", "webUrl": f"https://sites.{DOMAIN}/new-<me>"}),
    Op("site.get", "GET", "get", "sites/<finsite>"),
    Op("site.administrators", "GET", "get", "sites/<finsite>/administrators", expect="<mark>"),
    Op("site.administrators.add", "POST", "write", "sites/<$:site>/administrators/$ref",
       _ref("users", "kenji")),
    Op("directoryRoles.list", "GET", "list", _DR, expect="<groups_admin>"),
    Op("directoryRoles.create", "POST", "write", _DR, {
        "principalId": "<mark>", "directoryScopeId": "/",
        "roleDefinitionId": DirectoryRole.EXCHANGE_ADMINISTRATOR.value}),
    Op("directoryRoles.delete", "DELETE", "write", f"{_DR}/<groups_admin>"),
    # remit's own: the task list, and explaining a decision (anyone about self; about others
    # with the tenant role-reading right, or the right to manage roles on the named catalog)
    Op("remit.tasks", "GET", "get", "/remit/tasks"),
    Op("remit.explain", "GET", "get", "/remit/explain", query={"task": "catalog:update"}),
    Op("remit.explain[other-user]", "GET", "get", "/remit/explain",
       query={"task": "catalog:update", "user": "<mark>", "catalog": "<$>"}),
    Op("remit.explain[other-user,tenant]", "GET", "get", "/remit/explain",
       query={"task": "catalog:create", "user": "<mark>"}),
)}
# fmt: on


def resolve(value: Any, w: World, scope: str, me: Persona) -> Any:
    """``value`` with its placeholders replaced by the world's ids."""
    if isinstance(value, dict):
        return {k: resolve(v, w, scope, me) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    alias = me.alias or "omar"  # the anonymous caller names someone else's things

    def one(match: re.Match[str]) -> str:
        key = match.group(1).replace("$", scope)
        if key in ("me", "self:user"):
            return w[alias]
        if key == "self:ra":
            return w[f"own:self:{alias}"]
        return w[key]

    return re.sub(r"<([^<>]+)>", one, value)


# ---------------------------------------------------------------- running a cell

STATUS = {"D": 403, "N": 404, "U": 401}


def _listed(response: httpx.Response) -> set[str]:
    return {str(item.get("id")) for item in response.json().get("value", [])}


def verdict(op: Op, expected: str, target: str | None, r: httpx.Response, changed: bool) -> str:
    """'' when the cell holds, otherwise what went wrong."""
    code = r.status_code
    if expected == "A":
        problem = "" if 200 <= code < 300 else f"expected 2xx, got {code} {r.text[:200]}"
        if not problem and target is not None and target not in _listed(r):
            problem = f"{code} but {target} is not in the response"
    elif op.kind == "list" and expected == "N":
        problem = "" if code == 200 else f"expected 200 without the target, got {code}"
        if not problem and target in _listed(r):
            problem = f"{target} is listed"
    elif code != STATUS[expected]:
        problem = f"expected {STATUS[expected]}, got {code} {r.text[:200]}"
    elif "error" not in r.json():
        problem = f"{code} without a Graph error body"
    else:
        problem = ""
    if not problem and op.kind == "write" and changed != (expected == "A" and not op.noop):
        problem = f"{code}, but the database " + ("changed" if changed else "did not change")
    return problem


class Cells:
    """Runs the cells of one test; the database digest taken after a write is the next one's
    "before", so a run of writes costs one digest each."""

    def __init__(self, t: Tenant, w: World, me: Persona) -> None:
        self.t, self.w, self.me = t, w, me
        self.digest: str | None = None

    def run(self, row: Row, expected: str) -> str:
        op, me, scope = OPS[row.op], self.me, row.scope
        path, body = resolve(_url(op.path), self.w, scope, me), resolve(op.body, self.w, scope, me)
        target = resolve(op.expect, self.w, scope, me)
        params = resolve(op.query, self.w, scope, me)
        if op.kind == "list":
            params = {"$filter": f"id eq '{target}'"}
        if op.kind == "write" and self.digest is None:
            self.digest = fingerprint(self.t.db)
        headers = self.t.headers(me.alias) if me.alias else {}
        response = self.t.client.request(op.method, path, json=body, params=params, headers=headers)
        changed = False
        if op.kind == "write":
            before, self.digest = self.digest, fingerprint(self.t.db)
            changed = self.digest != before
        problem = verdict(op, expected, target, response, changed)
        return f"{me.key} x {row.id} ({op.method} {path}): {problem}" if problem else ""


def run_rows(t: Tenant, w: World, rows: list[Row], me: Persona, outcome: str | None) -> None:
    """Reads first, so that no write of this persona moves what a read looks at."""
    cells = Cells(t, w, me)
    ordered = sorted(rows, key=lambda r: OPS[r.op].kind == "write")
    failures = [cells.run(r, outcome or r.expect[me.key]) for r in ordered]
    failures = [f for f in failures if f]
    assert not failures, f"{len(failures)} of {len(rows)} cells wrong:\n" + "\n".join(failures)


@pytest.fixture
def world(tenant: Tenant) -> World:
    return build_world(tenant)


CASES = [
    pytest.param(p, scope, id=f"{p.key}-{scope}")
    for p in PERSONAS
    for scope in SCOPES
    if any(r.scope == scope and r.expect[p.key] != "-" for r in TABLE)
]


@pytest.mark.parametrize(("persona", "scope"), CASES)
def test_matrix(tenant: Tenant, world: World, persona: Persona, scope: str) -> None:
    rows = [r for r in TABLE if r.scope == scope and r.expect[persona.key] != "-"]
    run_rows(tenant, world, rows, persona, None)


def test_anonymous_gets_401_everywhere_and_changes_nothing(tenant: Tenant, world: World) -> None:
    run_rows(tenant, world, list(TABLE), ANONYMOUS, "U")


# ---------------------------------------------------------------- the table covers the API

# Routes outside the Graph namespace that have no line, each with its reason.
EXEMPT = {
    ("GET", "/remit/health"): "liveness probe: no data, and no token by design",
}


def test_every_route_has_lines_in_the_matrix(tenant: Tenant) -> None:
    paths = tenant.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = {
        (method.upper(), re.sub(r"\{[^{}]+\}", "{}", path))
        for path, methods in paths.items()
        for method in methods
    }
    covered = {(OPS[r.op].method, OPS[r.op].route) for r in TABLE}
    missing = sorted(routes - covered - set(EXEMPT))
    assert not missing, "routes without a line in the matrix:\n" + "\n".join(map(str, missing))
    assert not covered - routes, f"lines for routes that do not exist: {covered - routes}"
    assert set(EXEMPT) <= routes, "stale exemptions"
    assert not any(path.startswith("/v1.0/") for _, path in EXEMPT), "/v1.0 routes need lines"
    assert set(OPS) == {r.op for r in TABLE}, "every operation needs at least one line"
    assert len({r.id for r in TABLE}) == len(TABLE), "a line appears twice"
