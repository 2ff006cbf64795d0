"""Directory endpoints: users, me, groups (members/owners $ref), applications, sites, roles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from remit.api import shapes
from remit.api.bodies import (
    ApplicationCreate,
    DirectoryRoleAssignmentCreate,
    GroupCreate,
    Ref,
    SiteCreate,
    UserCreate,
    UserUpdate,
    bound_id,
)
from remit.api.collection import QueryOptions, entity, listed, query_options, single_options
from remit.api.state import identity, operation
from remit.context import Ctx
from remit.directory import operations as ops
from remit.directory import queries
from remit.errors import Invalid
from remit.models.directory import Application, Group, Site, User
from remit.tokens import Identity

# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix="/v1.0", tags=["directory"], dependencies=[Depends(identity)])


def _users(_ctx: Ctx, rows: list[User]) -> list[dict[str, Any]]:
    return [shapes.user(u) for u in rows]


def _groups(_ctx: Ctx, rows: list[Group]) -> list[dict[str, Any]]:
    return [shapes.group(g) for g in rows]


def _principals(_ctx: Ctx, rows: list[queries.Principal]) -> list[dict[str, Any]]:
    return [shapes.user(p) if isinstance(p, User) else shapes.group(p) for p in rows]


# ---------------------------------------------------------------- users


@router.get("/users")
def list_users(
    request: Request, q: QueryOptions = Depends(query_options), ident: Identity = Depends(identity)
) -> dict[str, Any]:
    return listed(request, ident, q, queries.users, _users, context="users")


@router.post("/users", status_code=201)
def create_user(
    request: Request, body: UserCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=True) as ctx:
        user = ops.create_user(
            ctx,
            user_principal_name=body.userPrincipalName,
            display_name=body.displayName,
            mail=body.mail,
            user_type=body.userType,
            account_enabled=body.accountEnabled,
            department=body.department,
            job_title=body.jobTitle,
            manager_id=body.managerId,
        )
        return entity(request, "users", shapes.user(user))


@router.get("/me")
def me(
    request: Request, q: QueryOptions = Depends(single_options), ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return entity(request, "users", shapes.user(queries.get_user(ctx, ctx.actor.user_id)), q)


@router.get("/users/{user_id}")
def get_user(
    request: Request,
    user_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return entity(request, "users", shapes.user(queries.find_user(ctx, user_id)), q)


@router.patch("/users/{user_id}", status_code=204)
def update_user(
    request: Request, user_id: str, body: UserUpdate, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.update_user(ctx, queries.find_user(ctx, user_id).id, body.changes())
    return Response(status_code=204)


@router.get("/users/{user_id}/manager")
def get_manager(
    request: Request, user_id: str, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        manager = queries.manager_of(ctx, user_id)
        if manager is None:
            raise Invalid("the user has no manager", code="itemNotFound")
        return entity(request, "directoryObjects", shapes.user(manager))


@router.put("/users/{user_id}/manager/$ref", status_code=204)
def set_manager(
    request: Request, user_id: str, body: Ref, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        user = queries.find_user(ctx, user_id)
        ops.update_user(ctx, user.id, {"manager": body.object_id("users")})
    return Response(status_code=204)


@router.get("/users/{user_id}/memberOf")
def member_of(
    request: Request,
    user_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: queries.member_of(ctx, user_id, options),
        _groups,
        context="directoryObjects",
    )


@router.get("/users/{user_id}/transitiveMemberOf")
def transitive_member_of(
    request: Request,
    user_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: queries.transitive_member_of(ctx, user_id, options),
        _groups,
        context="directoryObjects",
    )


# ---------------------------------------------------------------- groups


@router.get("/groups")
def list_groups(
    request: Request, q: QueryOptions = Depends(query_options), ident: Identity = Depends(identity)
) -> dict[str, Any]:
    return listed(request, ident, q, queries.groups, _groups, context="groups")


@router.post("/groups", status_code=201)
def create_group(
    request: Request, body: GroupCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    kind = "microsoft365" if any(t.lower() == "unified" for t in body.groupTypes) else "security"
    dynamic = any(t.lower() == "dynamicmembership" for t in body.groupTypes)
    if dynamic and not body.membershipRule:
        raise Invalid("a DynamicMembership group needs a membershipRule", target="membershipRule")
    with operation(request, ident, write=True) as ctx:
        group = ops.create_group(
            ctx,
            display_name=body.displayName,
            kind=kind,
            description=body.description,
            mail_nickname=body.mailNickname,
            is_assignable_to_role=body.isAssignableToRole,
            membership_rule=body.membershipRule if dynamic else None,
            owner_ids=[bound_id(u) for u in body.owners],
            member_ids=[bound_id(u) for u in body.members],
        )
        return entity(request, "groups", shapes.group(group))


@router.get("/groups/{group_id}")
def get_group(
    request: Request,
    group_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return entity(request, "groups", shapes.group(queries.get_group(ctx, group_id)), q)


@router.get("/groups/{group_id}/members")
def list_members(
    request: Request,
    group_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: queries.group_members(ctx, group_id, options),
        _principals,
        context="directoryObjects",
    )


@router.post("/groups/{group_id}/members/$ref", status_code=204)
def add_member(
    request: Request, group_id: str, body: Ref, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.add_group_member(ctx, group_id, body.object_id("users", "groups"))
    return Response(status_code=204)


@router.delete("/groups/{group_id}/members/{member_id}/$ref", status_code=204)
def remove_member(
    request: Request, group_id: str, member_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.remove_group_member(ctx, group_id, member_id)
    return Response(status_code=204)


@router.get("/groups/{group_id}/owners")
def list_owners(
    request: Request,
    group_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: queries.group_owners(ctx, group_id, options),
        _principals,
        context="directoryObjects",
    )


@router.post("/groups/{group_id}/owners/$ref", status_code=204)
def add_owner(
    request: Request, group_id: str, body: Ref, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.add_group_owner(ctx, group_id, body.object_id("users"))
    return Response(status_code=204)


@router.delete("/groups/{group_id}/owners/{owner_id}/$ref", status_code=204)
def remove_owner(
    request: Request, group_id: str, owner_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.remove_group_owner(ctx, group_id, owner_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- applications


def _apps(ctx: Ctx, rows: list[Application]) -> list[dict[str, Any]]:
    roles = queries.app_roles(ctx, rows)
    return [shapes.application(a, roles[a.id]) for a in rows]


@router.get("/applications")
def list_applications(
    request: Request, q: QueryOptions = Depends(query_options), ident: Identity = Depends(identity)
) -> dict[str, Any]:
    return listed(request, ident, q, queries.applications, _apps, context="applications")


@router.post("/applications", status_code=201)
def create_application(
    request: Request, body: ApplicationCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=True) as ctx:
        app = ops.create_application(
            ctx,
            display_name=body.displayName,
            description=body.description,
            app_roles=[(r.displayName, r.value) for r in body.appRoles],
        )
        return entity(request, "applications", _apps(ctx, [app])[0])


@router.get("/applications/{app_id}")
def get_application(
    request: Request,
    app_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        app = queries.get_application(ctx, app_id)
        return entity(request, "applications", _apps(ctx, [app])[0], q)


@router.get("/applications/{app_id}/owners")
def list_app_owners(
    request: Request,
    app_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: queries.application_owners(ctx, app_id, options),
        _principals,
        context="directoryObjects",
    )


@router.post("/applications/{app_id}/owners/$ref", status_code=204)
def add_app_owner(
    request: Request, app_id: str, body: Ref, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.add_application_owner(ctx, app_id, body.object_id("users"))
    return Response(status_code=204)


# ---------------------------------------------------------------- sites


def _sites(ctx: Ctx, rows: list[Site]) -> list[dict[str, Any]]:
    roles = queries.site_roles(ctx, rows)
    return [shapes.site(s, roles[s.id]) for s in rows]


@router.get("/sites")
def list_sites(
    request: Request, q: QueryOptions = Depends(query_options), ident: Identity = Depends(identity)
) -> dict[str, Any]:
    return listed(request, ident, q, queries.sites, _sites, context="sites")


@router.post("/sites", status_code=201)
def create_site(
    request: Request, body: SiteCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=True) as ctx:
        site = ops.create_site(
            ctx,
            display_name=body.displayName,
            web_url=body.webUrl,
            description=body.description,
            roles=body.roles,
        )
        return entity(request, "sites", _sites(ctx, [site])[0])


@router.get("/sites/{site_id}")
def get_site(
    request: Request,
    site_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return entity(request, "sites", _sites(ctx, [queries.get_site(ctx, site_id)])[0], q)


@router.get("/sites/{site_id}/administrators")
def list_site_admins(
    request: Request,
    site_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        lambda ctx, options: queries.site_administrators(ctx, site_id, options),
        _principals,
        context="directoryObjects",
    )


@router.post("/sites/{site_id}/administrators/$ref", status_code=204)
def add_site_admin(
    request: Request, site_id: str, body: Ref, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.add_site_admin(ctx, site_id, body.object_id("users"))
    return Response(status_code=204)


# ---------------------------------------------------------------- directory roles


@router.get("/roleManagement/directory/roleAssignments")
def list_directory_role_assignments(
    request: Request, q: QueryOptions = Depends(query_options), ident: Identity = Depends(identity)
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        queries.directory_role_assignments,
        lambda _ctx, rows: [shapes.directory_role_assignment(a) for a in rows],
        context="roleManagement/directory/roleAssignments",
    )


@router.post("/roleManagement/directory/roleAssignments", status_code=201)
def create_directory_role_assignment(
    request: Request, body: DirectoryRoleAssignmentCreate, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    if body.directoryScopeId != "/":
        raise Invalid(
            "only tenant-wide directory role assignments are supported", target="directoryScopeId"
        )
    with operation(request, ident, write=True) as ctx:
        created = ops.assign_directory_role(
            ctx, principal_id=body.principalId, role=body.roleDefinitionId
        )
        return entity(
            request,
            "roleManagement/directory/roleAssignments",
            shapes.directory_role_assignment(created),
        )


@router.delete("/roleManagement/directory/roleAssignments/{assignment_id}", status_code=204)
def delete_directory_role_assignment(
    request: Request, assignment_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.remove_directory_role(ctx, assignment_id)
    return Response(status_code=204)
