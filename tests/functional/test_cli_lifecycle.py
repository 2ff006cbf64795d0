"""The lifecycle CLI (issue #3 item 9) as the personas use it: real ``remit`` processes against
the database the campaign world is built in; the job worker runs in this process.

Sofia requests "Campaign 2027", Omar (her manager) then Mamta (the catalog owner) approve, the
worker delivers; Alex, the assignment manager, extends, removes and assigns contractors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from remit.db import Database
from remit.jobs.runner import Worker
from remit.models.directory import User
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.notify import config
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant, upn
from tests.lifecycle_support import Campaign, build_campaign, contractors_policy, employees_policy

REMIT = [sys.executable, "-m", "remit"]
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def c(
    db: Database, app_client: TestClient, clock: SteppingClock, settings: Settings
) -> Iterator[Campaign]:
    config.configure(settings)  # notices go to the test data directory's outbox
    yield build_campaign(Tenant.build(db, app_client, clock))
    config.configure(None)


@pytest.fixture
def cli(db: Database, settings: Settings) -> Run:
    env = {
        **os.environ,
        "REMIT_DATABASE_URL": db.url,
        "REMIT_DATA_DIR": str(settings.data_dir),
        "COLUMNS": "250",
    }

    def run(*args: str, as_: str | None = None) -> subprocess.CompletedProcess[str]:
        prefix = ["--as", upn(as_)] if as_ else []
        return subprocess.run(
            [*REMIT, *prefix, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def submitted(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The request id and state that submit, remove and extend print."""
    request_id, state = ok(result).split()
    return request_id, state


def error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("remit: error: ")
    return lines[0].removeprefix("remit: error: ")


def rows(output: str) -> list[list[str]]:
    """The body rows of a Rich table (the header row is the first one printed)."""
    return [
        [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        for line in output.splitlines()
        if line.strip().startswith("│")
    ]


def deliver(c: Campaign, settings: Settings) -> None:
    # The CLI runs on the real clock, so the worker does too.
    Worker(c.t.db, settings, worker_id="cli-test").drain()


def later(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


def test_request_two_approvals_delivery_then_extend_cancel_and_remove(
    c: Campaign, cli: Run, settings: Settings
) -> None:
    rid, state = submitted(
        cli(
            "request",
            "submit",
            "--package",
            "Campaign 2027",
            "--justification",
            "Working on the 2027 campaign",
            as_="sofia",
        )
    )
    assert state == "pendingApproval"
    [waiting] = rows(ok(cli("request", "list", "--approver", as_="omar")))
    assert waiting[:4] == [rid, "userAdd", "pendingApproval", "Campaign 2027"]
    assert waiting[4:6] == [upn("sofia"), upn("sofia")]

    assert "stage 1 of 2 approved" in ok(cli("approve", rid, as_="omar"))
    done = ok(cli("approve", rid, "--justification", "campaign staff", as_="mamta"))
    # The builtin connector delivers in the approving transaction.
    assert f"request {rid} approved; it is delivered" in done
    deliver(c, settings)

    [mine] = rows(ok(cli("assignment", "list", "--mine", as_="sofia")))
    aid = mine[0]
    assert mine[1:4] == ["Campaign 2027", upn("sofia"), "delivered"]
    ninety = (datetime.now(UTC) + timedelta(days=90)).date().isoformat()
    assert mine[5].startswith(ninety)

    shown = ok(cli("request", "show", rid, as_="mamta"))
    assert "delivered (Fulfilled)" in shown
    assert "Working on the 2027 campaign" in shown
    stages = [r for r in rows(shown) if r[0].startswith("Stage ")]
    assert [(s[0], s[1], s[2], s[3]) for s in stages] == [
        ("Stage 1", "Completed", "Approve", "Omar Haddad"),
        ("Stage 2", "Completed", "Approve", "Mamta Rao"),
    ]
    assert stages[1][5] == "campaign staff"

    # Alex extends it directly (adminUpdate, no approval); Sofia asks for more (userExtend,
    # approval required by the policy) and changes her mind.
    end = later(30)
    _, state = submitted(cli("assignment", "extend", aid, "--end", end, as_="alex"))
    assert state == "delivered"
    ext, state = submitted(
        cli("assignment", "extend", aid, "--justification", "another quarter", as_="sofia")
    )
    assert state == "pendingApproval"
    assert ok(cli("request", "cancel", ext, as_="sofia")).strip() == f"request {ext} canceled"

    removal, _ = submitted(
        cli("assignment", "remove", aid, "--justification", "campaign over", as_="alex")
    )
    [ended] = rows(ok(cli("assignment", "list", "--user", upn("sofia"), "--state", "expired")))
    assert ended[:4] == [aid, "Campaign 2027", upn("sofia"), "expired"]

    history = rows(ok(cli("request", "list", "--package", "Campaign 2027", as_="alex")))
    assert [(r[0], r[1], r[2]) for r in history][1:] == [
        (ext, "userExtend", "canceled"),
        (history[2][0], "adminUpdate", "delivered"),
        (rid, "userAdd", "delivered"),
    ]
    assert history[0][:2] == [removal, "adminRemove"]
    assert history[0][5] == upn("alex")

    # Sofia's whole story, from the audit log, for the operator.
    told = [r[1] for r in rows(ok(cli("audit", "history", upn("sofia"))))]
    for step in (
        "User requests access package assignment",
        "Approve access package assignment request",
        "Fulfill access package assignment",
        "Remove access package assignment",
    ):
        assert step in told, (step, told)
    assert told.index("Fulfill access package assignment") < told.index(
        "Remove access package assignment"
    )
    assert error(cli("audit", "history", "nobody@nowhere.example")) == (
        "no user nobody@nowhere.example"
    )


def test_deny_cancel_and_what_personas_may_not_do(c: Campaign, cli: Run) -> None:
    def request(alias: str) -> str:
        rid, state = submitted(
            cli(
                "request",
                "submit",
                "--package",
                "Campaign 2027",
                "--justification",
                "Working on the 2027 campaign",
                as_=alias,
            )
        )
        assert state == "pendingApproval"
        return rid

    denied = request("sofia")
    said = ok(cli("deny", denied, "--justification", "not this quarter", as_="omar"))
    assert said.strip() == f"request {denied} denied"
    canceled = request("sofia")
    assert ok(cli("request", "cancel", canceled, as_="sofia")).strip().endswith("canceled")
    listed = rows(ok(cli("request", "list", "--mine", as_="sofia")))
    assert [(r[0], r[2]) for r in listed] == [(canceled, "canceled"), (denied, "denied")]

    # Nobody may see Sofia's request: it does not exist for them.
    assert error(cli("request", "show", canceled, as_="nobody")) == (
        f"assignment request {canceled} was not found"
    )
    assert error(cli("approve", denied, as_="nobody")) == f"approval {denied} was not found"
    # Omar co-owns the catalog and sees his own request's approval, but may not decide it.
    own = request("omar")
    assert error(cli("approve", own, as_="omar")) == "nobody can approve or deny their own request"
    assert error(cli("approve", denied, as_="omar")) == (
        f"request {denied} has no stage waiting for a decision (it is denied)"
    )
    # Bad input: one line, non-zero.
    unknown = str(uuid.uuid4())
    assert error(cli("request", "cancel", unknown, as_="sofia")) == (
        f"assignment request {unknown} was not found"
    )
    assert "Campaign 2099" in error(
        cli("request", "submit", "--package", "Campaign 2099", "--justification", "x", as_="sofia")
    )
    assert "--as UPN" in error(cli("request", "submit", "--package", "Campaign 2027"), 2)


def test_a_manager_requests_on_behalf_of_a_direct_report(
    c: Campaign, cli: Run, db: Database
) -> None:
    body = employees_policy(c.package, c.t)
    body["requestorSettings"]["enableOnBehalfRequestorsToAddAccess"] = True
    body["requestorSettings"]["onBehalfRequestors"] = [
        {"@odata.type": "#microsoft.graph.targetManager", "managerLevel": 1}
    ]
    r = c.t.call("lena", "PUT", f"{EM}/assignmentPolicies/{c.employees}", json=body)
    assert r.status_code == 200, r.text
    submit = ("request", "submit", "--package", "Campaign 2027", "--justification", "Campaign")
    rid, state = submitted(cli(*submit, "--for", upn("sofia"), "--on-behalf", as_="omar"))
    assert state == "pendingApproval"
    with db.write() as s:
        made = s.get_one(AssignmentRequest, rid)
        assert (made.request_type, made.target_id, made.requestor_id) == (
            "userAdd",
            c.t.ids["sofia"],
            c.t.ids["omar"],
        )
    # Lena does not report to Omar; an address outside the directory is nobody's report.
    assert "direct reports" in error(cli(*submit, "--for", upn("lena"), "--on-behalf", as_="omar"))
    assert "direct reports" in error(
        cli(*submit, "--for", "someone@partner.example", "--on-behalf", as_="omar")
    )
    assert "--on-behalf needs --for" in error(cli(*submit, "--on-behalf", as_="omar"), 2)


def test_direct_assignment_answers_and_access_past_its_end(
    c: Campaign, cli: Run, settings: Settings
) -> None:
    t = c.t
    # Two policies: an administrator must choose.
    choose = error(
        cli("request", "submit", "--package", "Campaign 2027", "--for", upn("carl"), as_="alex")
    )
    assert c.employees in choose
    assert c.contractors in choose
    assert "--policy" in choose
    carl, state = submitted(
        cli(
            "request",
            "submit",
            "--package",
            "Campaign 2027",
            "--for",
            upn("carl"),
            "--policy",
            "contractors (direct)",
            as_="alex",
        )
    )
    assert state == "delivered"
    # The operator (no --as) assigns someone outside the directory by email.
    guest, state = submitted(
        cli(
            "request",
            "submit",
            "--package",
            c.package,
            "--for",
            "pat@fabrikam.example",
            "--policy",
            c.contractors,
        )
    )
    assert state == "delivered"

    # A package anyone may request, with a question.
    kit = c.new_package("lena", "Event kit", {"Planner"})
    body: dict[str, Any] = {
        **contractors_policy(kit),
        "displayName": "Anyone",
        "allowedTargetScope": "allMemberUsers",
        "requestorSettings": {"enableTargetsToSelfAddAccess": True, "acceptRequests": True},
        "questions": [
            {
                "@odata.type": "#microsoft.graph.accessPackageTextInputQuestion",
                "text": "Which event?",
                "isRequired": True,
            }
        ],
    }
    c.policy("lena", body)
    asked, state = submitted(
        cli(
            "request",
            "submit",
            "--package",
            "event kit",
            "--answer",
            "which event?=Expo 2027",
            as_="sofia",
        )
    )
    assert state == "delivered"
    shown = rows(ok(cli("request", "show", asked, as_="sofia")))
    assert ["Answer: Which event?", "Expo 2027"] in shown

    # Carl's assignment is past its end; no sweep has run: it reads as expired already.
    with t.db.write() as s:
        s.execute(
            update(Assignment)
            .where(Assignment.target_id == t.ids["carl"])
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        carl_aid = s.execute(
            select(Assignment.id).where(Assignment.target_id == t.ids["carl"])
        ).scalar_one()
        pat_aid, pat = s.execute(
            select(AssignmentRequest.assignment_id, User.user_principal_name)
            .join(User, User.id == AssignmentRequest.target_id)
            .where(AssignmentRequest.id == guest)
        ).one()
    listed = rows(ok(cli("assignment", "list", "--package", c.package, as_="alex")))
    states = {r[2]: r[3] for r in listed}
    assert states == {upn("carl"): "expired", pat: "delivered"}
    assert {r[0] for r in listed} == {carl_aid, pat_aid}
    # Reprocessing needs a failed delivery; an assignment's roles can always be applied again.
    assert "failed or was partial" in error(cli("request", "reprocess", carl, as_="alex"))
    assert "applied again" in ok(cli("assignment", "reprocess", pat_aid, as_="alex"))

    # A second "Campaign 2027": the name is ambiguous, the ids are listed.
    twin = c.new_package("lena", "Campaign 2027", {"Member"})
    ambiguous = error(cli("request", "list", "--package", "Campaign 2027", as_="alex"))
    assert c.package in ambiguous
    assert twin in ambiguous
