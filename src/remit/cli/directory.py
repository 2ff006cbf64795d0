"""``remit user|group|app|site``: the directory remit governs."""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated

import typer

from remit.cli.common import fail, list_table, plain, principal_id, unit, user_id, user_ids
from remit.directory import operations as dir_ops
from remit.directory import queries as dir_queries

user_app = typer.Typer(help="Users.", no_args_is_help=True)
group_app = typer.Typer(help="Groups.", no_args_is_help=True)
app_app = typer.Typer(help="Applications.", no_args_is_help=True)
site_app = typer.Typer(help="Sites.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    upn: str,
    name: Annotated[str, typer.Option("--name", help="display name")],
    department: Annotated[str | None, typer.Option()] = None,
    job_title: Annotated[str | None, typer.Option()] = None,
    manager: Annotated[str | None, typer.Option(help="manager's UPN")] = None,
    guest: Annotated[bool, typer.Option(help="a guest (B2B) user")] = False,
) -> None:
    with unit() as ctx:
        user = dir_ops.create_user(
            ctx,
            user_principal_name=upn,
            display_name=name,
            department=department,
            job_title=job_title,
            user_type="Guest" if guest else "Member",
            manager_id=user_id(ctx.session, manager) if manager else None,
        )
        plain(user.id)


@user_app.command("list")
def user_list() -> None:
    list_table(
        "Users",
        ["UPN", "Name", "Type", "Enabled", "Department", "Id"],
        dir_queries.all_users,
        attrgetter(
            "user_principal_name",
            "display_name",
            "user_type",
            "account_enabled",
            "department",
            "id",
        ),
    )


@group_app.command("add")
def group_add(
    name: str,
    m365: Annotated[bool, typer.Option("--m365", help="a Microsoft 365 group")] = False,
    role_assignable: Annotated[bool, typer.Option(help="may hold directory roles")] = False,
    owner: Annotated[list[str] | None, typer.Option(help="owner UPN (repeatable)")] = None,
    member: Annotated[
        list[str] | None, typer.Option(help="member UPN or group (repeatable)")
    ] = None,
) -> None:
    with unit() as ctx:
        group = dir_ops.create_group(
            ctx,
            display_name=name,
            kind="microsoft365" if m365 else "security",
            is_assignable_to_role=role_assignable,
            owner_ids=user_ids(ctx.session, owner),
            member_ids=[principal_id(ctx.session, m) for m in member or []],
        )
        plain(group.id)


@group_app.command("add-member")
def group_add_member(group: str, member: str) -> None:
    with unit() as ctx:
        dir_ops.add_group_member(
            ctx, principal_id(ctx.session, group), principal_id(ctx.session, member)
        )


@group_app.command("list")
def group_list() -> None:
    list_table(
        "Groups",
        ["Name", "Kind", "Role-assignable", "Id"],
        dir_queries.all_groups,
        attrgetter("display_name", "kind", "is_assignable_to_role", "id"),
    )


@app_app.command("add")
def app_add(
    name: str,
    role: Annotated[
        list[str] | None, typer.Option(help="app role as Name=value (repeatable)")
    ] = None,
    owner: Annotated[list[str] | None, typer.Option(help="owner UPN (repeatable)")] = None,
) -> None:
    roles = []
    for spec in role or []:
        display, sep, value = spec.partition("=")
        if not sep:
            fail(f"--role {spec!r}: write it as Name=value", 2)
        roles.append((display, value))
    with unit() as ctx:
        created = dir_ops.create_application(
            ctx, display_name=name, app_roles=roles, owner_ids=user_ids(ctx.session, owner)
        )
        plain(created.id)


@app_app.command("list")
def app_list() -> None:
    list_table(
        "Applications",
        ["Name", "Id"],
        dir_queries.all_applications,
        attrgetter("display_name", "id"),
    )


@site_app.command("add")
def site_add(
    name: str,
    url: str,
    admin: Annotated[list[str] | None, typer.Option(help="site administrator UPN")] = None,
) -> None:
    with unit() as ctx:
        site = dir_ops.create_site(
            ctx, display_name=name, web_url=url, admin_ids=user_ids(ctx.session, admin)
        )
        plain(site.id)


@site_app.command("list")
def site_list() -> None:
    list_table(
        "Sites",
        ["Name", "URL", "Id"],
        dir_queries.all_sites,
        attrgetter("display_name", "web_url", "id"),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(group_app, name="group")
    app.add_typer(app_app, name="app")
    app.add_typer(site_app, name="site")
