"""Delivery through connectors (spec §4.2, §6.3, §6.7): retries, partial and failed delivery,
request reprocess, assignment reprocess repairing drift, and idempotent grants and revokes.

A connector that fails on command stands in for a target system that is down: a remote
(non-local) connector that delegates to the builtin one in transactions of its own
(``lifecycle_support.Flaky``), the delivery target of every application for the duration of a
test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from remit.connectors.base import ConnectorError, Revocation, RoleRef
from remit.connectors.builtin import BuiltinConnector
from remit.db import Database
from remit.models.directory import GroupMember
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant
from tests.lifecycle_support import (
    Campaign,
    Flaky,
    admin_add,
    build_campaign,
    holdings,
    remote,
    worker,
)


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


@pytest.fixture
def flaky(c: Campaign) -> Iterator[Flaky]:
    with remote("AadApplication", c.t.db) as connector:
        yield connector


def run_worker_for(c: Campaign, settings: Settings, clock: SteppingClock, hours: int) -> None:
    """Let the worker retry for ``hours`` (the clock moves; nothing sleeps)."""
    w = worker(c.t, settings)
    for _ in range(hours * 4):
        w.drain()
        clock.advance(minutes=15)
    w.drain()


def request_of(c: Campaign, alias: str) -> dict[str, str]:
    r = c.t.get(
        "alex", f"{EM}/assignmentRequests", **{"$filter": f"target/objectId eq '{c.t.ids[alias]}'"}
    )
    [found] = [x for x in r.json()["value"] if x["requestType"] == "adminAdd"]
    return dict(found)


def test_a_transient_outage_is_retried_until_it_delivers(
    c: Campaign, settings: Settings, clock: SteppingClock, flaky: Flaky
) -> None:
    flaky.down = "transient"
    assert admin_add(c.t, "alex", "carl", c.package, c.contractors).status_code == 201
    worker(c.t, settings).drain()
    assert request_of(c, "carl")["state"] == "delivering"
    # The group and the site (builtin) are there already; the app role waits for its target.
    assert "group:campaigns" in holdings(c.t, "carl")
    flaky.down = None
    run_worker_for(c, settings, clock, hours=1)
    assert request_of(c, "carl")["state"] == "delivered"
    assert f"app:{c.roles['Planner']['originId']}" in holdings(c.t, "carl")


def test_a_target_that_stays_down_gives_partial_delivery_then_reprocess_completes_it(
    c: Campaign, settings: Settings, clock: SteppingClock, flaky: Flaky
) -> None:
    flaky.down = "transient"
    assert admin_add(c.t, "alex", "carl", c.package, c.contractors).status_code == 201
    run_worker_for(c, settings, clock, hours=6)
    req = request_of(c, "carl")
    assert req["state"] == "partiallyDelivered", req
    a = c.t.get("carl", f"{EM}/assignments/filterByCurrentUser(on='target')").json()["value"][0]
    assert a["state"] == "partiallyDelivered"
    # Carl sees his own request but may not reprocess it (403); an assignment manager may.
    assert c.t.post("carl", f"{EM}/assignmentRequests/{req['id']}/reprocess").status_code == 403
    flaky.down = None
    r = c.t.post("alex", f"{EM}/assignmentRequests/{req['id']}/reprocess")
    assert r.status_code == 202, r.text
    worker(c.t, settings).drain()
    assert request_of(c, "carl")["state"] == "delivered"
    # A delivered request cannot be reprocessed.
    assert c.t.post("alex", f"{EM}/assignmentRequests/{req['id']}/reprocess").status_code == 400


def test_a_permanent_refusal_fails_at_once_and_a_week_later_cannot_be_reprocessed(
    c: Campaign, settings: Settings, clock: SteppingClock, flaky: Flaky
) -> None:
    flaky.down = "permanent"
    assert admin_add(c.t, "alex", "carl", c.package, c.contractors).status_code == 201
    worker(c.t, settings).drain()
    req = request_of(c, "carl")
    assert req["state"] == "partiallyDelivered"
    clock.advance(days=7, minutes=1)
    r = c.t.post("alex", f"{EM}/assignmentRequests/{req['id']}/reprocess")
    assert r.status_code == 400, r.text


def test_assignment_reprocess_repairs_drift_made_outside_remit(
    c: Campaign, settings: Settings, db: Database
) -> None:
    t = c.t
    assert admin_add(t, "alex", "carl", c.package, c.contractors).status_code == 201
    worker(t, settings).drain()
    aid = t.get("carl", f"{EM}/assignments/filterByCurrentUser(on='target')").json()["value"][0][
        "id"
    ]
    with db.write() as s:  # someone removes Carl from the group by hand
        s.execute(delete(GroupMember).where(GroupMember.member_id == t.ids["carl"]))
    assert "group:campaigns" not in holdings(t, "carl")
    # Still "delivered": remit does not watch the target (spec §4.2 "Drift").
    assert t.get("carl", f"{EM}/assignments/{aid}").json()["state"] == "delivered"
    assert t.post("alex", f"{EM}/assignments/{aid}/reprocess").status_code == 202
    worker(t, settings).drain()
    assert "group:campaigns" in holdings(t, "carl")


def test_grants_and_revokes_are_idempotent(c: Campaign, db: Database, clock: SteppingClock) -> None:
    t = c.t
    role = RoleRef("AadGroup", t.ids["campaigns"], f"Member_{t.ids['campaigns']}", "Member")
    builtin = BuiltinConnector()
    until = clock.now + timedelta(days=1)
    with db.write() as s:
        builtin.grant(s, t.ids["carl"], role, valid_until=until, now=clock.now)
        builtin.grant(s, t.ids["carl"], role, valid_until=until, now=clock.now)
    assert t.ids["carl"] in _holders(db, builtin, role)
    with db.write() as s:
        assert builtin.revoke_many(s, [Revocation(t.ids["carl"], role)]) == [None]
        assert builtin.revoke_many(s, [Revocation(t.ids["carl"], role)]) == [None]
    assert t.ids["carl"] not in _holders(db, builtin, role)


def _holders(db: Database, connector: BuiltinConnector, role: RoleRef) -> set[str]:
    with db.write() as s:
        return connector.holders(s, role)


def test_the_builtin_connector_writes_once_and_names_what_no_longer_exists(
    db: Database, tenant: Tenant, clock: SteppingClock
) -> None:
    builtin, now = BuiltinConnector(), clock()
    sofia, group = tenant.ids["sofia"], tenant.ids["finance"]
    member = RoleRef("AadGroup", group, f"Member_{group}", "Member of Finance")
    later = now + timedelta(days=30)
    with db.write() as s:
        builtin.grant(s, sofia, member, valid_until=None, now=now)
        builtin.grant(s, sofia, member, valid_until=later, now=now)  # the expiry moves
        (row,) = s.query(GroupMember).filter_by(group_id=group, member_id=sofia).all()
        assert row.valid_until == later
    missing = {
        "user nobody-here does not exist": ("nobody-here", member),
        "group gone no longer exists": (sofia, RoleRef("AadGroup", "gone", "Member_gone", "x")),
        "site role gone no longer exists": (sofia, RoleRef("SharePointOnline", "s", "gone", "x")),
    }
    for message, (subject, role) in missing.items():
        with db.write() as s, pytest.raises(ConnectorError, match=message) as raised:
            builtin.grant(s, subject, role, valid_until=None, now=now)
        assert raised.value.permanent
