"""Assignment policies (graph-api §A.3.4) and the requestor's view of packages (§A.3.3:
getApplicablePolicyRequirements, filterByCurrentUser(on='allowedRequestor')).

Included before ``routes_packages``: its ``GET accessPackages/{id}`` would otherwise take
``accessPackages/filterByCurrentUser(on='allowedRequestor')`` for a package id.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.api import shapes
from remit.api.collection import (
    QueryOptions,
    check_expand,
    collection,
    context_url,
    entity,
    query_options,
    single_options,
)
from remit.api.routes_packages import PACKAGE_FIELDS
from remit.api.state import identity, operation
from remit.errors import Invalid
from remit.listing import F
from remit.models.catalogs import Catalog
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy
from remit.packages.operations import get_package
from remit.policies import document
from remit.policies import operations as ops
from remit.tokens import Identity

EM = "/v1.0/identityGovernance/entitlementManagement"
CONTEXT = "identityGovernance/entitlementManagement/assignmentPolicies"
PACKAGES = "identityGovernance/entitlementManagement/accessPackages"
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=EM, tags=["assignmentPolicies"], dependencies=[Depends(identity)])

POLICY_FIELDS = {
    "id": F(AssignmentPolicy.id),
    "displayName": F(AssignmentPolicy.display_name),
    "description": F(AssignmentPolicy.description),
    "accessPackage/id": F(AssignmentPolicy.access_package_id),
    "catalog/id": F(AssignmentPolicy.catalog_id),
    "createdDateTime": F(AssignmentPolicy.created_at),
    "modifiedDateTime": F(AssignmentPolicy.modified_at),
}
# questions and customExtensionStageSettings are always inline; expanding them changes nothing.
POLICY_EXPANDS = ("accessPackage", "catalog", "questions", "customExtensionStageSettings")
PolicyBody = Body(..., description="an accessPackageAssignmentPolicy")


def render_policies(q: QueryOptions):  # type: ignore[no-untyped-def]
    """Graph JSON for a page of policies, with each expansion batch-loaded (no N+1)."""

    def render(session: Session, rows: list[AssignmentPolicy]) -> list[dict[str, Any]]:
        items = [document.render(p) for p in rows]
        if not rows:
            return items
        if "accessPackage" in q.expand:
            packages = {
                p.id: shapes.access_package(p)
                for p in session.execute(
                    select(AccessPackage).where(
                        AccessPackage.id.in_({r.access_package_id for r in rows})
                    )
                ).scalars()
            }
            for item, row in zip(items, rows, strict=True):
                item["accessPackage"] = packages[row.access_package_id]
        if "catalog" in q.expand:
            catalogs = {
                c.id: shapes.catalog(c)
                for c in session.execute(
                    select(Catalog).where(Catalog.id.in_({r.catalog_id for r in rows}))
                ).scalars()
            }
            for item, row in zip(items, rows, strict=True):
                item["catalog"] = catalogs[row.catalog_id]
        return items

    return render


@router.get("/assignmentPolicies")
def list_policies(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return collection(
            request,
            ctx.session,
            ops.visible_policies(ctx),
            key=AssignmentPolicy.id,
            fields=POLICY_FIELDS,
            q=q,
            render=render_policies(q),
            context=CONTEXT,
            expandable=POLICY_EXPANDS,
        )


@router.post("/assignmentPolicies", status_code=201)
def create_policy(
    request: Request, body: dict[str, Any] = PolicyBody, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=True) as ctx:
        policy = ops.create_policy(ctx, body)
        return entity(request, CONTEXT, document.render(policy))


@router.get("/assignmentPolicies/{policy_id}")
def get_policy(
    request: Request,
    policy_id: str,
    q: QueryOptions = Depends(single_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        policy = ops.get_policy(ctx, policy_id)
        check_expand(q, POLICY_EXPANDS)
        return entity(request, CONTEXT, render_policies(q)(ctx.session, [policy])[0], q)


@router.put("/assignmentPolicies/{policy_id}")
def replace_policy(
    request: Request,
    policy_id: str,
    body: dict[str, Any] = PolicyBody,
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=True) as ctx:
        policy = ops.replace_policy(ctx, policy_id, body)
        return entity(request, CONTEXT, document.render(policy))


@router.delete("/assignmentPolicies/{policy_id}", status_code=204)
def delete_policy(
    request: Request, policy_id: str, ident: Identity = Depends(identity)
) -> Response:
    with operation(request, ident, write=True) as ctx:
        ops.delete_policy(ctx, policy_id)
    return Response(status_code=204)


def _list_routes(field: str) -> None:
    """GET and POST ``assignmentPolicies/{id}/<field>``: the policy's list, and one more item."""
    path = f"/assignmentPolicies/{{policy_id}}/{field}"

    @router.get(path, name=f"list_{field}")
    def list_items(
        request: Request, policy_id: str, ident: Identity = Depends(identity)
    ) -> dict[str, Any]:
        with operation(request, ident, write=False) as ctx:
            policy = ops.get_policy(ctx, policy_id)
            return {
                "@odata.context": context_url(request, f"{CONTEXT}('{policy.id}')/{field}"),
                "value": document.render(policy)[field],
            }

    @router.post(path, status_code=201, name=f"add_{field}")
    def add_item(
        request: Request,
        policy_id: str,
        body: Any = Body(..., description=f"one of the policy's {field}"),
        ident: Identity = Depends(identity),
    ) -> dict[str, Any]:
        with operation(request, ident, write=True) as ctx:
            item = ops.add_item(ctx, policy_id, field, body)
            return {
                "@odata.context": context_url(request, f"{CONTEXT}('{policy_id}')/{field}/$entity"),
                **item,
            }


for _field in ops.ITEM_LISTS:
    _list_routes(_field)


# ---------------------------------------------------------------- from the access package


@router.get("/accessPackages/filterByCurrentUser(on='{on}')")
def filter_packages_by_current_user(
    request: Request,
    on: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    if on.lower() != "allowedrequestor":
        raise Invalid("accessPackages can be filtered on 'allowedRequestor' only", target="on")
    with operation(request, ident, write=False) as ctx:
        return collection(
            request,
            ctx.session,
            ops.requestable_packages(ctx),
            key=AccessPackage.id,
            fields=PACKAGE_FIELDS,
            q=q,
            render=lambda _session, rows: [shapes.access_package(p) for p in rows],
            context=PACKAGES,
        )


@router.get("/accessPackages/{package_id}/assignmentPolicies")
def list_package_policies(
    request: Request,
    package_id: str,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        package = get_package(ctx, package_id)
        return collection(
            request,
            ctx.session,
            ops.visible_policies(ctx).where(AssignmentPolicy.access_package_id == package.id),
            key=AssignmentPolicy.id,
            fields=POLICY_FIELDS,
            q=q,
            render=render_policies(q),
            context=f"{PACKAGES}('{package.id}')/assignmentPolicies",
            expandable=POLICY_EXPANDS,
        )


@router.post("/accessPackages/{package_id}/assignmentPolicies", status_code=201)
def create_package_policy(
    request: Request,
    package_id: str,
    body: dict[str, Any] = PolicyBody,
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=True) as ctx:
        policy = ops.create_policy(ctx, body, package_id=package_id)
        return entity(request, CONTEXT, document.render(policy))


@router.post("/accessPackages/{package_id}/getApplicablePolicyRequirements")
def get_applicable_policy_requirements(
    request: Request, package_id: str, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    # No body is expected; whatever a client sends is ignored.
    with operation(request, ident, write=False) as ctx:
        return {
            "@odata.context": context_url(
                request, "Collection(microsoft.graph.accessPackageAssignmentRequestRequirements)"
            ),
            "value": ops.applicable_requirements(ctx, package_id),
        }
