"""Assignment policies (graph-api §A.3.4) and the requestor's view of packages (§A.3.3:
getApplicablePolicyRequirements, filterByCurrentUser(on='allowedRequestor')).

Included before ``routes_packages``: its ``GET accessPackages/{id}`` would otherwise take
``accessPackages/filterByCurrentUser(on='allowedRequestor')`` for a package id.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, Body, Depends, Response

from remit.api import shapes
from remit.api.calls import Paged, Plain, Single, shaped
from remit.api.collection import (
    Navigation,
    check_expand,
    context_url,
    list_options,
    page_body,
    rendering,
)
from remit.api.state import identity
from remit.errors import Invalid
from remit.models.policies import AssignmentPolicy
from remit.models.policy_settings import settings_of
from remit.packages.queries import get_package
from remit.policies import document, queries
from remit.policies import operations as ops

EM = "/v1.0/identityGovernance/entitlementManagement"
CONTEXT = "identityGovernance/entitlementManagement/assignmentPolicies"
PACKAGES = "identityGovernance/entitlementManagement/accessPackages"
# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix=EM, tags=["assignmentPolicies"], dependencies=[Depends(identity)])

# questions and customExtensionStageSettings are always inline; expanding them changes nothing.
POLICY_EXPANDS = ("accessPackage", "catalog", "questions", "customExtensionStageSettings")
REQUIREMENTS = "Collection(microsoft.graph.accessPackageAssignmentRequestRequirements)"
PolicyBody = Body(..., description="an accessPackageAssignmentPolicy")
# One item for a policy's list: a JSON value, typed as far as the route reads it, for
# ``operations.add_item`` refuses anything but an object of the list's kind in its own words.
JsonItem = dict[str, Any] | list[Any] | str | int | float | bool | None


# Graph JSON for a page of policies, with each expansion read once for the page (no N+1).
render_policies = rendering(
    document.render,
    {
        "accessPackage": Navigation(
            queries.policy_packages,
            lambda row, found: shapes.access_package(found[row.access_package_id]),
        ),
        "catalog": Navigation(
            queries.policy_catalogs, lambda row, found: shapes.catalog(found[row.catalog_id])
        ),
    },
)


@router.get("/assignmentPolicies")
def list_policies(call: Paged) -> dict[str, Any]:
    return call.page(
        queries.policies, render_policies(call.q.expand), context=CONTEXT, expandable=POLICY_EXPANDS
    )


@router.post("/assignmentPolicies", status_code=201)
def create_policy(call: Plain, body: dict[str, Any] = PolicyBody) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
        return call.entity(CONTEXT, document.render(ops.create_policy(ctx, body)))


@router.get("/assignmentPolicies/{policy_id}")
def get_policy(policy_id: str, call: Single) -> dict[str, Any]:
    return call.one(
        CONTEXT,
        lambda ctx: queries.policy(ctx, policy_id),
        render_policies(call.q.expand),
        expandable=POLICY_EXPANDS,
    )


@router.put("/assignmentPolicies/{policy_id}")
def replace_policy(
    policy_id: str, call: Plain, body: dict[str, Any] = PolicyBody
) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
        return call.entity(CONTEXT, document.render(ops.replace_policy(ctx, policy_id, body)))


@router.delete("/assignmentPolicies/{policy_id}", status_code=204)
def delete_policy(policy_id: str, call: Plain) -> Response:
    return call.done(lambda ctx: ops.delete_policy(ctx, policy_id))


def _list_routes(field: str) -> None:
    """GET and POST ``assignmentPolicies/{id}/<field>``: the policy's list, and one more item."""
    path = f"/assignmentPolicies/{{policy_id}}/{field}"

    @router.get(path, name=f"list_{field}")
    def list_items(policy_id: str, call: Plain) -> dict[str, Any]:
        with call.unit(write=False) as ctx:
            policy = queries.policy(ctx, policy_id)
            return {
                "@odata.context": context_url(call.request, f"{CONTEXT}('{policy.id}')/{field}"),
                "value": document.render(policy)[field],
            }

    @router.post(path, status_code=201, name=f"add_{field}")
    def add_item(
        policy_id: str,
        call: Plain,
        body: JsonItem = Body(..., description=f"one of the policy's {field}"),
    ) -> dict[str, Any]:
        with call.unit(write=True) as ctx:
            item = ops.add_item(ctx, policy_id, field, body)
            return {
                "@odata.context": context_url(
                    call.request, f"{CONTEXT}('{policy_id}')/{field}/$entity"
                ),
                **item,
            }


for _field in ops.ITEM_LISTS:
    _list_routes(_field)


# ---------------------------------------------------------------- from the access package


@router.get("/accessPackages/filterByCurrentUser(on='{on}')")
def filter_packages_by_current_user(on: str, call: Paged) -> dict[str, Any]:
    if on.lower() != "allowedrequestor":
        raise Invalid("accessPackages can be filtered on 'allowedRequestor' only", target="on")
    return call.page(queries.requestable_packages, shaped(shapes.access_package), context=PACKAGES)


@router.get("/accessPackages/{package_id}/assignmentPolicies")
def list_package_policies(package_id: str, call: Paged) -> dict[str, Any]:
    # The package is looked up before the query options are checked: an unknown one is a 404
    # whatever else the request asks.
    with call.unit(write=False) as ctx:
        package = get_package(ctx, package_id)
        check_expand(call.q, POLICY_EXPANDS)
        page = queries.package_policies(ctx, package, list_options(call.request, call.q))
        context = f"{PACKAGES}('{package.id}')/assignmentPolicies"
        return page_body(
            call.request, call.q, page, render_policies(call.q.expand)(ctx, page.items), context
        )


@router.post("/accessPackages/{package_id}/assignmentPolicies", status_code=201)
def create_package_policy(
    package_id: str, call: Plain, body: dict[str, Any] = PolicyBody
) -> dict[str, Any]:
    with call.unit(write=True) as ctx:
        policy = ops.create_policy(ctx, body, package_id=package_id)
        return call.entity(CONTEXT, document.render(policy))


def requirements(policy: AssignmentPolicy) -> dict[str, Any]:
    """An accessPackageAssignmentRequestRequirements (getApplicablePolicyRequirements item)."""
    settings = settings_of(policy)
    approval = settings.approval
    return {
        "policyId": policy.id,
        "policyDisplayName": policy.display_name,
        "policyDescription": policy.description,
        "isApprovalRequiredForAdd": approval.is_approval_required_for_add,
        "isApprovalRequiredForUpdate": approval.is_approval_required_for_update,
        "isRequestorJustificationRequired": approval.is_requestor_justification_required,
        "allowCustomAssignmentSchedule": settings.requestor.allow_custom_assignment_schedule,
        "questions": copy.deepcopy(policy.questions),
        "schedule": {"startDateTime": None, "expiration": copy.deepcopy(policy.expiration)},
    }


@router.post("/accessPackages/{package_id}/getApplicablePolicyRequirements")
def get_applicable_policy_requirements(package_id: str, call: Plain) -> dict[str, Any]:
    # No body is expected; whatever a client sends is ignored.
    with call.unit(write=False) as ctx:
        found = queries.applicable_policies(ctx, package_id)
        return {
            "@odata.context": context_url(call.request, REQUIREMENTS),
            "value": [requirements(p) for p in found],
        }
