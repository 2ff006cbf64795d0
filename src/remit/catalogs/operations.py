"""Catalog use cases (spec §3): create, update, delete, and the General catalog.

Reads are in ``queries``: every change starts by reading the catalog under its read rule (one
the actor may not read is ``NotFound``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select

from remit import validation
from remit.authz.decide import authorize, can
from remit.authz.tasks import Task
from remit.catalogs import queries
from remit.context import Ctx
from remit.errors import Conflict, Invalid
from remit.models.catalogs import Catalog
from remit.models.packages import AccessPackage
from remit.models.vocabulary import Activity, CatalogState
from remit.roles.operations import grant_first_owner

GENERAL_CATALOG_ID = "c0000000-0000-4000-8000-000000000001"
CATALOG_TYPES = ("userManaged", "serviceDefault", "serviceManaged")
TARGET = "AccessPackageCatalog"


def _state(value: Any) -> CatalogState:
    if not isinstance(value, str) or value.lower() not in tuple(CatalogState):
        raise Invalid("state must be 'published' or 'unpublished'", target="state")
    return CatalogState(value.lower())


def _audit(ctx: Ctx, catalog: Catalog, activity: Activity, **event: Any) -> None:
    """One audit event about ``catalog`` (its own, so that its readers see it); ``event``
    carries the operation type and the before/after values."""
    ctx.audit(
        activity,
        target_type=TARGET,
        target_id=catalog.id,
        target_name=catalog.display_name,
        catalog_id=catalog.id,
        **event,
    )


def _add(ctx: Ctx, catalog: Catalog) -> Catalog:
    """Insert a new catalog, audited."""
    ctx.session.add(catalog)
    ctx.session.flush()
    _audit(ctx, catalog, Activity.CREATE_CATALOG, operation_type="Add", after=snapshot(catalog))
    return catalog


def _unique_name(ctx: Ctx, name: str, own_id: str | None = None) -> None:
    clash = ctx.session.execute(
        select(Catalog.id).where(Catalog.name_key == name.lower())
    ).scalar_one_or_none()
    if clash is not None and clash != own_id:
        raise Conflict(f"a catalog named {name!r} already exists", target="displayName")


def create_catalog(
    ctx: Ctx,
    *,
    display_name: str,
    description: str | None = None,
    state: str = CatalogState.PUBLISHED,
    is_externally_visible: bool = True,
) -> Catalog:
    authorize(ctx.actor, Task.CATALOG_CREATE)
    name = validation.display_name(display_name)
    _unique_name(ctx, name)
    catalog = _add(
        ctx,
        Catalog(
            display_name=name,
            name_key=name.lower(),
            description=validation.optional_text(description, "description"),
            state=_state(state),
            is_externally_visible=is_externally_visible,
            catalog_type="userManaged",
            created_at=ctx.now,
            modified_at=ctx.now,
            created_by=ctx.actor.user_id,
        ),
    )
    # An administrator already sees every catalog; anyone else becomes its first owner.
    if not can(ctx.actor, Task.CATALOG_READ) and not ctx.actor.is_system:
        grant_first_owner(ctx, catalog)
    return catalog


EDITABLE = {"displayName", "description", "state", "isExternallyVisible", "catalogType"}


def update_catalog(ctx: Ctx, catalog_id: str, changes: dict[str, Any]) -> Catalog:
    catalog = queries.get_catalog(ctx, catalog_id)
    authorize(ctx.actor, Task.CATALOG_UPDATE, catalog_id)
    validation.only_editable(changes, EDITABLE)
    if "catalogType" in changes and changes["catalogType"] != catalog.catalog_type:
        raise Invalid("catalogType is set by remit and cannot be changed", target="catalogType")
    before = snapshot(catalog)
    if "displayName" in changes:
        name = validation.display_name(changes["displayName"])
        if catalog.id == GENERAL_CATALOG_ID and name != catalog.display_name:
            raise Invalid("the General catalog cannot be renamed", target="displayName")
        _unique_name(ctx, name, catalog.id)
        catalog.display_name, catalog.name_key = name, name.lower()
    if "description" in changes:
        catalog.description = validation.optional_text(changes["description"], "description")
    if "state" in changes:
        catalog.state = _state(changes["state"])
    if "isExternallyVisible" in changes:
        flag = changes["isExternallyVisible"]
        if not isinstance(flag, bool):
            raise Invalid("isExternallyVisible must be true or false", target="isExternallyVisible")
        catalog.is_externally_visible = flag
    after = snapshot(catalog)
    if after != before:
        catalog.modified_at = ctx.now
        _audit(
            ctx,
            catalog,
            Activity.UPDATE_CATALOG,
            operation_type="Update",
            before=before,
            after=after,
        )
    return catalog


def delete_catalog(ctx: Ctx, catalog_id: str) -> None:
    catalog = queries.get_catalog(ctx, catalog_id)
    authorize(ctx.actor, Task.CATALOG_DELETE, catalog_id)
    if catalog.id == GENERAL_CATALOG_ID:
        raise Invalid("the General catalog cannot be deleted", code="notAllowed")
    if ctx.session.execute(select(exists().where(AccessPackage.catalog_id == catalog_id))).scalar():
        raise Conflict("the catalog still holds access packages; delete them first")
    ctx.session.delete(catalog)
    _audit(ctx, catalog, Activity.DELETE_CATALOG, operation_type="Delete", before=snapshot(catalog))


def snapshot(catalog: Catalog) -> dict[str, Any]:
    return {
        "displayName": catalog.display_name,
        "description": catalog.description,
        "state": catalog.state,
        "isExternallyVisible": catalog.is_externally_visible,
        "catalogType": catalog.catalog_type,
    }


def ensure_general_catalog(ctx: Ctx) -> Catalog:
    """Create the built-in General catalog once (idempotent; run at start-up and by the demo)."""
    catalog = ctx.session.get(Catalog, GENERAL_CATALOG_ID)
    if catalog is not None:
        return catalog
    return _add(
        ctx,
        Catalog(
            id=GENERAL_CATALOG_ID,
            display_name="General",
            name_key="general",
            description="Built-in catalog.",
            state=CatalogState.PUBLISHED,
            is_externally_visible=True,
            catalog_type="serviceDefault",
            created_at=ctx.now,
            modified_at=ctx.now,
        ),
    )
