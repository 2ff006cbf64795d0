"""A catalog's custom extensions, its webhooks (Graph v1.0
``catalogs/{id}/accessPackageCustomWorkflowExtensions``), through ``remit.notify.extensions``.

The secret is write-only: accepted on POST and PATCH, never rendered, except that a secret remit
generated (a POST without one) is returned once, in the POST's response.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from remit.api.bodies import Body, Name, Text
from remit.api.calls import Paged, Plain, Single, shaped
from remit.api.shapes import iso
from remit.api.state import identity
from remit.models.notify import CustomExtension
from remit.models.vocabulary import GRAPH
from remit.notify import extensions as ops
from remit.notify import queries

EM = "/v1.0/identityGovernance/entitlementManagement"
PATH = "/catalogs/{catalog_id}/accessPackageCustomWorkflowExtensions"
router = APIRouter(prefix=EM, tags=["custom extensions"], dependencies=[Depends(identity)])


class EndpointConfiguration(Body):
    # Graph's logicAppTriggerEndpointConfiguration: remit calls ``url``; the Azure names that
    # locate a Logic App are accepted and ignored.
    url: str | None = Field(default=None, max_length=2048)
    logicAppWorkflowName: str | None = Field(default=None, max_length=256)
    resourceGroupName: str | None = Field(default=None, max_length=256)
    subscriptionId: str | None = Field(default=None, max_length=64)


class ExtensionCreate(Body):
    displayName: str = Name
    description: str | None = Text
    endpointConfiguration: EndpointConfiguration | None = None
    # No length rule here: a validation error must not be able to echo it (the operation checks).
    secret: str | None = None


class ExtensionUpdate(Body):
    displayName: str | None = Field(default=None, max_length=256)
    description: str | None = Text
    endpointConfiguration: EndpointConfiguration | None = None
    secret: str | None = None


def shape(ext: CustomExtension) -> dict[str, Any]:
    return {
        "@odata.type": GRAPH + "accessPackageAssignmentRequestWorkflowExtension",
        "id": ext.id,
        "displayName": ext.display_name,
        "description": ext.description,
        "endpointConfiguration": {
            "@odata.type": GRAPH + "logicAppTriggerEndpointConfiguration",
            "url": ext.endpoint_url,
        },
        "createdDateTime": iso(ext.created_at),
        "lastModifiedDateTime": iso(ext.modified_at),
    }


def _context(catalog_id: str) -> str:
    return (
        f"identityGovernance/entitlementManagement/catalogs('{catalog_id}')"
        "/accessPackageCustomWorkflowExtensions"
    )


@router.get(PATH)
def list_extensions(catalog_id: str, call: Paged) -> dict[str, Any]:
    return call.page(
        lambda ctx, options: queries.extensions(ctx, catalog_id, options),
        shaped(shape),
        context=_context(catalog_id),
    )


@router.post(PATH, status_code=201)
def create_extension(catalog_id: str, body: ExtensionCreate, call: Plain) -> dict[str, Any]:
    endpoint = body.endpointConfiguration
    with call.unit(write=True) as ctx:
        ext, generated = ops.create_extension(
            ctx,
            catalog_id=catalog_id,
            display_name=body.displayName,
            description=body.description,
            endpoint_configuration=endpoint.changes() if endpoint else None,
            secret=body.secret,
        )
        item = shape(ext)
        if generated is not None:
            item["secret"] = generated  # the one time a secret is shown: remit made it
        return call.entity(_context(catalog_id), item)


@router.get(PATH + "/{extension_id}")
def get_extension(catalog_id: str, extension_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        _context(catalog_id),
        lambda ctx: queries.extension(ctx, catalog_id, extension_id),
        shaped(shape),
    )


@router.patch(PATH + "/{extension_id}")
def update_extension(
    catalog_id: str, extension_id: str, body: ExtensionUpdate, call: Plain
) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
        ext = ops.update_extension(ctx, catalog_id, extension_id, body.changes())
        return call.entity(_context(catalog_id), shape(ext))


@router.delete(PATH + "/{extension_id}", status_code=204)
def delete_extension(catalog_id: str, extension_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.delete_extension(ctx, catalog_id, extension_id))
