"""``remit package``: access packages and their resource roles."""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated

import typer

from remit.cli.common import catalog_id, list_table, plain, unit
from remit.lifecycle import package_roles
from remit.packages import operations as package_ops
from remit.packages import queries as package_queries

package_app = typer.Typer(help="Access packages.", no_args_is_help=True)


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
    list_table(
        "Access packages",
        ["Name", "Catalog", "Hidden", "Id"],
        package_queries.all_packages,
        attrgetter("display_name", "catalog_id", "is_hidden", "id"),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(package_app, name="package")
