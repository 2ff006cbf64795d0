"""The 14-day and 1-day expiry reminders (issue #11.9, docs/decisions/0021): only those that
still make sense, each at most once, also after the worker was down and with two workers.

Time is the injectable clock; mail goes to an SMTP sink on loopback and is counted there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from remit.authz.actor import system_actor
from remit.context import Ctx
from remit.db import Database
from remit.lifecycle.jobs import expiry_reminders
from remit.models.lifecycle import Assignment
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import DOMAIN, EM, Tenant
from tests.lifecycle_support import Campaign, admin_add, build_campaign, contractors_policy, worker
from tests.peers import MailSink, mail_to_sink

CARL = f"carl@{DOMAIN}"


@pytest.fixture
def mail(settings: Settings) -> Iterator[MailSink]:
    with mail_to_sink(settings) as sink:
        yield sink


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


def assign_carl(c: Campaign, settings: Settings, duration: str) -> None:
    """Carl gets the package, delivered, under a direct-assignment policy of ``duration``."""
    body = {
        **contractors_policy(c.package),
        "displayName": f"Contractors for {duration}",
        "expiration": {"type": "afterDuration", "duration": duration},
    }
    r = c.t.post("hana", f"{EM}/assignmentPolicies", body)
    assert r.status_code == 201, r.text
    assert admin_add(c.t, "alex", "carl", c.package, r.json()["id"]).status_code == 201
    worker(c.t, settings).drain()


def reminders(mail: MailSink) -> list[str]:
    return [s for s in mail.to(CARL) if " ends " in s]


def reminder_bits(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(Assignment.reminders_sent)).scalar_one())


def test_an_assignment_of_20_hours_hears_of_neither_reminder(
    c: Campaign, settings: Settings, clock: SteppingClock, mail: MailSink, db: Database
) -> None:
    """Issue #11.9: it got "ends in 14 days" and "ends tomorrow" in the same second."""
    assign_carl(c, settings, "PT20H")
    for hours in (0, 1, 18):
        clock.advance(hours=hours, minutes=16)
        worker(c.t, settings).drain()
        assert reminders(mail) == []
    assert reminder_bits(db) == 3  # both settled, unsent


def test_an_assignment_of_10_days_gets_the_1_day_reminder_only(
    c: Campaign, settings: Settings, clock: SteppingClock, mail: MailSink
) -> None:
    assign_carl(c, settings, "P10D")
    clock.advance(days=5)
    worker(c.t, settings).drain()
    assert reminders(mail) == []  # never "14 days" when it started with fewer
    clock.advance(days=4, hours=1)
    worker(c.t, settings).drain()
    assert reminders(mail) == ["Your access to Campaign 2027 ends tomorrow"]
    clock.advance(hours=6)
    worker(c.t, settings).drain()
    assert len(reminders(mail)) == 1


def test_an_extension_to_ten_days_ahead_gets_the_1_day_reminder_only(
    c: Campaign, settings: Settings, clock: SteppingClock, mail: MailSink, db: Database
) -> None:
    """The reminders are judged against the end the extension set, when it set it: extended to
    ten days ahead, "14 days" has passed already and is settled; "tomorrow" comes once. A later
    change of the row (its delivery state, say) does not hold a reminder back."""
    assign_carl(c, settings, "P30D")
    clock.advance(days=2)
    with db.read() as conn:
        assignment_id = conn.execute(select(Assignment.id)).scalar_one()
    ten_days_ahead = (clock() + timedelta(days=10)).isoformat()
    r = c.t.post(
        "alex",
        f"{EM}/assignmentRequests",
        {
            "requestType": "adminUpdate",
            "assignment": {"id": assignment_id},
            "schedule": {"expiration": {"endDateTime": ten_days_ahead}},
        },
    )
    assert r.status_code == 201, r.text
    worker(c.t, settings).drain()
    assert reminder_bits(db) == 1  # "14 days" settled when the end was set
    clock.advance(days=5)
    worker(c.t, settings).drain()
    assert reminders(mail) == []
    clock.advance(days=4, hours=1)
    worker(c.t, settings).drain()
    assert reminders(mail) == ["Your access to Campaign 2027 ends tomorrow"]


def test_a_sweep_that_was_down_sends_only_the_nearest_reminder(
    c: Campaign, settings: Settings, clock: SteppingClock, mail: MailSink, db: Database
) -> None:
    assign_carl(c, settings, "P30D")
    clock.advance(days=29, hours=1)  # both moments passed while no worker ran
    worker(c.t, settings).drain()
    assert reminders(mail) == ["Your access to Campaign 2027 ends tomorrow"]
    assert reminder_bits(db) == 3  # the 14-day one settled with it
    clock.advance(hours=6)
    worker(c.t, settings).drain()
    assert len(reminders(mail)) == 1


def test_a_sweep_that_was_down_a_little_still_sends_the_14_day_reminder(
    c: Campaign, settings: Settings, clock: SteppingClock, mail: MailSink
) -> None:
    assign_carl(c, settings, "P30D")
    clock.advance(days=18)  # four days late
    worker(c.t, settings).drain()
    assert reminders(mail) == ["Your access to Campaign 2027 ends in 14 days"]
    clock.advance(days=11, hours=1)
    worker(c.t, settings).drain()
    assert reminders(mail)[1:] == ["Your access to Campaign 2027 ends tomorrow"]


def _run_reminders(db: Database, clock: SteppingClock, *, lock_timeout: bool = False) -> None:
    with db.write() as session:
        if lock_timeout and session.get_bind().dialect.name == "postgresql":
            # A worker that waited on the other's rows would be the defect: fail, do not hang.
            session.execute(text("SET LOCAL lock_timeout = '10s'"))
        expiry_reminders(_ctx(session, clock), {})


def _ctx(session: Session, clock: SteppingClock) -> Ctx:
    return Ctx(session, system_actor("worker (test)"), clock())


def test_two_workers_send_a_reminder_once(
    c: Campaign, settings: Settings, clock: SteppingClock, mail: MailSink, db: Database
) -> None:
    """On PostgreSQL the second worker runs while the first holds its claimed rows: it skips
    them (before the fix it read them too and sent the same reminder again). SQLite has one
    writer, so there the second runs after the first."""
    assign_carl(c, settings, "P30D")
    clock.advance(days=16, hours=1)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            _run_reminders(db, clock, lock_timeout=True)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    if db.engine.dialect.name == "postgresql":
        with db.write() as session:
            expiry_reminders(_ctx(session, clock), {})
            other = threading.Thread(target=second)
            other.start()
            other.join(timeout=120)
            assert not other.is_alive()
    else:
        _run_reminders(db, clock)
        second()
    assert errors == []
    worker(c.t, settings).drain()
    assert reminders(mail) == ["Your access to Campaign 2027 ends in 14 days"]
