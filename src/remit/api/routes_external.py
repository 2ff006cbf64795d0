"""Connected organizations with their sponsors, and the tenant settings (graph-api §A.3.8,
§A.3.9). Who may do what is decided in ``remit.external`` (docs/decisions/0012)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from remit.api.bodies import Body, Ref
from remit.api.calls import Paged, Plain, Single, shaped
from remit.api.collection import QueryOptions
from remit.api.shapes import group, iso, user
from remit.api.state import identity
from remit.context import Ctx
from remit.external import orgs, queries, sponsors
from remit.external import settings as tenant_settings
from remit.external.queries import Sponsor
from remit.models.directory import User
from remit.models.external import ConnectedOrganization, TenantSettings
from remit.models.vocabulary import GRAPH, OrganizationState

EM = "/v1.0/identityGovernance/entitlementManagement"
CONTEXT = "identityGovernance/entitlementManagement/connectedOrganizations"
SPONSORS = {"internalSponsors": "internal", "externalSponsors": "external"}
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=EM, tags=["connectedOrganizations"], dependencies=[Depends(identity)])


class OrganizationCreate(Body):
    displayName: str = Field(max_length=256)
    description: str | None = Field(default=None, max_length=4000)
    state: Any = OrganizationState.CONFIGURED
    identitySources: list[Any] | None = Field(default=None, max_length=100)


class OrganizationUpdate(Body):
    displayName: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=4000)
    state: Any = None
    identitySources: list[Any] | None = Field(default=None, max_length=100)


class SettingsUpdate(Body):
    externalUserLifecycleAction: Any = None
    durationUntilExternalUserDeletedAfterBlocked: Any = None


def organization(org: ConnectedOrganization) -> dict[str, Any]:
    return {
        "id": org.id,
        "displayName": org.display_name,
        "description": org.description,
        "state": org.state,
        "identitySources": org.identity_sources,
        "createdDateTime": iso(org.created_at),
        "modifiedDateTime": iso(org.modified_at),
    }


def principal(found: Sponsor) -> dict[str, Any]:
    """A sponsor as the directory object it is, with its ``@odata.type``."""
    return user(found) if isinstance(found, User) else group(found)


def _render(q: QueryOptions) -> Callable[[Ctx, list[ConnectedOrganization]], list[dict[str, Any]]]:
    """Organizations, with their sponsors batch-loaded for the page when expanded."""

    def render(ctx: Ctx, rows: list[ConnectedOrganization]) -> list[dict[str, Any]]:
        items = [organization(o) for o in rows]
        wanted = [name for name in SPONSORS if name in q.expand]
        if not wanted or not rows:
            return items
        found = queries.sponsors_by_organization(
            ctx, [o.id for o in rows], [SPONSORS[name] for name in wanted]
        )
        for item in items:
            for name in wanted:
                item[name] = [principal(p) for p in found.get((item["id"], SPONSORS[name]), [])]
        return items

    return render


@router.get("/connectedOrganizations")
def list_organizations(call: Paged) -> dict[str, Any]:
    return call.page(
        queries.organizations, _render(call.q), context=CONTEXT, expandable=tuple(SPONSORS)
    )


@router.post("/connectedOrganizations", status_code=201)
def create_organization(body: OrganizationCreate, call: Plain) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
        org = orgs.create_organization(
            ctx,
            display_name=body.displayName,
            description=body.description,
            state=body.state,
            identity_sources=body.identitySources,
        )
        return call.entity(CONTEXT, organization(org))


@router.get("/connectedOrganizations/{organization_id}")
def get_organization(organization_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        CONTEXT,
        lambda ctx: queries.organization(ctx, organization_id),
        _render(call.q),
        expandable=tuple(SPONSORS),
    )


@router.patch("/connectedOrganizations/{organization_id}", status_code=204)
def update_organization(organization_id: str, body: OrganizationUpdate, call: Plain) -> Response:
    return call.done(lambda ctx: orgs.update_organization(ctx, organization_id, body.changes()))


@router.delete("/connectedOrganizations/{organization_id}", status_code=204)
def delete_organization(organization_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: orgs.delete_organization(ctx, organization_id))


# ---------------------------------------------------------------- sponsors


def _sponsor_routes(name: str, kind: str) -> None:
    """GET …/{name}, POST …/{name}/$ref, DELETE …/{name}/{id}/$ref for one kind of sponsor."""
    path = f"/connectedOrganizations/{{organization_id}}/{name}"

    @router.get(path, name=f"list_{name}")
    def list_sponsors(organization_id: str, call: Paged) -> dict[str, Any]:
        return call.page(
            lambda ctx, options: queries.sponsors(ctx, organization_id, kind, options),
            shaped(principal),
            context="directoryObjects",
        )

    @router.post(f"{path}/$ref", status_code=204, name=f"add_{name}")
    def add_sponsor(organization_id: str, body: Ref, call: Plain) -> Response:
        principal_id = body.object_id("users", "groups")
        return call.done(lambda ctx: sponsors.add_sponsor(ctx, organization_id, kind, principal_id))

    @router.delete(f"{path}/{{principal_id}}/$ref", status_code=204, name=f"remove_{name}")
    def remove_sponsor(organization_id: str, principal_id: str, call: Plain) -> Response:
        return call.done(
            lambda ctx: sponsors.remove_sponsor(ctx, organization_id, kind, principal_id)
        )


for _name, _kind in SPONSORS.items():
    _sponsor_routes(_name, _kind)


# ---------------------------------------------------------------- settings


def _settings(_ctx: Ctx, rows: list[TenantSettings]) -> list[dict[str, Any]]:
    return [
        {
            "@odata.type": GRAPH + "entitlementManagementSettings",
            "id": str(row.id),
            **tenant_settings.as_graph(row),
        }
        for row in rows
    ]


@router.get("/settings")
def get_settings(call: Single) -> dict[str, Any]:
    return call.one(
        "identityGovernance/entitlementManagement/settings",
        queries.settings,
        _settings,
        expandable=(),
    )


@router.patch("/settings", status_code=204)
def update_settings(body: SettingsUpdate, call: Plain) -> Response:
    return call.done(lambda ctx: tenant_settings.update_settings(ctx, body.changes()))
