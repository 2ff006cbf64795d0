"""Directory use cases: users, groups with nested membership, applications, sites, roles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from remit import validation
from remit.authz import relations
from remit.authz.actor import transitive_group_ids
from remit.authz.decide import authorize, can, may_assign
from remit.authz.groups import GroupPart, authorize_group_change
from remit.authz.roles import DIRECTORY_ROLE_NAMES, DirectoryRole
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.directory import queries
from remit.errors import Conflict, Forbidden, Invalid, NotFound
from remit.models.directory import (
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
from remit.models.vocabulary import Activity

DIRECTORY = "Directory"
GROUP_KINDS = ("security", "microsoft365")
DEFAULT_SITE_ROLES = ("Owners", "Members", "Visitors")

_TARGET_TYPES = {User: "User", Group: "Group", Application: "Application", Site: "Site"}


def _audit(
    ctx: Ctx,
    activity: Activity,
    operation_type: str,
    target: User | Group | Application | Site,
    **event: Any,
) -> None:
    """One event of the Directory category about ``target``: a user is named by its
    userPrincipalName, anything else by its display name."""
    name = target.user_principal_name if isinstance(target, User) else target.display_name
    ctx.audit(
        activity,
        operation_type=operation_type,
        target_type=_TARGET_TYPES[type(target)],
        target_id=target.id,
        target_name=name,
        category=DIRECTORY,
        **event,
    )


def create_user(
    ctx: Ctx,
    *,
    user_principal_name: str,
    display_name: str,
    mail: str | None = None,
    user_type: str = "Member",
    account_enabled: bool = True,
    manager_id: str | None = None,
    department: str | None = None,
    job_title: str | None = None,
) -> User:
    authorize(ctx.actor, Task.USERS_MANAGE)
    upn = validation.upn(user_principal_name)
    if user_type not in ("Member", "Guest"):
        raise Invalid("userType must be Member or Guest", target="userType")
    if ctx.session.execute(select(User.id).where(User.upn_key == upn.lower())).first():
        raise Conflict(f"a user with userPrincipalName {upn} already exists")
    if manager_id is not None and (
        not validation.usable_id(manager_id) or ctx.session.get(User, manager_id) is None
    ):
        raise Invalid(f"manager {manager_id!r} was not found", target="manager")
    user = User(
        user_principal_name=upn,
        upn_key=upn.lower(),
        display_name=validation.display_name(display_name),
        mail=validation.optional_email(mail) or upn,
        user_type=user_type,
        account_enabled=account_enabled,
        manager_id=manager_id,
        department=validation.optional_text(department, "department", 128, multiline=False),
        job_title=validation.optional_text(job_title, "jobTitle", 128, multiline=False),
        created_at=ctx.now,
    )
    ctx.session.add(user)
    ctx.session.flush()
    _audit(ctx, Activity.ADD_USER, "Add", user, after=user_snapshot(user))
    return user


USER_FIELDS = {"displayName", "mail", "accountEnabled", "department", "jobTitle", "manager"}


def update_user(ctx: Ctx, user_id: str, changes: dict[str, Any]) -> User:
    authorize(ctx.actor, Task.USERS_MANAGE)
    user = queries.get_user(ctx, user_id)
    if (
        user.id != ctx.actor.user_id
        and not _is_global_admin(ctx)
        and _holds_directory_role(ctx, user.id)
    ):
        # As in Entra, a User Administrator may not change (or disable) an administrator.
        raise Forbidden("only a Global Administrator may change a user who holds a directory role")
    validation.only_editable(changes, USER_FIELDS)
    before = user_snapshot(user)
    if "displayName" in changes:
        user.display_name = validation.display_name(changes["displayName"])
    if "mail" in changes:
        user.mail = validation.optional_email(changes["mail"])
    if "accountEnabled" in changes:
        if not isinstance(changes["accountEnabled"], bool):
            raise Invalid("accountEnabled must be true or false", target="accountEnabled")
        user.account_enabled = changes["accountEnabled"]
    for field, attr in (("department", "department"), ("jobTitle", "job_title")):
        if field in changes:
            text = validation.optional_text(changes[field], field, 128, multiline=False)
            setattr(user, attr, text)
    if "manager" in changes:
        manager_id = changes["manager"]
        if manager_id is not None and (
            manager_id == user.id
            or not validation.usable_id(manager_id)
            or not ctx.session.get(User, manager_id)
        ):
            raise Invalid("manager must be another existing user", target="manager")
        user.manager_id = manager_id
    _audit(ctx, Activity.UPDATE_USER, "Update", user, before=before, after=user_snapshot(user))
    return user


def user_snapshot(user: User) -> dict[str, Any]:
    return {
        "userPrincipalName": user.user_principal_name,
        "displayName": user.display_name,
        "userType": user.user_type,
        "accountEnabled": user.account_enabled,
        "manager": user.manager_id,
        "department": user.department,
    }


# ---------------------------------------------------------------- groups


def create_group(
    ctx: Ctx,
    *,
    display_name: str,
    kind: str = "security",
    description: str | None = None,
    mail_nickname: str | None = None,
    is_assignable_to_role: bool = False,
    membership_rule: str | None = None,
    owner_ids: Sequence[str] = (),
    member_ids: Sequence[str] = (),
) -> Group:
    authorize(ctx.actor, Task.GROUPS_CREATE)
    if is_assignable_to_role:
        # A role-assignable group confers directory roles: only role administrators create one.
        authorize(ctx.actor, Task.DIRECTORY_ROLES_MANAGE)
    if kind not in GROUP_KINDS:
        raise Invalid("a group is a security group or a Microsoft 365 group", target="groupTypes")
    if is_assignable_to_role and membership_rule:
        raise Invalid("a role-assignable group cannot have dynamic membership")
    group = Group(
        display_name=validation.display_name(display_name),
        description=validation.optional_text(description, "description"),
        kind=kind,
        mail_nickname=validation.optional_text(mail_nickname, "mailNickname", 64, multiline=False),
        is_assignable_to_role=is_assignable_to_role,
        membership_rule=validation.optional_text(membership_rule, "membershipRule", 2048),
        created_at=ctx.now,
    )
    ctx.session.add(group)
    ctx.session.flush()
    _audit(ctx, Activity.ADD_GROUP, "Add", group, after=group_snapshot(group))
    owners = list(owner_ids)
    if not owners and not ctx.actor.is_system and not can(ctx.actor, Task.GROUPS_MANAGE):
        owners.append(ctx.actor.user_id)  # self-service groups are owned by their creator
    # The creator was authorized to create the group; its initial owners and members follow.
    for owner in owners:
        _add_owner(ctx, group, owner)
    for member in member_ids:
        _add_member(ctx, group, member)
    return group


def group_snapshot(group: Group) -> dict[str, Any]:
    return {
        "displayName": group.display_name,
        "kind": group.kind,
        "isAssignableToRole": group.is_assignable_to_role,
        "membershipRule": group.membership_rule,
    }


def _authorize_group_change(ctx: Ctx, group: Group, part: GroupPart) -> None:
    """Groups Administrators (and above) manage any group, owners their own; a group that
    holds roles needs the right to assign them too (``authz.groups``, decision 0022)."""
    authorize_group_change(ctx.session, ctx.actor, group, part, ctx.now)


def add_group_member(ctx: Ctx, group_id: str, member_id: str) -> None:
    group = queries.get_group(ctx, group_id)
    _authorize_group_change(ctx, group, GroupPart.MEMBERS)
    _add_member(ctx, group, member_id)


def _add_member(ctx: Ctx, group: Group, member_id: str) -> None:
    if group.membership_rule:
        raise Invalid("the members of a dynamic group follow its rule and cannot be edited")
    member_type = principal_type(ctx, member_id)
    if member_type == "group" and group.is_assignable_to_role:
        # As in Entra: directory roles never flow into nested groups.
        raise Invalid("a role-assignable group cannot have groups as members")
    # A group may not contain itself, directly or through nesting.
    if member_type == "group" and (
        member_id == group.id
        or member_id in transitive_group_ids(ctx.session, group.id, now=ctx.now)
    ):
        raise Invalid("adding this group would create a membership cycle")
    if ctx.session.get(GroupMember, (group.id, member_id)) is not None:
        raise Conflict("the principal is already a member of the group")
    ctx.session.add(GroupMember(group_id=group.id, member_id=member_id, member_type=member_type))
    ctx.session.flush()
    after = {"member": member_id, "memberType": member_type}
    _audit(ctx, Activity.ADD_MEMBER_TO_GROUP, "Add", group, after=after)


def remove_group_member(ctx: Ctx, group_id: str, member_id: str) -> None:
    group = queries.get_group(ctx, group_id)
    _authorize_group_change(ctx, group, GroupPart.MEMBERS)
    edge = ctx.session.get(GroupMember, (group_id, member_id))
    if edge is None:
        raise NotFound("the principal is not a member of the group")
    ctx.session.delete(edge)
    _audit(ctx, Activity.REMOVE_MEMBER_FROM_GROUP, "Delete", group, before={"member": member_id})


def add_group_owner(ctx: Ctx, group_id: str, user_id: str) -> None:
    group = queries.get_group(ctx, group_id)
    _authorize_group_change(ctx, group, GroupPart.OWNERS)
    _add_owner(ctx, group, user_id)


def _check_user(ctx: Ctx, user_id: str, why: str = "") -> None:
    """``Invalid`` unless ``user_id`` names a user (the one an edge is about to name)."""
    if ctx.session.get(User, user_id) is None:
        raise Invalid(f"user {user_id} was not found{why}")


def _add_owner(ctx: Ctx, group: Group, user_id: str) -> None:
    _check_user(ctx, user_id, "; owners are users")
    edge = ctx.session.get(GroupOwner, (group.id, user_id))
    if edge is not None and (edge.valid_until is None or edge.valid_until > ctx.now):
        raise Conflict("the user is already an owner of the group")
    if edge is not None:
        edge.valid_until = None  # a lapsed delivered ownership, now given by hand for good
    else:
        ctx.session.add(GroupOwner(group_id=group.id, user_id=user_id))
    ctx.session.flush()
    _audit(ctx, Activity.ADD_OWNER_TO_GROUP, "Add", group, after={"owner": user_id})


def remove_group_owner(ctx: Ctx, group_id: str, user_id: str) -> None:
    group = queries.get_group(ctx, group_id)
    _authorize_group_change(ctx, group, GroupPart.OWNERS)
    edge = ctx.session.get(GroupOwner, (group_id, user_id))
    if edge is None:
        raise NotFound("the user is not an owner of the group")
    ctx.session.delete(edge)
    _audit(ctx, Activity.REMOVE_OWNER_FROM_GROUP, "Delete", group, before={"owner": user_id})


def principal_type(ctx: Ctx, principal_id: str) -> str:
    """``user`` or ``group``: what ``principal_id`` names; ``Invalid`` if neither."""
    if ctx.session.get(User, principal_id) is not None:
        return "user"
    if ctx.session.get(Group, principal_id) is not None:
        return "group"
    raise Invalid(f"no user or group has id {principal_id}")


# ---------------------------------------------------------------- applications


def create_application(
    ctx: Ctx,
    *,
    display_name: str,
    description: str | None = None,
    app_roles: Sequence[tuple[str, str]] = (),
    owner_ids: Sequence[str] = (),
) -> Application:
    """``app_roles`` are (displayName, value) pairs; an app without roles gets Default Access."""
    authorize(ctx.actor, Task.APPLICATIONS_MANAGE)
    app = Application(
        display_name=validation.display_name(display_name),
        description=validation.optional_text(description, "description"),
        created_at=ctx.now,
    )
    ctx.session.add(app)
    ctx.session.flush()
    values = [v for _, v in app_roles]
    if len(set(values)) != len(values):
        raise Invalid("app role values must be unique within the application", target="appRoles")
    for name, value in app_roles:
        ctx.session.add(
            AppRole(
                application_id=app.id,
                display_name=validation.display_name(name, "appRoles.displayName"),
                value=validation.display_name(value, "appRoles.value", 120),
            )
        )
    after = {"displayName": app.display_name, "appRoles": values}
    _audit(ctx, Activity.ADD_APPLICATION, "Add", app, after=after)
    for owner in owner_ids:
        add_application_owner(ctx, app.id, owner)
    return app


def add_application_owner(ctx: Ctx, app_id: str, user_id: str) -> None:
    app = queries.get_application(ctx, app_id)
    if not relations.may_manage_application(ctx.session, ctx.actor, app_id):
        raise Forbidden("only the application's owners or an application administrator may do this")
    _check_user(ctx, user_id, "; owners are users")
    if relations.owns_application(ctx.session, app_id, user_id):
        raise Conflict("the user is already an owner of the application")
    ctx.session.add(ApplicationOwner(application_id=app_id, user_id=user_id))
    _audit(ctx, Activity.ADD_OWNER_TO_APPLICATION, "Add", app, after={"owner": user_id})


# ---------------------------------------------------------------- sites


def create_site(
    ctx: Ctx,
    *,
    display_name: str,
    web_url: str,
    description: str | None = None,
    roles: Sequence[str] = DEFAULT_SITE_ROLES,
    admin_ids: Sequence[str] = (),
) -> Site:
    authorize(ctx.actor, Task.SITES_MANAGE)
    url = validation.no_controls(web_url or "", "webUrl").strip()
    if not url.startswith(("https://", "http://")) or len(url) > 1024 or " " in url:
        raise Invalid("webUrl must be an http(s) URL", target="webUrl")
    if ctx.session.execute(select(Site.id).where(Site.web_url == url)).first():
        raise Conflict(f"a site with webUrl {url} already exists")
    if not roles or len(set(roles)) != len(roles):
        raise Invalid("a site needs at least one role, with distinct names", target="roles")
    site = Site(
        display_name=validation.display_name(display_name),
        name=url.rstrip("/").rsplit("/", 1)[-1],
        web_url=url,
        description=validation.optional_text(description, "description"),
        created_at=ctx.now,
    )
    ctx.session.add(site)
    ctx.session.flush()
    for role in roles:
        ctx.session.add(SiteRole(site_id=site.id, display_name=validation.display_name(role)))
    _audit(ctx, Activity.ADD_SITE, "Add", site, after={"webUrl": url, "roles": list(roles)})
    for admin in admin_ids:
        add_site_admin(ctx, site.id, admin)
    return site


def add_site_admin(ctx: Ctx, site_id: str, user_id: str) -> None:
    site = queries.get_site(ctx, site_id)
    if not relations.may_manage_site(ctx.session, ctx.actor, site_id):
        raise Forbidden("only the site's administrators or a SharePoint administrator may do this")
    _check_user(ctx, user_id)
    if relations.administers_site(ctx.session, site_id, user_id):
        raise Conflict("the user is already an administrator of the site")
    ctx.session.add(SiteAdmin(site_id=site_id, user_id=user_id))
    _audit(ctx, Activity.ADD_SITE_ADMINISTRATOR, "Add", site, after={"admin": user_id})


# ---------------------------------------------------------------- directory roles


def parse_directory_role(role: str) -> DirectoryRole:
    """A directory role by template id or by display name (case-insensitive)."""
    try:
        return DirectoryRole(role)
    except ValueError:
        pass
    for rid, name in DIRECTORY_ROLE_NAMES.items():
        if name.lower() == role.strip().lower():
            return rid
    raise Invalid(f"unknown directory role {role!r}", target="roleDefinitionId")


def _holds_directory_role(ctx: Ctx, user_id: str) -> bool:
    principals = [user_id, *transitive_group_ids(ctx.session, user_id, now=ctx.now)]
    return (
        ctx.session.execute(
            select(DirectoryRoleAssignment.id)
            .where(DirectoryRoleAssignment.principal_id.in_(principals))
            .limit(1)
        ).first()
        is not None
    )


def _is_global_admin(ctx: Ctx) -> bool:
    return ctx.actor.is_system or DirectoryRole.GLOBAL_ADMINISTRATOR in ctx.actor.directory_roles


def assign_directory_role(ctx: Ctx, *, principal_id: str, role: str) -> DirectoryRoleAssignment:
    authorize(ctx.actor, Task.DIRECTORY_ROLES_MANAGE)
    rid = parse_directory_role(role)
    ptype = principal_type(ctx, principal_id)
    if ptype == "group":
        group = ctx.session.get(Group, principal_id)
        if group is None or not group.is_assignable_to_role:
            raise Invalid("directory roles can be assigned only to role-assignable groups")
    if not may_assign(ctx.actor, rid.value):
        # A Privileged Role Administrator may not mint Global Administrators (no amplification).
        raise Forbidden("only a Global Administrator may assign the Global Administrator role")
    assignment = DirectoryRoleAssignment(
        principal_id=principal_id,
        principal_type=ptype,
        role_definition_id=rid.value,
        created_at=ctx.now,
    )
    ctx.session.add(assignment)
    try:
        ctx.session.flush()
    except IntegrityError as exc:
        raise Conflict("the principal already holds this directory role") from exc
    ctx.audit(
        Activity.ADD_MEMBER_TO_ROLE,
        operation_type="Assign",
        target_type="DirectoryRole",
        target_id=rid.value,
        target_name=DIRECTORY_ROLE_NAMES[rid],
        after={"principalId": principal_id, "principalType": ptype},
        category="RoleManagement",
    )
    return assignment


def remove_directory_role(ctx: Ctx, assignment_id: str) -> None:
    authorize(ctx.actor, Task.DIRECTORY_ROLES_MANAGE)
    assignment = ctx.session.get(DirectoryRoleAssignment, assignment_id)
    if assignment is None:
        raise NotFound(f"role assignment {assignment_id} was not found")
    rid = DirectoryRole(assignment.role_definition_id)
    if not may_assign(ctx.actor, rid.value):
        raise Forbidden("only a Global Administrator may remove a Global Administrator")
    ctx.session.delete(assignment)
    ctx.audit(
        Activity.REMOVE_MEMBER_FROM_ROLE,
        operation_type="Unassign",
        target_type="DirectoryRole",
        target_id=rid.value,
        target_name=DIRECTORY_ROLE_NAMES[rid],
        before={"principalId": assignment.principal_id},
        category="RoleManagement",
    )
