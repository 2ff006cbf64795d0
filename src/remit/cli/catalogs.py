"""``remit catalog`` and ``remit resource``: catalogs and their resources."""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated

import typer

from remit.catalogs import operations as catalog_ops
from remit.catalogs import queries as catalog_queries
from remit.catalogs import resources as resource_ops
from remit.cli.common import catalog_id, fail, list_table, plain, principal_id, unit
from remit.models.vocabulary import CatalogState

catalog_app = typer.Typer(help="Catalogs.", no_args_is_help=True)
resource_app = typer.Typer(help="Catalog resources.", no_args_is_help=True)


@catalog_app.command("list")
def catalog_list() -> None:
    list_table(
        "Catalogs",
        ["Name", "State", "External", "Type", "Id"],
        catalog_queries.all_catalogs,
        attrgetter("display_name", "state", "is_externally_visible", "catalog_type", "id"),
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
            state=CatalogState.UNPUBLISHED if unpublished else CatalogState.PUBLISHED,
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
            origin = catalog_queries.application_origin(ctx, name)
        created = resource_ops.add_resource(
            ctx, catalog_id=catalog_id(ctx, catalog), origin_system_name=system, origin_id=origin
        )
        plain(created.resource_id or "")


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
    app.add_typer(resource_app, name="resource")
