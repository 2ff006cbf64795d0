"""Directory endpoints: users, me, groups (members/owners $ref), applications, sites, roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Response

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
from remit.api.calls import Paged, Plain, Single, parameters, shaped, with_path
from remit.api.collection import Render
from remit.api.state import identity
from remit.context import Ctx
from remit.directory import operations as ops
from remit.directory import queries
from remit.errors import Invalid
from remit.listing import ListOptions, Page
from remit.models.directory import Application, Site, User

# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix="/v1.0", tags=["directory"], dependencies=[Depends(identity)])
OBJECTS = "directoryObjects"
ROLE_ASSIGNMENTS = "roleManagement/directory/roleAssignments"
T = TypeVar("T")

_users = shaped(shapes.user)
_groups = shaped(shapes.group)


def _principals(_ctx: Ctx, rows: list[queries.Principal]) -> list[dict[str, Any]]:
    return [shapes.user(p) if isinstance(p, User) else shapes.group(p) for p in rows]


def _apps(ctx: Ctx, rows: list[Application]) -> list[dict[str, Any]]:
    roles = queries.app_roles(ctx, rows)
    return [shapes.application(a, roles[a.id]) for a in rows]


def _sites(ctx: Ctx, rows: list[Site]) -> list[dict[str, Any]]:
    roles = queries.site_roles(ctx, rows)
    return [shapes.site(s, roles[s.id]) for s in rows]


# ---------------------------------------------------------------- the kinds of object


def _kind(
    collection: str,
    parameter: str,
    every: Callable[[Ctx, ListOptions], Page[T]],
    find: Callable[[Ctx, str], T],
    render: Render[T],
) -> None:
    """``GET /<collection>`` and ``GET /<collection>/{<parameter>}`` for one kind of object."""

    def list_all(call: Paged) -> dict[str, Any]:
        return call.page(every, render, context=collection)

    def get_one(call: Single, **ids: str) -> dict[str, Any]:
        return call.one(collection, lambda ctx: find(ctx, ids[parameter]), render)

    router.get(f"/{collection}", name=f"list_{collection}")(list_all)
    router.get(f"/{collection}/{{{parameter}}}", name=f"get_{collection}")(
        with_path(get_one, parameter)
    )


_kind("users", "user_id", queries.users, queries.find_user, _users)
_kind("groups", "group_id", queries.groups, queries.get_group, _groups)
_kind("applications", "app_id", queries.applications, queries.get_application, _apps)
_kind("sites", "site_id", queries.sites, queries.get_site, _sites)


def _principals_of(
    path: str,
    members: Callable[[Ctx, str, ListOptions], Page[queries.Principal]],
    add: Callable[[Ctx, str, str], object],
    *kinds: str,
) -> None:
    """``GET <path>``: the users and groups related to one object (its members, owners or
    administrators); ``POST <path>/$ref``: one more, by an ``@odata.id`` of one of ``kinds``."""
    (parameter,) = parameters(path)

    def list_related(call: Paged, **ids: str) -> dict[str, Any]:
        return call.page(
            lambda ctx, options: members(ctx, ids[parameter], options),
            _principals,
            context=OBJECTS,
        )

    def add_related(body: Ref, call: Plain, **ids: str) -> Response:
        return call.done(lambda ctx: add(ctx, ids[parameter], body.object_id(*kinds)))

    name = "_".join(part for part in path.split("/") if part and "{" not in part)
    router.get(path, name=f"list_{name}")(with_path(list_related, parameter))
    router.post(f"{path}/$ref", status_code=204, name=f"add_{name}")(
        with_path(add_related, parameter)
    )


_principals_of(
    "/groups/{group_id}/members", queries.group_members, ops.add_group_member, "users", "groups"
)
_principals_of("/groups/{group_id}/owners", queries.group_owners, ops.add_group_owner, "users")
_principals_of(
    "/applications/{app_id}/owners", queries.application_owners, ops.add_application_owner, "users"
)
_principals_of(
    "/sites/{site_id}/administrators", queries.site_administrators, ops.add_site_admin, "users"
)


# ---------------------------------------------------------------- users


@router.post("/users", status_code=201)
def create_user(body: UserCreate, call: Plain) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
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
        return call.entity("users", shapes.user(user))


@router.get("/me")
def me(call: Single) -> dict[str, Any]:
    return call.one("users", lambda ctx: queries.get_user(ctx, ctx.actor.user_id), _users)


@router.patch("/users/{user_id}", status_code=204)
def update_user(user_id: str, body: UserUpdate, call: Plain) -> Response:
    return call.done(
        lambda ctx: ops.update_user(ctx, queries.find_user(ctx, user_id).id, body.changes())
    )


@router.get("/users/{user_id}/manager")
def get_manager(user_id: str, call: Plain) -> dict[str, Any]:
    def manager(ctx: Ctx) -> User:
        found = queries.manager_of(ctx, user_id)
        if found is None:
            raise Invalid("the user has no manager", code="itemNotFound")
        return found

    return call.one(OBJECTS, manager, _users)


@router.put("/users/{user_id}/manager/$ref", status_code=204)
def set_manager(user_id: str, body: Ref, call: Plain) -> Response:
    return call.done(
        lambda ctx: ops.update_user(
            ctx, queries.find_user(ctx, user_id).id, {"manager": body.object_id("users")}
        )
    )


@router.get("/users/{user_id}/memberOf")
def member_of(user_id: str, call: Paged) -> dict[str, Any]:
    return call.page(lambda ctx, o: queries.member_of(ctx, user_id, o), _groups, context=OBJECTS)


@router.get("/users/{user_id}/transitiveMemberOf")
def transitive_member_of(user_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, o: queries.transitive_member_of(ctx, user_id, o), _groups, context=OBJECTS
    )


# ---------------------------------------------------------------- groups


@router.post("/groups", status_code=201)
def create_group(body: GroupCreate, call: Plain) -> dict[str, Any]:
    kind = "microsoft365" if any(t.lower() == "unified" for t in body.groupTypes) else "security"
    dynamic = any(t.lower() == "dynamicmembership" for t in body.groupTypes)
    if dynamic and not body.membershipRule:
        raise Invalid("a DynamicMembership group needs a membershipRule", target="membershipRule")
    with call.unit(write=True) as ctx:
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
        return call.entity("groups", shapes.group(group))


@router.delete("/groups/{group_id}/members/{member_id}/$ref", status_code=204)
def remove_member(group_id: str, member_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.remove_group_member(ctx, group_id, member_id))


@router.delete("/groups/{group_id}/owners/{owner_id}/$ref", status_code=204)
def remove_owner(group_id: str, owner_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.remove_group_owner(ctx, group_id, owner_id))


# ---------------------------------------------------------------- applications


@router.post("/applications", status_code=201)
def create_application(body: ApplicationCreate, call: Plain) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
        app = ops.create_application(
            ctx,
            display_name=body.displayName,
            description=body.description,
            app_roles=[(r.displayName, r.value) for r in body.appRoles],
        )
        return call.entity("applications", _apps(ctx, [app])[0])


# ---------------------------------------------------------------- sites


@router.post("/sites", status_code=201)
def create_site(body: SiteCreate, call: Plain) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
        site = ops.create_site(
            ctx,
            display_name=body.displayName,
            web_url=body.webUrl,
            description=body.description,
            roles=body.roles,
        )
        return call.entity("sites", _sites(ctx, [site])[0])


# ---------------------------------------------------------------- directory roles


@router.get("/roleManagement/directory/roleAssignments")
def list_directory_role_assignments(call: Paged) -> dict[str, Any]:
    return call.page(
        queries.directory_role_assignments,
        shaped(shapes.directory_role_assignment),
        context=ROLE_ASSIGNMENTS,
    )


@router.post("/roleManagement/directory/roleAssignments", status_code=201)
def create_directory_role_assignment(
    body: DirectoryRoleAssignmentCreate, call: Plain
) -> dict[str, Any]:
    if body.directoryScopeId != "/":
        raise Invalid(
            "only tenant-wide directory role assignments are supported", target="directoryScopeId"
        )
    with call.unit(write=True) as ctx:
        created = ops.assign_directory_role(
            ctx, principal_id=body.principalId, role=body.roleDefinitionId
        )
        return call.entity(ROLE_ASSIGNMENTS, shapes.directory_role_assignment(created))


@router.delete("/roleManagement/directory/roleAssignments/{assignment_id}", status_code=204)
def delete_directory_role_assignment(assignment_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.remove_directory_role(ctx, assignment_id))
