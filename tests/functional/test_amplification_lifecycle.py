"""R2 for the access lifecycle: nobody gets access, or gives it, beyond what they hold.

The paths that confer access here: direct assignment (adminAdd), requests (for oneself or on
behalf of someone), approval decisions, removals and extensions. Every refusal is checked twice:
its status and that no row of any table changed (``fingerprint``). The world is the lifecycle
scenario's (``tests/lifecycle_support.py``): Mamta's Marketing catalog, Omar co-owner, Lena
package manager, Alex assignment manager, "Campaign 2027" with the employees' policy (manager then
owner approve) and the contractors' direct-assignment policy; Mark owns a Finance catalog with a
package of its own.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from remit.db import Database
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant
from tests.lifecycle_support import (
    Campaign,
    admin_add,
    build_campaign,
    contractors_policy,
    decide,
    open_stage,
    user_add,
    worker,
)
from tests.matrix_support import fingerprint


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


@pytest.fixture
def finance(c: Campaign) -> dict[str, str]:
    """Mark's catalog with a package and a direct-assignment policy."""
    t = c.t
    catalog = t.create_catalog("mark", "Finance")
    r = t.add_resource("mark", catalog, "AadGroup", t.ids["finance"])
    assert r.status_code == 201, r.text
    r = t.create_package("mark", catalog, "Ledger access")
    assert r.status_code == 201, r.text
    package = r.json()["id"]
    r = t.post("mark", f"{EM}/assignmentPolicies", contractors_policy(package))
    assert r.status_code == 201, r.text
    return {"catalog": catalog, "package": package, "policy": r.json()["id"]}


def refused(db: Database, call: Any, *statuses: int) -> httpx.Response:
    """Run ``call``; it must answer one of ``statuses`` and leave every table as it was."""
    before = fingerprint(db)
    r: httpx.Response = call()
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert fingerprint(db) == before, (
        f"a refused call changed data: {r.request.method} {r.request.url}"
    )
    return r


def test_an_assignment_manager_cannot_assign_outside_their_catalog(
    c: Campaign, finance: dict[str, str], db: Database
) -> None:
    t = c.t
    refused(db, lambda: admin_add(t, "alex", "carl", finance["package"], finance["policy"]), 404)
    # Nor with a policy of another package of their own catalog's package.
    refused(db, lambda: admin_add(t, "alex", "carl", c.package, finance["policy"]), 400)
    # Control: in their own catalog they can.
    assert admin_add(t, "alex", "carl", c.package, c.contractors).status_code == 201


def test_readers_requestors_and_package_managers_of_other_catalogs_cannot_assign(
    c: Campaign, finance: dict[str, str], db: Database
) -> None:
    t = c.t
    for alias in ("sofia", "nobody", "mark"):
        refused(db, lambda a=alias: admin_add(t, a, "carl", c.package, c.contractors), 403, 404)
    refused(db, lambda: admin_add(t, "lena", "carl", finance["package"], finance["policy"]), 404)


def test_nobody_requests_for_someone_else_unless_they_manage_them(
    c: Campaign, db: Database
) -> None:
    t = c.t
    body = {
        "requestType": "userAdd",
        "assignment": {"accessPackageId": c.package, "targetId": t.ids["sofia"]},
        "justification": "for her",
    }
    # Lena is not Sofia's manager, and the policy allows no on-behalf requests anyway.
    refused(db, lambda: t.post("lena", f"{EM}/assignmentRequests", body), 403)
    refused(db, lambda: t.post("omar", f"{EM}/assignmentRequests", body), 400, 403)


def test_system_request_types_are_remits_own(c: Campaign, db: Database) -> None:
    t = c.t
    for kind in ("systemAdd", "systemRemove", "onBehalfAdd", "SYSTEMADD"):
        body = {
            "requestType": kind,
            "assignment": {
                "accessPackageId": c.package,
                "targetId": t.ids["hana"],
                "assignmentPolicyId": c.contractors,
            },
        }
        refused(db, lambda b=body: t.post("hana", f"{EM}/assignmentRequests", b), 400)


def test_a_requestor_named_as_approver_still_cannot_approve_their_own_request(
    c: Campaign, db: Database
) -> None:
    t = c.t
    # Mamta is the stage-2 approver and the stage-1 fallback; her own request goes to Omar? No:
    # she has no manager, so the fallback (herself) is the only stage-1 approver.
    rid = user_add(t, "mamta", c.package).json()["id"]
    inbox = t.get("mamta", f"{EM}/assignmentRequests/filterByCurrentUser(on='approver')").json()
    assert inbox["value"] == [], "one's own request is never in one's inbox"
    stage = t.get("mamta", f"{EM}/accessPackageAssignmentApprovals/{rid}").json()["stages"][0]
    assert stage["assignedToMe"] is False
    path = f"{EM}/accessPackageAssignmentApprovals/{rid}/stages/{stage['id']}"
    refused(
        db,
        lambda: t.call("mamta", "PATCH", path, {"reviewResult": "Approve", "justification": "me"}),
        403,
    )


def test_approvers_decide_only_their_own_stage_and_strangers_see_nothing(
    c: Campaign, db: Database, settings: Settings
) -> None:
    t = c.t
    rid = user_add(t, "sofia", c.package).json()["id"]
    stage = open_stage(t, "omar", rid)
    path = f"{EM}/accessPackageAssignmentApprovals/{rid}/stages/{stage['id']}"
    body = {"reviewResult": "Approve", "justification": "x"}
    # Mark has no role on the catalog and is no approver: the request does not exist for him.
    refused(db, lambda: t.call("mark", "PATCH", path, body), 404)
    refused(db, lambda: t.get("mark", f"{EM}/assignmentRequests/{rid}"), 404)
    # Lena manages packages in the catalog (she sees the request) but approves no stage.
    refused(db, lambda: t.call("lena", "PATCH", path, body), 403)
    # The requestor cannot approve it either (the approval itself is for approvers' eyes).
    refused(db, lambda: t.call("sofia", "PATCH", path, body), 404)
    assert decide(t, "omar", rid).status_code == 204


def test_strangers_cannot_remove_extend_cancel_or_reprocess(
    c: Campaign, db: Database, settings: Settings
) -> None:
    t = c.t
    assert admin_add(t, "alex", "carl", c.package, c.contractors).status_code == 201
    worker(t, settings).drain()
    aid = t.get("carl", f"{EM}/assignments/filterByCurrentUser(on='target')").json()["value"][0][
        "id"
    ]
    for alias in ("sofia", "mark"):
        refused(
            db,
            lambda a=alias: t.post(
                a,
                f"{EM}/assignmentRequests",
                {"requestType": "adminRemove", "assignment": {"id": aid}},
            ),
            403,
            404,
        )
        refused(
            db,
            lambda a=alias: t.post(
                a,
                f"{EM}/assignmentRequests",
                {"requestType": "userRemove", "assignment": {"id": aid}},
            ),
            403,
            404,
        )
        refused(db, lambda a=alias: t.post(a, f"{EM}/assignments/{aid}/reprocess"), 403, 404)
    # The contractors' policy lets nobody remove or extend their own access.
    refused(
        db,
        lambda: t.post(
            "carl",
            f"{EM}/assignmentRequests",
            {"requestType": "userRemove", "assignment": {"id": aid}},
        ),
        403,
    )
    refused(
        db,
        lambda: t.post(
            "carl",
            f"{EM}/assignmentRequests",
            {"requestType": "userExtend", "assignment": {"id": aid}},
        ),
        403,
    )
    rid = user_add(t, "sofia", c.package).json()["id"]
    refused(db, lambda: t.post("mark", f"{EM}/assignmentRequests/{rid}/cancel"), 404)
    refused(db, lambda: t.post("carl", f"{EM}/assignmentRequests/{rid}/cancel"), 404)


def test_a_blocked_or_out_of_scope_user_gets_nothing_by_request(c: Campaign, db: Database) -> None:
    t = c.t
    # Carl is not in Marketing: no policy lets him request, and he learns nothing more.
    refused(db, lambda: user_add(t, "carl", c.package), 400, 404)
    refused(db, lambda: user_add(t, "carl", c.package, policy=c.employees), 400, 404)
    # The direct-assignment policy never lets anyone request.
    refused(db, lambda: user_add(t, "sofia", c.package, policy=c.contractors), 400)
