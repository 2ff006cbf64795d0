"""R1: the delegation matrix of spec §1.2 (with the resource rule of §2.2), through HTTP.

``TABLE_TEXT`` is the one source of truth: each line is an API operation on one scope, with the
expected outcome for every persona (``tests/matrix_support.py`` says who they are and builds the
world). Scopes: ``own`` = the catalog on which the persona holds its role, or a directory object
it owns; ``other`` = someone else's; ``tenant`` = no catalog; ``self`` = the caller's own user,
role assignment, or requests and assignments (made in a catalog where they hold no role).
Outcomes:

* ``A`` allowed: 2xx; a list holds the target; a write changes the database (a no-op does not).
* ``D`` denied: 403 with a Graph error, and a write changes nothing (every table is compared).
* ``N`` not found: the target is outside the persona's scope, so for them it does not exist:
  404 (a top-level list simply leaves it out), and a write changes nothing.
* ``-`` not applicable (the persona has nothing in that scope).

Where a line's operation reveals a detail of an object (a request's delivery errors), ``A``
also needs the detail in the answer, and ``D`` may be either 403 or an answer without it (the
object is visible, the detail is not).

The anonymous caller is one more column, implicit: every line answers 401 and changes nothing.

Each test builds the tenant once and runs every line of one scope for one persona (reads first,
then writes, each on a target reserved for it), and reports every failing cell at once.

Where the spec is silent, the lines follow the role descriptions and the (impl) notes: readers
and assignment managers see the catalog, its resources, packages, role assignments and audit
events; a catalog creator without a catalog sees nothing (its "access denied" is a 404 here,
since every object is outside its scope); role-assignment lists show only explicit assignments,
so a role held through a group is not listed as the caller's own. Approval is a right a policy
gives, not a role: the plain member is the approver of the ``own`` and ``other`` requests, so
sees them (not in the catalog's lists, which are for its roles) and decides them; everyone else
who sees a request gets 403 when deciding, including administrators and the requestor named as
an approver of their own request. An object a persona sees (their own request or assignment, a
request they approve) answers 403, not 404, to what they may not do with it.
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
from remit.settings import Settings
from tests.factories import DOMAIN, EM, RM, Tenant
from tests.matrix_support import (
    ALL_SCOPES,
    ANONYMOUS,
    CATALOG_ROLES,
    PERSONAS,
    Persona,
    World,
    auto_policy,
    build_world,
    direct_policy,
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
# ---- assignment policies (§1.2: create and edit = owner, APM, admins; automatic ones IGA/GA only)
policies.list                             own     A  A   N   A   A   A    A   N  N   A
policies.list                             other   A  A   N   N   N   N    N   N  N   N
policy.get                                own     A  A   N   A   A   A    A   N  N   A
policy.get                                other   A  A   N   N   N   N    N   N  N   N
policy.questions                          own     A  A   N   A   A   A    A   N  N   A
policy.questions                          other   A  A   N   N   N   N    N   N  N   N
policy.questions.add                      own     A  A   N   A   A   D    D   N  N   A
policy.questions.add                      other   A  A   N   N   N   N    N   N  N   N
policy.extensionStages                    own     A  A   N   A   A   A    A   N  N   A
policy.extensionStages                    other   A  A   N   N   N   N    N   N  N   N
policy.extensionStages.add                own     A  A   N   A   A   D    D   N  N   A
policy.extensionStages.add                other   A  A   N   N   N   N    N   N  N   N
package.policies                          own     A  A   N   A   A   A    A   N  N   A
package.policies                          other   A  A   N   N   N   N    N   N  N   N
policies.create                           own     A  A   N   A   A   D    D   N  N   A
policies.create                           other   A  A   N   N   N   N    N   N  N   N
package.policies.create                   own     A  A   N   A   A   D    D   N  N   A
package.policies.create                   other   A  A   N   N   N   N    N   N  N   N
policy.update                             own     A  A   N   A   A   D    D   N  N   A
policy.update                             other   A  A   N   N   N   N    N   N  N   N
policy.update[no-op]                      own     A  A   N   A   A   D    D   N  N   A
policy.update[no-op]                      other   A  A   N   N   N   N    N   N  N   N
policy.delete                             own     A  A   N   A   A   D    D   N  N   A
policy.delete                             other   A  A   N   N   N   N    N   N  N   N
policies.create[auto]                     own     A  A   N   D   D   D    D   N  N   D
policies.create[auto]                     other   A  A   N   N   N   N    N   N  N   N
policy.update[auto]                       own     A  A   N   D   D   D    D   N  N   D
policy.update[auto]                       other   A  A   N   N   N   N    N   N  N   N
policy.update[to-auto]                    own     A  A   N   D   D   D    D   N  N   D
policy.update[to-auto]                    other   A  A   N   N   N   N    N   N  N   N
policy.delete[auto]                       own     A  A   N   D   D   D    D   N  N   D
policy.delete[auto]                       other   A  A   N   N   N   N    N   N  N   N
# ---- what the caller may request (§4.4; filterByCurrentUser(on='allowedRequestor')): requestors
# only; role holders find the package, with nothing they can use
packages.byCurrentUser                    own     N  N   N   N   N   N    N   N  N   N
packages.byCurrentUser                    self    A  A   A   A   A   A    A   A  A   A
package.getApplicablePolicyRequirements   own     A  A   N   A   A   A    A   N  N   A
package.getApplicablePolicyRequirements   other   A  A   N   N   N   N    N   N  N   N
package.getApplicablePolicyRequirements   self    A  A   A   A   A   A    A   A  A   A
# ---- requests (§1.2: view = owner, APM, APAM, reader, admins; direct assignment and removal,
# reprocess, cancel = owner, APM, APAM, admins, and the requestor cancels their own; deleting a
# completed record = IGA). The member approves the own and other requests, so sees them.
requests.list                             own     A  A   N   A   A   A    A   N  N   A
requests.list                             other   A  A   N   N   N   N    N   N  N   N
requests.list                             self    A  A   A   A   A   A    A   A  A   A
request.get                               own     A  A   N   A   A   A    A   N  A   A
request.get                               other   A  A   N   N   N   N    N   N  A   N
request.get                               self    A  A   A   A   A   A    A   A  A   A
requests.create[adminAdd]                 own     A  A   N   A   A   A    D   N  N   A
requests.create[adminAdd]                 other   A  A   N   N   N   N    N   N  N   N
requests.create[adminUpdate]              own     A  A   N   A   A   A    D   N  N   A
requests.create[adminUpdate]              other   A  A   N   N   N   N    N   N  N   N
requests.create[adminRemove]              own     A  A   N   A   A   A    D   N  N   A
requests.create[adminRemove]              other   A  A   N   N   N   N    N   N  N   N
requests.create[userAdd]                  self    A  A   A   A   A   A    A   A  A   A
request.cancel                            own     A  A   N   A   A   A    D   N  D   A
request.cancel                            other   A  A   N   N   N   N    N   N  D   N
request.cancel                            self    A  A   A   A   A   A    A   A  A   A
request.reprocess                         own     A  A   N   A   A   A    D   N  N   A
request.reprocess                         other   A  A   N   N   N   N    N   N  N   N
request.delete                            own     A  A   N   D   D   D    D   N  D   D
request.delete                            other   A  A   N   N   N   N    N   N  D   N
requests.byCurrentUser[target]            own     N  N   N   N   N   N    N   N  N   N
requests.byCurrentUser[target]            self    A  A   A   A   A   A    A   A  A   A
requests.byCurrentUser[createdBy]         self    A  A   A   A   A   A    A   A  A   A
requests.byCurrentUser[approver]          own     N  N   N   N   N   N    N   N  A   N
requests.byCurrentUser[approver]          other   N  N   N   N   N   N    N   N  A   N
requests.byCurrentUser[approver]          self    N  N   N   N   N   N    N   N  N   N
# A request's delivery errors (§1.2: owner, APM, APAM, admins; not the reader, who sees the
# request without them)
request.get[delivery-error]               own     A  A   N   A   A   A    D   N  N   A
request.get[delivery-error]               other   A  A   N   N   N   N    N   N  N   N
# ---- approvals (the stage's approvers decide, never the requestor nor the target; whoever else
# sees the request gets 403). Every persona is named an approver of their own self request.
approval.get                              own     A  A   N   A   A   A    A   N  A   A
approval.get                              other   A  A   N   N   N   N    N   N  A   N
approval.get                              self    A  A   A   A   A   A    A   A  A   A
approval.stages                           own     A  A   N   A   A   A    A   N  A   A
approval.stages                           other   A  A   N   N   N   N    N   N  A   N
approval.stages                           self    A  A   A   A   A   A    A   A  A   A
approval.stage                            own     A  A   N   A   A   A    A   N  A   A
approval.stage                            other   A  A   N   N   N   N    N   N  A   N
approval.stage                            self    A  A   A   A   A   A    A   A  A   A
approval.decide                           own     D  D   N   D   D   D    D   N  A   D
approval.decide                           other   D  D   N   N   N   N    N   N  A   N
approval.decide                           self    D  D   D   D   D   D    D   D  D   D
approvals.byCurrentUser                   own     N  N   N   N   N   N    N   N  A   N
approvals.byCurrentUser                   other   N  N   N   N   N   N    N   N  A   N
approvals.byCurrentUser                   self    N  N   N   N   N   N    N   N  N   N
# ---- assignments (§1.2: view = owner, APM, APAM, reader, admins; reprocess = not the reader)
assignments.list                          own     A  A   N   A   A   A    A   N  N   A
assignments.list                          other   A  A   N   N   N   N    N   N  N   N
assignments.list                          self    A  A   A   A   A   A    A   A  A   A
assignment.get                            own     A  A   N   A   A   A    A   N  N   A
assignment.get                            other   A  A   N   N   N   N    N   N  N   N
assignment.get                            self    A  A   A   A   A   A    A   A  A   A
assignments.additionalAccess              own     A  A   N   A   A   A    A   N  N   A
assignments.additionalAccess              other   A  A   N   N   N   N    N   N  N   N
assignment.reprocess                      own     A  A   N   A   A   A    D   N  N   A
assignment.reprocess                      other   A  A   N   N   N   N    N   N  N   N
assignment.reprocess                      self    A  A   D   D   D   D    D   D  D   D
assignments.byCurrentUser[target]         own     N  N   N   N   N   N    N   N  N   N
assignments.byCurrentUser[target]         self    A  A   A   A   A   A    A   A  A   A
assignments.byCurrentUser[createdBy]      self    A  A   A   A   A   A    A   A  A   A
# ---- custom extensions (read: any catalog role; write: owner, admins)
catalog.extensions                        own     A  A   N   A   A   A    A   N  N   A
catalog.extensions                        other   A  A   N   N   N   N    N   N  N   N
catalog.extension.get                     own     A  A   N   A   A   A    A   N  N   A
catalog.extension.get                     other   A  A   N   N   N   N    N   N  N   N
catalog.extensions.create                 own     A  A   N   A   D   D    D   N  N   A
catalog.extensions.create                 other   A  A   N   N   N   N    N   N  N   N
catalog.extension.update                  own     A  A   N   A   D   D    D   N  N   A
catalog.extension.update                  other   A  A   N   N   N   N    N   N  N   N
catalog.extension.delete                  own     A  A   N   A   D   D    D   N  N   A
catalog.extension.delete                  other   A  A   N   N   N   N    N   N  N   N
# ---- connected organizations and settings (§1.2: manage = admins and Connected Organization
# Administrators; settings = admins; decision 0012: any entitlement-management role reads; a
# creator without a catalog, a User Administrator or a plain member get 403)
connectedOrgs.list                        tenant  A  A   D   A   A   A    A   D  D   A
connectedOrgs.create                      tenant  A  A   D   D   D   D    D   D  D   D
connectedOrg.get                          tenant  A  A   D   A   A   A    A   D  D   A
connectedOrg.update                       tenant  A  A   D   D   D   D    D   D  D   D
connectedOrg.delete                       tenant  A  A   D   D   D   D    D   D  D   D
connectedOrg.internalSponsors             tenant  A  A   D   A   A   A    A   D  D   A
connectedOrg.internalSponsors.add         tenant  A  A   D   D   D   D    D   D  D   D
connectedOrg.internalSponsors.remove      tenant  A  A   D   D   D   D    D   D  D   D
connectedOrg.externalSponsors             tenant  A  A   D   A   A   A    A   D  D   A
connectedOrg.externalSponsors.add         tenant  A  A   D   D   D   D    D   D  D   D
connectedOrg.externalSponsors.remove      tenant  A  A   D   D   D   D    D   D  D   D
settings.get                              tenant  A  A   D   A   A   A    A   D  D   A
settings.update                           tenant  A  A   D   D   D   D    D   D  D   D
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
# for the line's scope (``<$:pkg>`` is ``own:pkg`` on an ``own`` line; on a ``self`` line
# ``<$:pending>`` is the caller's own, ``self:pending:<alias>``), ``<me>`` for the caller, and
# ``<=text>`` for the text itself (a path parameter that is not an id, such as ``on='target'``).
# Paths start with ``EM/`` (entitlement management), ``RM/`` (its role management), ``/``
# (outside Graph), or are under ``/v1.0/``.


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
    reveals: str | None = None  # a detail only the allowed may see (see the module doc)

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
_EXT = "EM/catalogs/<$>/accessPackageCustomWorkflowExtensions"

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
    # assignment policies
    Op("policies.list", "GET", "list", "EM/assignmentPolicies", expect="<$:policy>"),
    Op("policy.get", "GET", "get", "EM/assignmentPolicies/<$:policy>"),
    Op("policy.questions", "GET", "get", "EM/assignmentPolicies/<$:policy>/questions",
       expect="<$:question>"),
    Op("policy.questions.add", "POST", "write", "EM/assignmentPolicies/<$:policy_put>/questions",
       {"@odata.type": "#microsoft.graph.accessPackageTextInputQuestion", "text": "Cost centre?"}),
    Op("policy.extensionStages", "GET", "get",
       "EM/assignmentPolicies/<$:policy>/customExtensionStageSettings"),
    Op("policy.extensionStages.add", "POST", "write",
       "EM/assignmentPolicies/<$:policy_put>/customExtensionStageSettings",
       {"stage": "assignmentRequestCreated", "customExtension": {"id": "<$:ext>"}}),
    Op("package.policies", "GET", "get", "EM/accessPackages/<$:lc>/assignmentPolicies",
       expect="<$:policy>"),
    Op("policies.create", "POST", "write", "EM/assignmentPolicies",
       direct_policy("<$:lc>", "New <me>")),
    Op("package.policies.create", "POST", "write", "EM/accessPackages/<$:lc>/assignmentPolicies",
       direct_policy("<$:lc>", "New <me>")),
    Op("policy.update", "PUT", "write", "EM/assignmentPolicies/<$:policy_put>",
       direct_policy("<$:lc>", "Replaced")),
    # The world made it with this very body: a PUT that changes nothing (still needs the right).
    Op("policy.update[no-op]", "PUT", "write", "EM/assignmentPolicies/<$:policy_same>",
       direct_policy("<$:lc>", "Unchanged"), noop=True),
    Op("policy.delete", "DELETE", "write", "EM/assignmentPolicies/<$:policy_del>"),
    Op("policies.create[auto]", "POST", "write", "EM/assignmentPolicies",
       auto_policy("<$:auto_new_pkg>")),
    Op("policy.update[auto]", "PUT", "write", "EM/assignmentPolicies/<$:auto_put>",
       auto_policy("<$:auto_put_pkg>", "Renamed")),
    # A delegate may not turn a request policy into an automatic one either.
    Op("policy.update[to-auto]", "PUT", "write", "EM/assignmentPolicies/<$:to_auto>",
       auto_policy("<$:to_auto_pkg>")),
    Op("policy.delete[auto]", "DELETE", "write", "EM/assignmentPolicies/<$:auto_del>"),
    Op("packages.byCurrentUser", "GET", "list",
       "EM/accessPackages/filterByCurrentUser(on='<=allowedRequestor>')",
       expect="<$:requestable>"),
    # A POST that only reads: allowed or not, it changes nothing.
    Op("package.getApplicablePolicyRequirements", "POST", "write",
       "EM/accessPackages/<$:requestable>/getApplicablePolicyRequirements", noop=True),
    # assignment requests
    Op("requests.list", "GET", "list", "EM/assignmentRequests", expect="<$:pending>"),
    Op("request.get", "GET", "get", "EM/assignmentRequests/<$:pending>"),
    Op("requests.create[adminAdd]", "POST", "write", "EM/assignmentRequests", {
        "requestType": "adminAdd", "assignment": {
            "targetId": "<$:lc_assignee>", "assignmentPolicyId": "<$:direct>",
            "accessPackageId": "<$:lc>"}}),
    Op("requests.create[adminUpdate]", "POST", "write", "EM/assignmentRequests",
       {"requestType": "adminUpdate", "assignment": {"id": "<$:held_update>"}}),
    Op("requests.create[adminRemove]", "POST", "write", "EM/assignmentRequests",
       {"requestType": "adminRemove", "assignment": {"id": "<$:held_remove>"}}),
    Op("requests.create[userAdd]", "POST", "write", "EM/assignmentRequests", {
        "requestType": "userAdd",
        "assignment": {"targetId": "<me>", "accessPackageId": "<$:requestable>"}}),
    Op("request.cancel", "POST", "write", "EM/assignmentRequests/<$:pending_cancel>/cancel"),
    Op("request.reprocess", "POST", "write", "EM/assignmentRequests/<$:failed>/reprocess"),
    Op("request.delete", "DELETE", "write", "EM/assignmentRequests/<$:done>"),
    *(Op(f"requests.byCurrentUser[{on}]", "GET", "list",
         f"EM/assignmentRequests/filterByCurrentUser(on='<={on}>')", expect="<$:pending>")
      for on in ("target", "createdBy", "approver")),
    Op("request.get[delivery-error]", "GET", "get", "EM/assignmentRequests/<$:failed>",
       reveals="<$:failed_error>"),
    # approvals
    Op("approval.get", "GET", "get", "EM/accessPackageAssignmentApprovals/<$:pending>"),
    Op("approval.stages", "GET", "get", "EM/accessPackageAssignmentApprovals/<$:pending>/stages",
       expect="<$:pending:stage>"),
    Op("approval.stage", "GET", "get",
       "EM/accessPackageAssignmentApprovals/<$:pending>/stages/<$:pending:stage>"),
    Op("approval.decide", "PATCH", "write",
       "EM/accessPackageAssignmentApprovals/<$:to_decide>/stages/<$:to_decide:stage>",
       {"reviewResult": "Approve", "justification": "approved in the matrix"}),
    Op("approvals.byCurrentUser", "GET", "list",
       "EM/accessPackageAssignmentApprovals/filterByCurrentUser(on='<=approver>')",
       expect="<$:pending>"),
    # assignments
    Op("assignments.list", "GET", "list", "EM/assignments", expect="<$:held>"),
    Op("assignment.get", "GET", "get", "EM/assignments/<$:held>"),
    Op("assignments.additionalAccess", "GET", "get",
       "EM/assignments/additionalAccess(accessPackageId='<$:lc>',"
       "incompatibleAccessPackageId='<$:lc_extra>')", expect="<$:held>"),
    Op("assignment.reprocess", "POST", "write", "EM/assignments/<$:held_reprocess>/reprocess"),
    *(Op(f"assignments.byCurrentUser[{on}]", "GET", "list",
         f"EM/assignments/filterByCurrentUser(on='<={on}>')", expect="<$:held>")
      for on in ("target", "createdBy")),
    # custom extensions
    Op("catalog.extensions", "GET", "get", _EXT, expect="<$:ext>"),
    Op("catalog.extension.get", "GET", "get", f"{_EXT}/<$:ext>"),
    Op("catalog.extensions.create", "POST", "write", _EXT, {
        "displayName": "New <me>",
        "endpointConfiguration": {"url": f"https://hooks.{DOMAIN}/new"}}),
    Op("catalog.extension.update", "PATCH", "write", f"{_EXT}/<$:ext>", {"description": "changed"}),
    Op("catalog.extension.delete", "DELETE", "write", f"{_EXT}/<$:ext_del>"),
    # connected organizations and the tenant settings
    Op("connectedOrgs.list", "GET", "list", "EM/connectedOrganizations", expect="<tenant:org>"),
    Op("connectedOrgs.create", "POST", "write", "EM/connectedOrganizations", {
        "displayName": "Partner", "identitySources": [{
            "@odata.type": "#microsoft.graph.domainIdentitySource",
            "domainName": "partner.example", "displayName": "Partner"}]}),
    Op("connectedOrg.get", "GET", "get", "EM/connectedOrganizations/<tenant:org>"),
    Op("connectedOrg.update", "PATCH", "write", "EM/connectedOrganizations/<tenant:org>",
       {"description": "changed"}),
    Op("connectedOrg.delete", "DELETE", "write", "EM/connectedOrganizations/<tenant:org_del>"),
    *(op for kind in ("internal", "external") for op in (
        Op(f"connectedOrg.{kind}Sponsors", "GET", "get",
           f"EM/connectedOrganizations/<tenant:org>/{kind}Sponsors",
           expect=f"<tenant:{kind}_sponsor>"),
        Op(f"connectedOrg.{kind}Sponsors.add", "POST", "write",
           f"EM/connectedOrganizations/<tenant:org>/{kind}Sponsors/$ref",
           _ref("users", f"tenant:new_{kind}")),
        Op(f"connectedOrg.{kind}Sponsors.remove", "DELETE", "write",
           f"EM/connectedOrganizations/<tenant:org>/{kind}Sponsors/<tenant:{kind}_sponsor>/$ref"),
    )),
    Op("settings.get", "GET", "get", "EM/settings"),
    Op("settings.update", "PATCH", "write", "EM/settings",
       {"externalUserLifecycleAction": "none"}),
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
    if isinstance(value, list):
        return [resolve(v, w, scope, me) for v in value]
    if not isinstance(value, str):
        return value
    alias = me.alias or "omar"  # the anonymous caller names someone else's things

    def one(match: re.Match[str]) -> str:
        key = match.group(1).replace("$", scope)
        if key.startswith("="):
            return key[1:]
        if key in ("me", "self:user"):
            return w[alias]
        if key == "self:ra":
            return w[f"own:self:{alias}"]
        if f"{key}:{alias}" in w.ids:  # the caller's own: self:pending is self:pending:<alias>
            return w.ids[f"{key}:{alias}"]
        return w[key]

    return re.sub(r"<([^<>]+)>", one, value)


# ---------------------------------------------------------------- running a cell

STATUS = {"D": 403, "N": 404, "U": 401}


def _listed(response: httpx.Response) -> set[str]:
    return {str(item.get("id")) for item in response.json().get("value", [])}


def verdict(
    op: Op,
    expected: str,
    target: str | None,
    r: httpx.Response,
    changed: bool,
    detail: str | None = None,
) -> str:
    """'' when the cell holds, otherwise what went wrong."""
    code = r.status_code
    if detail is not None and expected == "D" and 200 <= code < 300:
        problem = f"{code} showing {detail!r}" if detail in r.text else ""
    elif expected == "A":
        problem = "" if 200 <= code < 300 else f"expected 2xx, got {code} {r.text[:200]}"
        if not problem and target is not None and target not in _listed(r):
            problem = f"{code} but {target} is not in the response"
        if not problem and detail is not None and detail not in r.text:
            problem = f"{code} but the response does not show {detail!r}: {r.text[:300]}"
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
        detail = resolve(op.reveals, self.w, scope, me)
        problem = verdict(op, expected, target, response, changed, detail)
        return f"{me.key} x {row.id} ({op.method} {path}): {problem}" if problem else ""


def run_rows(t: Tenant, w: World, rows: list[Row], me: Persona, outcome: str | None) -> None:
    """Reads first, so that no write of this persona moves what a read looks at."""
    cells = Cells(t, w, me)
    ordered = sorted(rows, key=lambda r: OPS[r.op].kind == "write")
    failures = [cells.run(r, outcome or r.expect[me.key]) for r in ordered]
    failures = [f for f in failures if f]
    assert not failures, f"{len(failures)} of {len(rows)} cells wrong:\n" + "\n".join(failures)


@pytest.fixture
def world(request: pytest.FixtureRequest, tenant: Tenant, settings: Settings) -> World:
    """The world, with the lifecycle objects of the test's scope only (all for the anonymous)."""
    callspec = getattr(request.node, "callspec", None)
    scope = callspec.params.get("scope") if callspec else None
    return build_world(tenant, settings, [scope] if scope else ALL_SCOPES)


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
