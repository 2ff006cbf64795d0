"""``remit role`` and ``remit explain``: who holds which role, and why a task is allowed."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from remit.authz.roles import EM_ROLES, role_name
from remit.authz.tasks import Task, phrase
from remit.cli.common import catalog_id, console, fail, list_table, plain, principal_id, unit
from remit.directory import operations as dir_ops
from remit.roles import operations as authz_ops
from remit.roles import queries as role_queries

role_app = typer.Typer(
    help="Role assignments (directory and entitlement management).", no_args_is_help=True
)


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
    list_table(
        "Entitlement-management role assignments",
        ["Role", "Principal", "Scope", "Id"],
        role_queries.all_role_assignments,
        lambda a: (role_name(a.role_definition_id), a.principal_id, a.app_scope_id, a.id),
    )


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
    request: Annotated[
        str | None,
        typer.Option(help="assignment request id: may the user approve or deny it now, and why"),
    ] = None,
    list_tasks: Annotated[bool, typer.Option(help="print the task names and exit")] = False,
) -> None:
    """Say which role assignment allows a task, or why none does; with --request, why the user
    may or may not approve that request."""
    if list_tasks:
        for t in Task:
            plain(f"{t.value}\t{phrase(t)}")
        return
    if request:
        if task or catalog or group:
            fail("--request is asked about alone: no --task, --catalog or --group", 2)
        _explain_request(user, request)
        return
    if group and not task:
        task = Task.GROUPS_MANAGE.value
    if not task:
        fail("--task is required (see --list-tasks)", 2)
    with unit(write=False) as ctx:
        cid = catalog_id(ctx, catalog) if catalog else None
        gid = principal_id(ctx.session, group) if group else None
        result = role_queries.explain_for(ctx, user=user, task=task, catalog_id=cid, group_id=gid)
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


def _explain_request(user: str, request_id: str) -> None:
    with unit(write=False) as ctx:
        result = role_queries.explain_approval_for(ctx, user=user, request_id=request_id)
    verdict = "[green]ALLOWED[/green]" if result.allowed else "[red]DENIED[/red]"
    may = "may" if result.allowed else "may not"
    what = escape(f"{user} {may} approve or deny request {request_id}")
    console.print(f"{verdict} {what}", highlight=False)
    for reason in result.reasons:
        console.print(f"  - {reason}", highlight=False, markup=False)
    if not result.allowed:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.add_typer(role_app, name="role")
    app.command()(explain)
