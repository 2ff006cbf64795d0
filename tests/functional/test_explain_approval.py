"""``explain`` for a request (decision 0026): why a user may or may not approve it, through the
API (``GET /remit/explain?request=``) and the CLI (``remit explain --request``), and that the
verdict is what deciding and the approvals list do.

The campaign's "Marketing employees" policy: stage 1 by the requestor's manager (Omar for
Sofia), escalating to Hana after 7 days; stage 2 by Mamta in person.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from remit.authz.actor import system_actor
from remit.db import Database
from remit.lifecycle.jobs import approval_timers
from tests.conftest import CliRun, SteppingClock
from tests.factories import EM, Tenant, upn
from tests.lifecycle_support import (
    Campaign,
    build_campaign,
    decide,
    employees_policy,
    in_transaction,
    user_add,
)

EXPLAIN = "/remit/explain"
POLICY = "policy 'Marketing employees'"


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


def ask(t: Tenant, alias: str, request_id: str, about: str | None = None) -> Any:
    params = {"request": request_id, **({"user": upn(about)} if about else {})}
    return t.get(alias, EXPLAIN, **params)


def explained(t: Tenant, alias: str, request_id: str, about: str | None = None) -> Any:
    r = ask(t, alias, request_id, about)
    assert r.status_code == 200, r.text
    return r.json()


def waiting_for(t: Tenant, alias: str) -> set[str]:
    r = t.get(alias, f"{EM}/assignmentRequests/filterByCurrentUser(on='approver')")
    assert r.status_code == 200, r.text
    return {item["id"] for item in r.json()["value"]}


def submitted(c: Campaign, alias: str, package: str, **extra: Any) -> str:
    r = user_add(c.t, alias, package, **extra)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "pendingApproval", r.text
    return str(r.json()["id"])


def test_the_manager_may_approve_and_the_requestor_may_not(c: Campaign) -> None:
    t = c.t
    rid = submitted(c, "sofia", c.package)

    omar = explained(t, "omar", rid)
    assert omar["allowed"] is True
    assert omar["stage"] == 1
    assert omar["reasons"] == [f"manager of the requestor, named at stage 1 of {POLICY} (primary)"]
    assert omar["summary"] == (
        f"Omar Haddad may approve: manager of the requestor, named at stage 1 of {POLICY} (primary)"
    )
    assert rid in waiting_for(t, "omar")

    sofia = explained(t, "sofia", rid)
    assert sofia["allowed"] is False
    assert sofia["reasons"][0] == (
        "they are the requestor: nobody approves or denies their own request"
    )
    assert sofia["summary"].startswith("Sofia Costa may not approve: they are the requestor")
    assert rid not in waiting_for(t, "sofia")

    # Mamta reads the catalog's requests, but stage 1 is not hers.
    mamta = explained(t, "mamta", rid)
    assert mamta["allowed"] is False
    # (A stage's approvers are named when it starts: stage 2's are not known yet.)
    assert mamta["reasons"] == ["not named as an approver of stage 1 (the open stage)"]
    # The verdict is the decision's: Mamta is refused, Omar decides.
    refused = decide(t, "mamta", rid)
    assert refused.status_code == 403, refused.text
    assert decide(t, "omar", rid).status_code == 204

    # Stage 2 is open now: Mamta's, and no longer Omar's.
    assert explained(t, "mamta", rid)["reasons"] == [f"named at stage 2 of {POLICY} (primary)"]
    omar = explained(t, "omar", rid)
    assert omar["allowed"] is False
    assert omar["stage"] == 2
    assert omar["reasons"] == [
        "not named as an approver of stage 2 (the open stage)",
        f"manager of the requestor, named at stage 1 of {POLICY} (primary); that stage is decided",
    ]
    assert decide(t, "mamta", rid).status_code == 204
    done = explained(t, "mamta", rid)
    assert done["allowed"] is False
    assert done["stage"] is None
    assert done["reasons"][0].startswith("the request is not waiting for approval (it is ")


def test_an_escalation_approver_may_approve_only_once_the_stage_has_escalated(
    c: Campaign, clock: SteppingClock
) -> None:
    t = c.t
    rid = submitted(c, "sofia", c.package)
    hana = explained(t, "hana", rid)
    assert hana["allowed"] is False
    assert hana["reasons"] == [
        "named only as an escalation approver of stage 1 (the open stage), and the stage has "
        "not escalated",
        f"named at stage 1 of {POLICY} (escalation, not escalated)",
    ]
    assert rid not in waiting_for(t, "hana")

    clock.advance(days=8)
    in_transaction(t, system_actor("test"), lambda ctx: approval_timers(ctx, {}))
    hana = explained(t, "hana", rid)
    assert hana["allowed"] is True
    assert hana["reasons"] == [
        f"named at stage 1 of {POLICY} (escalation, the stage has escalated)"
    ]
    assert rid in waiting_for(t, "hana")
    # The primary approver still may (spec §5.6: after forwarding, primaries can still decide).
    assert explained(t, "omar", rid)["allowed"] is True


def test_a_member_of_an_approving_group_may_approve(c: Campaign) -> None:
    t = c.t
    package = c.new_package("lena", "Budget review", {"Planner"})
    stage = {
        "durationBeforeAutomaticDenial": "P14D",
        "isApproverJustificationRequired": False,
        "isEscalationEnabled": False,
        "primaryApprovers": [
            {"@odata.type": "#microsoft.graph.groupMembers", "groupId": t.ids["finance"]}
        ],
    }
    body = employees_policy(package, t, displayName="Finance approves")
    body["requestApprovalSettings"] = {
        "isApprovalRequiredForAdd": True,
        "isApprovalRequiredForUpdate": False,
        "isRequestorJustificationRequired": False,
        "stages": [stage],
    }
    c.policy("lena", body)
    rid = submitted(c, "sofia", package)

    ines = explained(t, "ines", rid)
    assert ines["allowed"] is True
    assert ines["reasons"] == [
        "member of group Finance, named at stage 1 of policy 'Finance approves' (primary)"
    ]
    assert rid in waiting_for(t, "ines")
    # Ines sees the request as its approver, and may ask about herself only.
    assert ask(t, "ines", rid, about="sofia").status_code == 403
    # A catalog reader asks about Ines, and about Omar (Sofia's manager, not named here).
    assert explained(t, "mamta", rid, about="ines")["allowed"] is True
    omar = explained(t, "mamta", rid, about="omar")
    assert omar["allowed"] is False
    assert omar["summary"] == (
        "Omar Haddad may not approve: not named as an approver of stage 1 (the open stage)"
    )


def test_who_may_ask(c: Campaign) -> None:
    t = c.t
    rid = submitted(c, "sofia", c.package)
    # Someone who may not see the request learns nothing about it.
    assert ask(t, "nobody", rid).status_code == 404
    assert ask(t, "nobody", "no-such-request").status_code == 404
    # Sofia sees her request, but may not read others' rights.
    assert ask(t, "sofia", rid, about="omar").status_code == 403
    # A request is asked about alone.
    both = t.get("omar", EXPLAIN, request=rid, task="catalog:read")
    assert both.status_code == 400, both.text
    assert t.get("omar", EXPLAIN).status_code == 400


def test_the_cli_explains_a_request(c: Campaign, cli: CliRun) -> None:
    rid = submitted(c, "sofia", c.package)
    allowed = cli("explain", "--user", upn("omar"), "--request", rid)
    assert allowed.returncode == 0, allowed.stderr
    assert f"ALLOWED {upn('omar')} may approve or deny request {rid}" in allowed.stdout
    assert f"manager of the requestor, named at stage 1 of {POLICY} (primary)" in allowed.stdout

    own = cli("explain", "--user", upn("sofia"), "--request", rid)
    assert own.returncode == 3
    assert "DENIED" in own.stdout
    assert "they are the requestor" in own.stdout

    early = cli("explain", "--user", upn("hana"), "--request", rid)
    assert early.returncode == 3
    assert "named only as an escalation approver of stage 1" in early.stdout

    # As a user, the same rules as the API: Sofia may not read Omar's rights.
    other = cli("explain", "--user", upn("omar"), "--request", rid, as_="sofia")
    assert other.returncode == 1
    assert "only your own rights" in other.stderr
    mixed = cli("explain", "--user", upn("omar"), "--request", rid, "--task", "catalog:read")
    assert mixed.returncode == 2
