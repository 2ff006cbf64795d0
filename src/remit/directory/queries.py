"""Reading the directory: users, groups and their members and owners, applications, sites,
directory role assignments; every list and detail read, with its authorization.

The API, the CLI and the portal read through here (DESIGN.md: reads are the domain's queries).
The directory is visible as a whole or not at all: reading it needs ``directory:read`` (every
member user has it, guests do not), except a user's own record. A detail read the actor may not
make is refused before the object is looked up, so the answer says nothing about existence.

Name resolution (``user_by_upn``, ``user_id_of``, ``principal_id_of``) is not a read shown to
anyone: it turns what an operator typed into the id an operation takes, and the operation
decides. It works on a bare session or connection, because ``--as`` is resolved before any actor
exists.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from remit import listing, validation
from remit.authz.actor import transitive_group_ids
from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.db import Reader
from remit.errors import Invalid, NotFound
from remit.listing import F, ListOptions, Page
from remit.lookup import by_parent
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

# What each list may be filtered and ordered on (Graph's property names).
USER_FIELDS = {
    "id": F(User.id),
    "userPrincipalName": F(User.upn_key),
    "displayName": F(User.display_name),
    "mail": F(User.mail),
    "userType": F(User.user_type, enum=True),
    "accountEnabled": F(User.account_enabled),
    "department": F(User.department),
    "jobTitle": F(User.job_title),
}
GROUP_FIELDS = {
    "id": F(Group.id),
    "displayName": F(Group.display_name),
    "mailNickname": F(Group.mail_nickname),
    "isAssignableToRole": F(Group.is_assignable_to_role),
}
APP_FIELDS = {
    "id": F(Application.id),
    "appId": F(Application.app_id),
    "displayName": F(Application.display_name),
}
SITE_FIELDS = {
    "id": F(Site.id),
    "displayName": F(Site.display_name),
    "webUrl": F(Site.web_url),
    "name": F(Site.name),
}
DIR_ROLE_FIELDS = {
    "id": F(DirectoryRoleAssignment.id),
    "principalId": F(DirectoryRoleAssignment.principal_id),
    "roleDefinitionId": F(DirectoryRoleAssignment.role_definition_id),
}

Principal = User | Group
_Object = TypeVar("_Object", Group, Application, Site)
_Listed = TypeVar("_Listed", User, Group, Application, Site, DirectoryRoleAssignment)


def _authorize_read(ctx: Ctx) -> None:
    authorize(ctx.actor, Task.DIRECTORY_READ)


def _get(ctx: Ctx, model: type[_Object], object_id: str, what: str) -> _Object:
    """A group, application or site by id, with ``directory:read``; any other id is
    ``NotFound`` (one with a control character names none)."""
    _authorize_read(ctx)
    found = ctx.session.get(model, object_id) if validation.usable_id(object_id) else None
    if found is None:
        raise NotFound(f"{what} {object_id} was not found")
    return found


def live_membership(now: datetime) -> ColumnElement[bool]:
    """Membership edges that count at ``now`` (delivered ones only until ``valid_until``)."""
    return or_(GroupMember.valid_until.is_(None), GroupMember.valid_until > now)


# ---------------------------------------------------------------- users


def get_user(ctx: Ctx, user_id: str) -> User:
    """A user by id: one's own record, or any with ``directory:read``."""
    if user_id != ctx.actor.user_id:
        _authorize_read(ctx)
    user = ctx.session.get(User, user_id) if validation.usable_id(user_id) else None
    if user is None:
        raise NotFound(f"user {user_id} was not found")
    return user


def find_user(ctx: Ctx, id_or_upn: str) -> User:
    """By object id or userPrincipalName, as Graph's /users/{id | userPrincipalName}."""
    if "@" not in id_or_upn:
        return get_user(ctx, id_or_upn)
    if id_or_upn.lower() != ctx.actor.name.lower():
        _authorize_read(ctx)
    user = (
        ctx.session.execute(
            select(User).where(User.upn_key == id_or_upn.lower())
        ).scalar_one_or_none()
        if validation.usable_id(id_or_upn)
        else None
    )
    if user is None:
        raise NotFound(f"user {id_or_upn} was not found")
    return user


def manager_of(ctx: Ctx, id_or_upn: str) -> User | None:
    """A user's manager (``find_user``), or None when they have none."""
    user = find_user(ctx, id_or_upn)
    return None if user.manager_id is None else get_user(ctx, user.manager_id)


def users(ctx: Ctx, options: ListOptions) -> Page[User]:
    return _page(ctx, User, USER_FIELDS, options)


def all_users(ctx: Ctx) -> list[User]:
    """Every user, by userPrincipalName (the CLI's listing)."""
    return _all(ctx, User, User.upn_key)


def member_of(ctx: Ctx, id_or_upn: str, options: ListOptions) -> Page[Group]:
    """A page of the groups a user is a direct member of now (one's own, or with
    ``directory:read``)."""
    user = find_user(ctx, id_or_upn)
    direct = select(GroupMember.group_id).where(
        GroupMember.member_id == user.id, live_membership(ctx.now)
    )
    return _groups_page(ctx, select(Group).where(Group.id.in_(direct)), options)


def transitive_member_of(ctx: Ctx, id_or_upn: str, options: ListOptions) -> Page[Group]:
    """A page of the groups a user is a member of now, directly or through nesting."""
    user = find_user(ctx, id_or_upn)
    nested = transitive_group_ids(ctx.session, user.id, now=ctx.now)
    return _groups_page(ctx, select(Group).where(Group.id.in_(nested)), options)


# ---------------------------------------------------------------- groups


def get_group(ctx: Ctx, group_id: str) -> Group:
    return _get(ctx, Group, group_id, "group")


def groups(ctx: Ctx, options: ListOptions) -> Page[Group]:
    _authorize_read(ctx)
    return _groups_page(ctx, select(Group), options)


def all_groups(ctx: Ctx) -> list[Group]:
    """Every group, by display name (the CLI's listing)."""
    return _all(ctx, Group, Group.display_name)


def _groups_page(ctx: Ctx, stmt: Select[Group], options: ListOptions) -> Page[Group]:
    return listing.page(ctx.session, stmt, key=Group.id, fields=GROUP_FIELDS, options=options)


def group_members(ctx: Ctx, group_id: str, options: ListOptions) -> Page[Principal]:
    """A page of a group's direct members now: users and groups."""
    group = get_group(ctx, group_id)
    edges = select(GroupMember).where(GroupMember.group_id == group.id, live_membership(ctx.now))
    return _principal_page(ctx, edges, GroupMember.member_id, options)


def group_owners(ctx: Ctx, group_id: str, options: ListOptions) -> Page[Principal]:
    """A page of a group's owners (users), from every owner edge the group has."""
    group = get_group(ctx, group_id)
    edges = select(GroupOwner).where(GroupOwner.group_id == group.id)
    return _principal_page(ctx, edges, GroupOwner.user_id, options)


def _principal_page(
    ctx: Ctx,
    edges: Select[Any],
    column: InstrumentedAttribute[str],
    options: ListOptions,
) -> Page[Principal]:
    """A page of the principals that ``column`` of ``edges`` names (members, owners, admins),
    paged and filtered on that id; an edge whose principal is gone is left out."""
    found = listing.page(ctx.session, edges, key=column, fields={"id": F(column)}, options=options)
    ids = [getattr(edge, column.key) for edge in found.items]
    principals = principals_by_id(ctx.session, ids)
    items = [principals[i] for i in ids if i in principals]
    return Page(items, found.count, found.next_skip, found.next_skiptoken)


def principals_by_id(session: Session, ids: Collection[str]) -> dict[str, Principal]:
    """The users and groups with these ids (read or named by the caller: members, owners,
    sponsors, role holders), by id, in two statements whatever their number; an id that names
    neither (a principal deleted since) is absent."""
    if not ids:
        return {}
    wanted = sorted(set(ids))
    found: dict[str, Principal] = {
        g.id: g for g in session.scalars(select(Group).where(Group.id.in_(wanted)))
    }
    found.update({u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))})
    return found


# ---------------------------------------------------------------- applications


def get_application(ctx: Ctx, app_id: str) -> Application:
    return _get(ctx, Application, app_id, "application")


def applications(ctx: Ctx, options: ListOptions) -> Page[Application]:
    return _page(ctx, Application, APP_FIELDS, options)


def all_applications(ctx: Ctx) -> list[Application]:
    """Every application, by display name (the CLI's listing)."""
    return _all(ctx, Application, Application.display_name)


def app_roles(ctx: Ctx, held: Sequence[Application]) -> dict[str, list[AppRole]]:
    """The roles of applications the caller already holds (from a read or its own write), by
    application id and then by name: one query for a whole page."""
    stmt = select(AppRole).order_by(AppRole.display_name)
    return by_parent(ctx.session, stmt, AppRole.application_id, [a.id for a in held])


def application_owners(ctx: Ctx, app_id: str, options: ListOptions) -> Page[Principal]:
    """A page of an application's owners (users)."""
    app = get_application(ctx, app_id)
    edges = select(ApplicationOwner).where(ApplicationOwner.application_id == app.id)
    return _principal_page(ctx, edges, ApplicationOwner.user_id, options)


# ---------------------------------------------------------------- sites


def get_site(ctx: Ctx, site_id: str) -> Site:
    return _get(ctx, Site, site_id, "site")


def sites(ctx: Ctx, options: ListOptions) -> Page[Site]:
    return _page(ctx, Site, SITE_FIELDS, options)


def all_sites(ctx: Ctx) -> list[Site]:
    """Every site, by display name (the CLI's listing)."""
    return _all(ctx, Site, Site.display_name)


def site_roles(ctx: Ctx, held: Sequence[Site]) -> dict[str, list[SiteRole]]:
    """The roles of sites the caller already holds, by site id and then by name."""
    stmt = select(SiteRole).order_by(SiteRole.display_name)
    return by_parent(ctx.session, stmt, SiteRole.site_id, [s.id for s in held])


def site_administrators(ctx: Ctx, site_id: str, options: ListOptions) -> Page[Principal]:
    """A page of a site's administrators (users)."""
    site = get_site(ctx, site_id)
    edges = select(SiteAdmin).where(SiteAdmin.site_id == site.id)
    return _principal_page(ctx, edges, SiteAdmin.user_id, options)


# ---------------------------------------------------------------- directory roles


def directory_role_assignments(ctx: Ctx, options: ListOptions) -> Page[DirectoryRoleAssignment]:
    return _page(ctx, DirectoryRoleAssignment, DIR_ROLE_FIELDS, options)


# ---------------------------------------------------------------- whole lists


def _page(
    ctx: Ctx, model: type[_Listed], fields: Mapping[str, F], options: ListOptions
) -> Page[_Listed]:
    """A page of all of ``model``'s rows, by id, with ``directory:read``."""
    _authorize_read(ctx)
    return listing.page(ctx.session, select(model), key=model.id, fields=fields, options=options)


def _all(ctx: Ctx, model: type[_Listed], order: InstrumentedAttribute[str]) -> list[_Listed]:
    """Every row of ``model``, by ``order`` (the CLI's listings), with ``directory:read``."""
    _authorize_read(ctx)
    return list(ctx.session.execute(select(model).order_by(order)).scalars())


# ---------------------------------------------------------------- name resolution


@dataclass(frozen=True)
class UserRef:
    """Who a userPrincipalName denotes: enough to act as them or to sign a token for them."""

    id: str
    user_principal_name: str
    account_enabled: bool


def user_by_upn(reader: Reader, upn: str) -> UserRef | None:
    """The user with this userPrincipalName (case-insensitive), or None."""
    if not validation.usable_id(upn):
        return None
    stmt = select(User.id, User.user_principal_name, User.account_enabled).where(
        User.upn_key == upn.lower()
    )
    row = reader.execute(stmt).first()
    return None if row is None else UserRef(*row)


def user_id_of(reader: Reader, upn_or_id: str) -> str:
    """The id of a user named by userPrincipalName or id; ``NotFound`` otherwise."""
    found = _user_id(reader, upn_or_id)
    if found is None:
        raise NotFound(f"no user {upn_or_id}")
    return found


def principal_id_of(reader: Reader, name: str) -> str:
    """The id of a user (userPrincipalName or id) or else of a group (display name or id); a
    display name that several groups share is ``Invalid``."""
    found = _user_id(reader, name)
    if found:
        return found
    named = (
        list(
            reader.execute(
                select(Group.id).where(or_(Group.display_name == name, Group.id == name))
            ).scalars()
        )
        if validation.usable_id(name)
        else []
    )
    if len(named) == 1:
        return named[0]
    if named:
        raise Invalid(f"several groups are named {name!r}; give the group id")
    raise NotFound(f"no user or group {name!r}")


def _user_id(reader: Reader, upn_or_id: str) -> str | None:
    if not validation.usable_id(upn_or_id):
        return None
    stmt = select(User.id).where(or_(User.upn_key == upn_or_id.lower(), User.id == upn_or_id))
    found: str | None = reader.execute(stmt).scalar()
    return found


def application_id_of(reader: Reader, name_or_id: str) -> str | None:
    """The id of the application named by display name or id, or None."""
    stmt = select(Application.id).where(
        or_(Application.display_name == name_or_id, Application.id == name_or_id)
    )
    found: str | None = reader.execute(stmt).scalar()
    return found
