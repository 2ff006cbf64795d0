"""Graph JSON shapes of remit's objects (graph-api §A.4). Pure functions, no I/O."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from remit.authz.roles import DIRECTORY_ROLE_NAMES, EM_ROLES, DirectoryRole, EmRole
from remit.models.audit import AuditEvent
from remit.models.authz import RoleAssignment
from remit.models.catalogs import (
    Catalog,
    CatalogResource,
    ResourceRequest,
    ResourceRole,
    ResourceScope,
)
from remit.models.directory import (
    Application,
    AppRole,
    DirectoryRoleAssignment,
    Group,
    Site,
    SiteRole,
    User,
)
from remit.models.packages import AccessPackage, ResourceRoleScope
from remit.models.vocabulary import GRAPH

Item = dict[str, Any]


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def user(u: User) -> dict[str, Any]:
    return {
        "@odata.type": GRAPH + "user",
        "id": u.id,
        "userPrincipalName": u.user_principal_name,
        "displayName": u.display_name,
        "mail": u.mail,
        "userType": u.user_type,
        "accountEnabled": u.account_enabled,
        "department": u.department,
        "jobTitle": u.job_title,
        "createdDateTime": iso(u.created_at),
    }


def group(g: Group) -> dict[str, Any]:
    types = ["Unified"] if g.kind == "microsoft365" else []
    if g.membership_rule:
        types.append("DynamicMembership")
    return {
        "@odata.type": GRAPH + "group",
        "id": g.id,
        "displayName": g.display_name,
        "description": g.description,
        "groupTypes": types,
        "securityEnabled": g.kind == "security",
        "mailEnabled": g.kind == "microsoft365",
        "mailNickname": g.mail_nickname,
        "isAssignableToRole": g.is_assignable_to_role,
        "membershipRule": g.membership_rule,
        "membershipRuleProcessingState": "On" if g.membership_rule else None,
        "onPremisesSyncEnabled": g.on_premises_sync_enabled or None,
        "createdDateTime": iso(g.created_at),
    }


def app_role(r: AppRole) -> dict[str, Any]:
    return {
        "id": r.id,
        "displayName": r.display_name,
        "value": r.value,
        "description": r.description or r.display_name,
        "allowedMemberTypes": ["User"],
        "isEnabled": True,
    }


def application(a: Application, roles: list[AppRole]) -> dict[str, Any]:
    return {
        "@odata.type": GRAPH + "application",
        "id": a.id,
        "appId": a.app_id,
        "displayName": a.display_name,
        "description": a.description,
        "appRoles": [app_role(r) for r in roles],
        "createdDateTime": iso(a.created_at),
    }


def site(s: Site, roles: list[SiteRole]) -> dict[str, Any]:
    return {
        "@odata.type": GRAPH + "site",
        "id": s.id,
        "displayName": s.display_name,
        "name": s.name,
        "webUrl": s.web_url,
        "description": s.description,
        "createdDateTime": iso(s.created_at),
        "roles": [{"id": r.id, "displayName": r.display_name} for r in roles],
    }


def directory_role_assignment(a: DirectoryRoleAssignment) -> dict[str, Any]:
    return {
        "id": a.id,
        "principalId": a.principal_id,
        "roleDefinitionId": a.role_definition_id,
        "directoryScopeId": "/",
        "roleDefinition": {
            "id": a.role_definition_id,
            "displayName": DIRECTORY_ROLE_NAMES.get(DirectoryRole(a.role_definition_id)),
        },
    }


def _named(
    x: Catalog | CatalogResource | ResourceRole | ResourceScope | AccessPackage,
) -> dict[str, Any]:
    return {"id": x.id, "displayName": x.display_name, "description": x.description}


def _dated(x: Catalog | CatalogResource | AccessPackage) -> Item:
    return {"createdDateTime": iso(x.created_at), "modifiedDateTime": iso(x.modified_at)}


def _from_origin(x: CatalogResource | ResourceRole | ResourceScope) -> Item:
    """What a resource, role or scope says of itself and of where it comes from."""
    return {**_named(x), "originId": x.origin_id, "originSystem": x.origin_system}


def catalog(c: Catalog) -> dict[str, Any]:
    return {
        **_named(c),
        "catalogType": c.catalog_type,
        "state": c.state,
        "isExternallyVisible": c.is_externally_visible,
        **_dated(c),
    }


def resource(r: CatalogResource) -> dict[str, Any]:
    return {**_from_origin(r), **_dated(r), "attributes": []}


def resource_role(r: ResourceRole) -> dict[str, Any]:
    return _from_origin(r)


def resource_scope(s: ResourceScope) -> dict[str, Any]:
    return {**_from_origin(s), "isRootScope": s.is_root_scope}


def resource_request(r: ResourceRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "requestType": r.request_type,
        "state": r.state,
        "createdDateTime": iso(r.created_at),
    }


def access_package(p: AccessPackage) -> dict[str, Any]:
    return {
        **_named(p),
        "isHidden": p.is_hidden,
        **_dated(p),
    }


def resource_role_scope(rrs: ResourceRoleScope) -> dict[str, Any]:
    return {"id": f"{rrs.role_id}_{rrs.scope_id}", "createdDateTime": iso(rrs.created_at)}


def role_definition(r: EmRole) -> dict[str, Any]:
    return {
        "id": r.id,
        "displayName": r.display_name,
        "description": r.display_name,
        "isBuiltIn": True,
        "isEnabled": True,
        "templateId": r.id,
        "version": "1.0",
        "resourceScopes": [],
        "condition": None,
        "rolePermissions": [
            {
                "allowedResourceActions": list(r.allowed_resource_actions),
                "excludedResourceActions": [],
                "condition": None,
            }
        ],
    }


def role_assignment(a: RoleAssignment) -> dict[str, Any]:
    return {
        "id": a.id,
        "principalId": a.principal_id,
        "roleDefinitionId": a.role_definition_id,
        "appScopeId": a.app_scope_id,
        "directoryScopeId": None,
        "condition": None,
    }


def em_role_definition(role_id: str) -> dict[str, Any] | None:
    role = EM_ROLES.get(role_id)
    return role_definition(role) if role else None


def directory_audit(e: AuditEvent) -> dict[str, Any]:
    details = e.details or {}
    before, after = details.get("before") or {}, details.get("after") or {}
    props = sorted(set(before) | set(after))
    return {
        "id": e.id,
        "category": e.category,
        "correlationId": e.id,
        "result": "success",
        "resultReason": "",
        "activityDisplayName": e.activity,
        "activityDateTime": iso(e.occurred_at),
        "loggedByService": "Entitlement Management"
        if e.category in ("EntitlementManagement", "RoleManagement")
        else "Core Directory",
        "operationType": e.operation_type,
        "initiatedBy": {
            "user": {
                "id": e.actor_id,
                "userPrincipalName": e.actor_name,
                "displayName": e.actor_name,
            },
            "app": None,
        },
        "targetResources": [
            {
                "id": e.target_id,
                "displayName": e.target_name,
                "type": e.target_type,
                "userPrincipalName": None,
                "modifiedProperties": [
                    {
                        "displayName": k,
                        "oldValue": _json(before.get(k)),
                        "newValue": _json(after.get(k)),
                    }
                    for k in props
                ],
            }
        ],
        "additionalDetails": [
            {"key": "sequence", "value": str(e.seq)},
            {"key": "hash", "value": e.hash},
            *([{"key": "catalogId", "value": e.catalog_id}] if e.catalog_id else []),
            *([{"key": "subjectId", "value": e.subject_id}] if e.subject_id else []),
        ],
    }


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
