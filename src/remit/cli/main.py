"""``remit``: serve, migrate, load the demo, manage the directory and delegation, audit."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from sqlalchemy import select

from remit.authz.decide import authorize
from remit.authz.roles import EM_ROLES, role_name
from remit.authz.tasks import Task, phrase
from remit.catalogs import operations as catalog_ops
from remit.catalogs import resources as resource_ops
from remit.cli import jobs as jobs_cli
from remit.cli import lifecycle as lifecycle_cli
from remit.cli.common import (
    ACTING_AS,
    catalog_id,
    console,
    fail,
    open_db,
    plain,
    principal_id,
    settings,
    table,
    unit,
    user_id,
)
from remit.directory import operations as dir_ops
from remit.lifecycle import package_roles
from remit.models.catalogs import Catalog
from remit.models.directory import Application, Group, Site, User
from remit.packages import operations as package_ops
from remit.roles import operations as authz_ops

app = typer.Typer(
    name="remit",
    help="Delegated access governance: operator commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo tenant.", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
group_app = typer.Typer(help="Groups.", no_args_is_help=True)
app_app = typer.Typer(help="Applications.", no_args_is_help=True)
site_app = typer.Typer(help="Sites.", no_args_is_help=True)
role_app = typer.Typer(
    help="Role assignments (directory and entitlement management).", no_args_is_help=True
)
catalog_app = typer.Typer(help="Catalogs.", no_args_is_help=True)
resource_app = typer.Typer(help="Catalog resources.", no_args_is_help=True)
package_app = typer.Typer(help="Access packages.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for the API.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
for sub, name in (
    (db_app, "db"),
    (demo_app, "demo"),
    (user_app, "user"),
    (group_app, "group"),
    (app_app, "app"),
    (site_app, "site"),
    (role_app, "role"),
    (catalog_app, "catalog"),
    (resource_app, "resource"),
    (package_app, "package"),
    (token_app, "token"),
    (audit_app, "audit"),
):
    app.add_typer(sub, name=name)
jobs_cli.register(app)
lifecycle_cli.register(app)

AsOption = Annotated[
    str | None,
    typer.Option("--as", help="act as this user (UPN); default: the operator, with full rights"),
]


@app.callback()
def _root(as_: AsOption = None) -> None:
    from remit import logs

    ACTING_AS["upn"] = as_
    # Warnings (a data directory tightened, say) go to stderr, never into a command's output.
    logs.configure(settings().log_level)


# ---------------------------------------------------------------- serve / db / demo


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the current schema."""
    from remit import bootstrap

    s = settings()
    db = open_db(s)
    try:
        bootstrap.upgrade(db)
    except Exception as exc:
        fail(f"upgrade failed: {str(exc).splitlines()[0]}")
    finally:
        db.dispose()
    console.print("database is at the current schema")


@demo_app.command("load")
def demo_load() -> None:
    """Load the demo tenant (contoso.example) into an empty database."""
    from remit.demo import load_if_empty

    db = open_db()
    try:
        loaded = load_if_empty(db)
    finally:
        db.dispose()
    console.print("demo tenant loaded" if loaded else "the database is not empty; nothing loaded")


# ---------------------------------------------------------------- directory


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
    with unit(write=False) as ctx:
        authorize(ctx.actor, Task.DIRECTORY_READ)
        users = ctx.session.execute(select(User).order_by(User.upn_key)).scalars().all()
        table(
            "Users",
            ["UPN", "Name", "Type", "Enabled", "Department", "Id"],
            [
                (
                    u.user_principal_name,
                    u.display_name,
                    u.user_type,
                    u.account_enabled,
                    u.department,
                    u.id,
                )
                for u in users
            ],
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
            owner_ids=[user_id(ctx.session, o) for o in owner or []],
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
    with unit(write=False) as ctx:
        authorize(ctx.actor, Task.DIRECTORY_READ)
        groups = ctx.session.execute(select(Group).order_by(Group.display_name)).scalars().all()
        table(
            "Groups",
            ["Name", "Kind", "Role-assignable", "Id"],
            [(g.display_name, g.kind, g.is_assignable_to_role, g.id) for g in groups],
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
            ctx,
            display_name=name,
            app_roles=roles,
            owner_ids=[user_id(ctx.session, o) for o in owner or []],
        )
        plain(created.id)


@app_app.command("list")
def app_list() -> None:
    with unit(write=False) as ctx:
        apps = ctx.session.execute(select(Application).order_by(Application.display_name))
        table("Applications", ["Name", "Id"], [(a.display_name, a.id) for a in apps.scalars()])


@site_app.command("add")
def site_add(
    name: str,
    url: str,
    admin: Annotated[list[str] | None, typer.Option(help="site administrator UPN")] = None,
) -> None:
    with unit() as ctx:
        site = dir_ops.create_site(
            ctx,
            display_name=name,
            web_url=url,
            admin_ids=[user_id(ctx.session, a) for a in admin or []],
        )
        plain(site.id)


@site_app.command("list")
def site_list() -> None:
    with unit(write=False) as ctx:
        sites = ctx.session.execute(select(Site).order_by(Site.display_name)).scalars()
        table("Sites", ["Name", "URL", "Id"], [(s.display_name, s.web_url, s.id) for s in sites])


# ---------------------------------------------------------------- roles


def _em_role(name: str) -> str | None:
    wanted = name.strip().lower()
    for role in EM_ROLES.values():
        if wanted in (role.id, role.display_name.lower(), role.portal_name.lower()):
            return role.id
    return None


@role_app.command("assign")
def role_assign(
    principal: Annotated[str, typer.Argument(help="user UPN, group name, or id")],
    role: Annotated[
        str,
        typer.Argument(
            help="e.g. 'Catalog creator', 'Catalog owner', 'Identity Governance Administrator'"
        ),
    ],
    catalog: Annotated[str | None, typer.Option(help="catalog name or id (catalog roles)")] = None,
) -> None:
    """Assign an entitlement-management role (with --catalog for catalog roles) or a
    directory role."""
    with unit() as ctx:
        pid = principal_id(ctx.session, principal)
        em_role = _em_role(role)
        if em_role is not None:
            scope = f"/AccessPackageCatalog/{catalog_id(ctx, catalog)}" if catalog else "/"
            created = authz_ops.create_role_assignment(
                ctx, principal_id=pid, role_definition_id=em_role, app_scope_id=scope
            )
            plain(created.id)
        else:
            if catalog:
                fail("--catalog applies to entitlement-management roles only", 2)
            plain(dir_ops.assign_directory_role(ctx, principal_id=pid, role=role).id)


@role_app.command("list")
def role_list() -> None:
    with unit(write=False) as ctx:
        rows = ctx.session.execute(authz_ops.visible_role_assignments(ctx)).scalars().all()
        table(
            "Entitlement-management role assignments",
            ["Role", "Principal", "Scope", "Id"],
            [(role_name(a.role_definition_id), a.principal_id, a.app_scope_id, a.id) for a in rows],
        )


# ---------------------------------------------------------------- catalogs, resources, packages


@catalog_app.command("list")
def catalog_list() -> None:
    with unit(write=False) as ctx:
        rows = (
            ctx.session.execute(catalog_ops.visible_catalogs(ctx).order_by(Catalog.name_key))
            .scalars()
            .all()
        )
        table(
            "Catalogs",
            ["Name", "State", "External", "Type", "Id"],
            [
                (c.display_name, c.state, c.is_externally_visible, c.catalog_type, c.id)
                for c in rows
            ],
        )


@catalog_app.command("create")
def catalog_create(
    name: str,
    description: Annotated[str | None, typer.Option()] = None,
    unpublished: Annotated[bool, typer.Option(help="create it disabled")] = False,
) -> None:
    with unit() as ctx:
        created = catalog_ops.create_catalog(
            ctx,
            display_name=name,
            description=description,
            state="unpublished" if unpublished else "published",
        )
        plain(created.id)


@resource_app.command("add")
def resource_add(
    catalog: Annotated[str, typer.Option(help="catalog name or id")],
    group: Annotated[str | None, typer.Option(help="group name or id")] = None,
    application: Annotated[str | None, typer.Option("--app", help="application name or id")] = None,
    site: Annotated[str | None, typer.Option(help="site URL or id")] = None,
) -> None:
    """Onboard a group, application or site into a catalog."""
    chosen = [
        (k, v)
        for k, v in (
            ("AadGroup", group),
            ("AadApplication", application),
            ("SharePointOnline", site),
        )
        if v
    ]
    if len(chosen) != 1:
        fail("name exactly one of --group, --app or --site", 2)
    system, name = chosen[0]
    with unit() as ctx:
        origin = name
        if system == "AadGroup":
            origin = principal_id(ctx.session, name)
        elif system == "AadApplication":
            origin = (
                ctx.session.execute(
                    select(Application.id).where(
                        (Application.display_name == name) | (Application.id == name)
                    )
                ).scalar()
                or name
            )
        created = resource_ops.add_resource(
            ctx, catalog_id=catalog_id(ctx, catalog), origin_system_name=system, origin_id=origin
        )
        plain(created.resource_id or "")


@package_app.command("create")
def package_create(
    name: str,
    catalog: Annotated[str, typer.Option(help="catalog name or id")],
    description: Annotated[str | None, typer.Option()] = None,
    hidden: Annotated[bool, typer.Option()] = False,
) -> None:
    with unit() as ctx:
        created = package_ops.create_package(
            ctx,
            display_name=name,
            catalog_id=catalog_id(ctx, catalog),
            description=description,
            is_hidden=hidden,
        )
        plain(created.id)


@package_app.command("add-role")
def package_add_role(
    package: Annotated[str, typer.Argument(help="access package id")],
    role: Annotated[str, typer.Argument(help="resource role originId, e.g. Member_<groupId>")],
) -> None:
    """Add a catalog resource role (at its root scope) to an access package."""
    with unit() as ctx:
        rrs = package_roles.add_resource_role_scope(ctx, package, role_origin_id=role)
        plain(package_ops.rrs_id(rrs))


@package_app.command("list")
def package_list() -> None:
    with unit(write=False) as ctx:
        rows = ctx.session.execute(package_ops.visible_packages(ctx)).scalars().all()
        table(
            "Access packages",
            ["Name", "Catalog", "Hidden", "Id"],
            [(p.display_name, p.catalog_id, p.is_hidden, p.id) for p in rows],
        )


# ---------------------------------------------------------------- tokens, explain, audit


@token_app.command("issue")
def token_issue(
    user: Annotated[str, typer.Option("--user", help="the user's UPN")],
    ttl: Annotated[int, typer.Option(help="lifetime in seconds", min=60, max=7 * 24 * 3600)] = 3600,
) -> None:
    """Print a bearer token for a user (the token alone on the last line)."""
    from remit.clock import utcnow
    from remit.tokens import TokenService

    s = settings()
    with unit(write=False) as ctx:
        found = ctx.session.execute(select(User).where(User.upn_key == user.lower())).scalar()
        if found is None:
            fail(f"no user {user}")
        if not found.account_enabled:
            fail(f"user {user} is disabled")
        token = TokenService(s).issue(
            found.id, found.user_principal_name, now=utcnow(), ttl=timedelta(seconds=ttl)
        )
    plain(token)


@app.command()
def explain(
    user: Annotated[str, typer.Option(help="UPN of the user to explain")],
    task: Annotated[str, typer.Option(help="a task, e.g. catalog:update (see --list-tasks)")] = "",
    catalog: Annotated[str | None, typer.Option(help="catalog name or id")] = None,
    group: Annotated[
        str | None,
        typer.Option(
            help="group name or id: may the user change its members or owners; with --catalog,"
            " may the user add it to that catalog as a resource"
        ),
    ] = None,
    list_tasks: Annotated[bool, typer.Option(help="print the task names and exit")] = False,
) -> None:
    """Say which role assignment allows a task, or why none does."""
    if list_tasks:
        for t in Task:
            plain(f"{t.value}\t{phrase(t)}")
        return
    if group and not task:
        task = Task.GROUPS_MANAGE.value
    if not task:
        fail("--task is required (see --list-tasks)", 2)
    with unit(write=False) as ctx:
        cid = catalog_id(ctx, catalog) if catalog else None
        gid = principal_id(ctx.session, group) if group else None
        result = authz_ops.explain_for(ctx, user=user, task=task, catalog_id=cid, group_id=gid)
    verdict = "[green]ALLOWED[/green]" if result.allowed else "[red]DENIED[/red]"
    if group and catalog:
        what, where = f"add {group} to catalog {catalog}", ""
    else:
        what = f"change the members or owners of {group}" if group else phrase(result.task)
        where = f" on catalog {catalog}" if catalog else ""
    console.print(f"{verdict} {user} may {'' if result.allowed else 'not '}{what}{where}")
    for reason in result.reasons:
        console.print(f"  - {reason}", highlight=False)
    if not result.allowed:
        raise typer.Exit(3)


@audit_app.command("history")
def audit_history(
    user: Annotated[str, typer.Argument(metavar="UPN", help="the user whose history to read")],
) -> None:
    """A user's access history from the audit log, oldest first: requests, decisions,
    assignments, deliveries and removals (the events you may read)."""
    from remit.audit.queries import history

    with unit(write=False) as ctx:
        found = ctx.session.execute(select(User).where(User.upn_key == user.lower())).scalar()
        if found is None:
            fail(f"no user {user}")
        rows = ctx.session.execute(history(ctx, found.id)).scalars().all()
        catalogs = dict(
            ctx.session.execute(
                select(Catalog.id, Catalog.display_name).where(
                    Catalog.id.in_({e.catalog_id for e in rows if e.catalog_id})
                )
            )
            .tuples()
            .all()
        )
        table(
            f"History of {found.user_principal_name}",
            ["When", "Activity", "By", "About", "Catalog"],
            [
                (
                    e.occurred_at.isoformat(timespec="seconds"),
                    e.activity,
                    e.actor_name,
                    e.target_name or e.target_id,
                    catalogs.get(e.catalog_id or "", e.catalog_id),
                )
                for e in rows
            ],
        )


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit hash chain end to end."""
    from remit.audit.chain import verify

    db = open_db()
    try:
        with db.read() as conn:
            result = verify(conn)
    except Exception as exc:
        fail(f"cannot read the audit log: {str(exc).splitlines()[0]}")
    finally:
        db.dispose()
    if result.ok:
        console.print(
            f"audit chain OK: {result.events} events, head seq {result.head_seq} "
            f"hash {result.head_hash}",
            highlight=False,
        )
        return
    for problem in result.problems:
        console.print(f"[red]{problem}[/red]", highlight=False)
    fail(f"audit chain BROKEN: {len(result.problems)} problem(s) in {result.events} events")
