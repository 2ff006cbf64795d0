"""The access-lifecycle scenario once more, through the real ``msgraph-sdk`` against a remit
server on loopback: policy PUT, the request, both approvals and the assignment reads, with the
SDK's typed models and request builders (graph-api.md Part B)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.identity_governance.entitlement_management.assignments.assignments_request_builder import (  # noqa: E501
    AssignmentsRequestBuilder,
)
from msgraph.generated.models.access_package import AccessPackage
from msgraph.generated.models.access_package_assignment import AccessPackageAssignment
from msgraph.generated.models.access_package_assignment_policy import (
    AccessPackageAssignmentPolicy,
)
from msgraph.generated.models.access_package_assignment_request import (
    AccessPackageAssignmentRequest,
)
from msgraph.generated.models.access_package_assignment_state import (
    AccessPackageAssignmentState,
)
from msgraph.generated.models.access_package_request_state import AccessPackageRequestState
from msgraph.generated.models.access_package_request_type import AccessPackageRequestType
from msgraph.generated.models.allowed_target_scope import AllowedTargetScope
from msgraph.generated.models.approval_stage import ApprovalStage
from msgraph.generated.models.expiration_pattern import ExpirationPattern
from msgraph.generated.models.expiration_pattern_type import ExpirationPatternType
from msgraph.generated.models.group_members import GroupMembers
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.requestor_manager import RequestorManager
from msgraph.generated.models.single_user import SingleUser

from remit.db import Database
from remit.jobs.runner import Worker
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import Tenant
from tests.lifecycle_support import Campaign, build_campaign
from tests.sdk_support import Remit, serving


@pytest.fixture
def world(
    db: Database, settings: Settings, clock: SteppingClock, app_client: TestClient
) -> Iterator[tuple[Remit, Campaign]]:
    c = build_campaign(Tenant.build(db, app_client, clock))
    with serving(db, settings, clock, c.t, page_size=50) as server:
        yield server, c


def test_lifecycle_scenario_through_the_graph_sdk(
    world: tuple[Remit, Campaign], settings: Settings, clock: SteppingClock
) -> None:
    remit, c = world
    t = c.t
    lena, sofia, omar, mamta = (remit.graph(a) for a in ("lena", "sofia", "omar", "mamta"))
    em = {
        alias: g.identity_governance.entitlement_management
        for alias, g in (("lena", lena), ("sofia", sofia), ("omar", omar), ("mamta", mamta))
    }

    async def scenario() -> None:
        # Lena replaces the employees' policy (PUT): 60 days now, as a timedelta the SDK
        # serialises as "60 days, 0:00:00".
        policies = em["lena"].assignment_policies
        current = await policies.by_access_package_assignment_policy_id(c.employees).get()
        assert current is not None
        assert current.expiration is not None
        assert current.expiration.duration == timedelta(days=90)
        assert current.request_approval_settings is not None
        stages = current.request_approval_settings.stages or []
        assert isinstance(stages[0].primary_approvers[0], RequestorManager)  # type: ignore[index]
        assert isinstance(stages[1].primary_approvers[0], SingleUser)  # type: ignore[index]
        replaced = await policies.by_access_package_assignment_policy_id(c.employees).put(
            AccessPackageAssignmentPolicy(
                id=c.employees,
                display_name="Marketing employees",
                description="Employees of Marketing, 60 days",
                access_package=AccessPackage(id=c.package),
                allowed_target_scope=AllowedTargetScope.SpecificDirectoryUsers,
                specific_allowed_targets=[GroupMembers(group_id=t.ids["marketing"])],
                expiration=ExpirationPattern(
                    type=ExpirationPatternType.AfterDuration, duration=timedelta(days=60)
                ),
                requestor_settings=current.requestor_settings,
                request_approval_settings=current.request_approval_settings,
            )
        )
        assert replaced is not None
        assert replaced.description == "Employees of Marketing, 60 days"
        assert replaced.expiration is not None
        assert replaced.expiration.duration == timedelta(days=60)

        # Sofia requests; the ids travel in additional_data (graph-api §B.4 item 3).
        created = await em["sofia"].assignment_requests.post(
            AccessPackageAssignmentRequest(
                request_type=AccessPackageRequestType.UserAdd,
                justification="Working on the 2027 campaign",
                assignment=AccessPackageAssignment(
                    additional_data={
                        "targetId": t.ids["sofia"],
                        "assignmentPolicyId": c.employees,
                        "accessPackageId": c.package,
                    }
                ),
            )
        )
        assert created is not None
        assert created.state == AccessPackageRequestState.PendingApproval
        assert created.id

        # Omar finds it among his approvals and approves; then Mamta, with a justification.
        for alias, why in (("omar", "her manager agrees"), ("mamta", "campaign staff")):
            approvals = em[alias].access_package_assignment_approvals
            inbox = await approvals.filter_by_current_user_with_on("approver").get()
            assert inbox is not None
            assert [a.id for a in inbox.value or []] == [created.id]
            approval = await approvals.by_approval_id(created.id).get()
            assert approval is not None
            open_stage = next(s for s in approval.stages or [] if s.status == "InProgress")
            assert open_stage.assigned_to_me is True
            await (
                approvals.by_approval_id(created.id)
                .stages.by_approval_stage_id(str(open_stage.id))
                .patch(ApprovalStage(review_result="Approve", justification=why))
            )

        # A second decision on a closed stage is a typed 409.
        approval = (
            await em["mamta"].access_package_assignment_approvals.by_approval_id(created.id).get()
        )
        assert approval is not None
        last = (approval.stages or [])[-1]
        with pytest.raises(ODataError) as refused:
            await (
                em["mamta"]
                .access_package_assignment_approvals.by_approval_id(created.id)
                .stages.by_approval_stage_id(str(last.id))
                .patch(ApprovalStage(review_result="Deny", justification="too late"))
            )
        assert refused.value.response_status_code == 409

        # The worker delivers (it shares the database; the server runs in its own thread).
        Worker(t.db, settings, clock=clock).drain()
        mine = await em["sofia"].assignments.filter_by_current_user_with_on("target").get()
        assert mine is not None
        [assignment] = mine.value or []
        assert assignment.state == AccessPackageAssignmentState.Delivered
        assert assignment.schedule is not None
        assert assignment.schedule.expiration is not None
        end = assignment.schedule.expiration.end_date_time
        assert end is not None
        assert abs(end - (clock.now + timedelta(days=60))) < timedelta(minutes=1)
        listed = await em["lena"].assignments.get(
            RequestConfiguration(
                query_parameters=AssignmentsRequestBuilder.AssignmentsRequestBuilderGetQueryParameters(
                    filter=f"accessPackage/id eq '{c.package}'",
                    expand=["target", "accessPackage"],
                )
            )
        )
        assert listed is not None
        [seen] = listed.value or []
        assert seen.target is not None
        assert seen.target.object_id == t.ids["sofia"]
        assert seen.access_package is not None
        assert seen.access_package.display_name == "Campaign 2027"
        history = (
            await em["sofia"].assignment_requests.filter_by_current_user_with_on("target").get()
        )
        assert history is not None
        assert [r.state for r in history.value or []] == [AccessPackageRequestState.Delivered]

    remit.run(scenario)
