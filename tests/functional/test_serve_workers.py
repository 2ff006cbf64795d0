"""``remit serve --workers 2`` (issue #13, point 3; docs/decisions/0030) as real processes.

Two API processes answer on one port, each a child of ``remit serve``; the job worker runs in
that parent only (its start-up line is logged once, with the parent's pid, and a queued email
is delivered once); SIGTERM to the parent leaves no process behind. Which process answered a
connection is read from /proc: the process that holds the accepted socket of the connection's
port pair (no diagnostic endpoint).

On PostgreSQL, a subset of the R6 races (``test_races.py``) runs through a 2-process server:
the calls go over HTTP to whichever process accepts them, released together at a barrier, and
end as they do in one process. The servers share the test database and data directory (so the
tenant's tokens are good there). Nothing here is timed: the deadlines only stop a test that
would otherwise hang.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from remit.authz.actor import system_actor
from remit.context import Ctx
from remit.db import Database
from remit.directory import operations as d
from remit.lifecycle import requests
from remit.models.lifecycle import AssignmentRequest
from tests.conftest import SteppingClock
from tests.factories import DOMAIN, EM, Tenant
from tests.functional.test_races import (
    APPROVE,
    active_assignments,
    assert_chain_verifies,
    events,
    holding_all,
    open_stage_id,
    policy,
    race,
    refused,
)
from tests.lifecycle_support import (
    Campaign,
    actor_at,
    add_users,
    build_campaign,
    in_transaction,
)
from tests.peers import LoopbackController, MailSink, start_smtp

WORKERS = 2
READY = "Application startup complete."
STARTED = "jobs.worker_started"
PORTAL = "https://portal.remit.test"
DEADLINE = 60.0  # seconds: for a server to start or a job to run, on a busy machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    found: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry)] = (ppid, cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def descendants(pid: int) -> dict[int, str]:
    """The processes below ``pid`` (children, their children, ...): pid -> command line."""
    table = processes()
    below: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, cmdline) in table.items():
            if ppid == parent and child not in below:
                below[child] = cmdline
                frontier.append(child)
    return below


def socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def accepted_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server's end of the loopback connection from ``client_port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        if int(local.split(":")[1], 16) == server_port and (
            int(remote.split(":")[1], 16) == client_port
        ):
            return inode
    return None


class Served:
    """``remit serve --workers 2`` in its own process (so its own process tree), ready once
    both API processes have started."""

    def __init__(
        self, db_url: str, data_dir: Path, *, args: tuple[str, ...] = (), **env: str
    ) -> None:
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="remit-workers-", suffix=".log")[1])
        environment = {
            **os.environ,
            "REMIT_DATABASE_URL": db_url,
            "REMIT_DATA_DIR": str(data_dir),
            "REMIT_LOG_LEVEL": "info",
            "REMIT_WORKER_POLL_SECONDS": "0.1",
            **env,
        }
        command = [sys.executable, "-m", "remit", "serve", "--port", str(self.port), *args]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, env=environment, stdout=out, stderr=subprocess.STDOUT
            )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + DEADLINE
        while self.text().count(READY) < WORKERS:
            assert self.proc.poll() is None, f"remit serve exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"remit serve did not start:\n{self.tail()}"
            time.sleep(0.1)
        self.started_below = descendants(self.proc.pid)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return "\n".join(self.text().splitlines()[-40:])

    def api_processes(self) -> set[int]:
        return {p for p, cmd in descendants(self.proc.pid).items() if "spawn_main" in cmd}

    def answering(self, tries: int = 200) -> set[int]:
        """The API processes that answered, one connection at a time, until two have or
        ``tries`` connections were made."""
        owners: set[int] = set()
        children = self.api_processes()
        for _ in range(tries):
            with socket.create_connection(("127.0.0.1", self.port)) as sock:
                sock.sendall(b"GET /remit/health HTTP/1.1\r\nHost: remit.test\r\n\r\n")
                answer = b""
                while b"\r\n\r\n" not in answer:
                    answer += sock.recv(4096)
                assert answer.startswith(b"HTTP/1.1 200"), answer
                inode = accepted_inode(self.port, sock.getsockname()[1])
                assert inode is not None
                owners |= {pid for pid in children if inode in socket_inodes(pid)}
            if len(owners) >= WORKERS:
                break
        return owners

    def stop(self) -> int:
        """SIGTERM to ``remit serve`` (as a service manager stops it); its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(DEADLINE)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # Whatever this server started and left behind (a failing test's), by its own pid.
        still = processes()
        for pid, cmdline in self.started_below.items():
            if still.get(pid, (0, ""))[1] == cmdline:
                os.kill(pid, signal.SIGKILL)
        self.log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def mail() -> Iterator[tuple[MailSink, LoopbackController]]:
    sink = MailSink()
    controller = start_smtp(sink)
    yield sink, controller
    controller.stop()


@pytest.fixture(scope="module")
def served(
    migrated_db: Database, session_dir: Path, mail: tuple[MailSink, LoopbackController]
) -> Iterator[Served]:
    # The settings fixture's data directory: its signing key signs the tenant's tokens.
    server = Served(
        migrated_db.url,
        session_dir / "data",
        args=("--workers", str(WORKERS)),
        REMIT_SMTP_HOST="127.0.0.1",
        REMIT_SMTP_PORT=str(mail[1].port),
        REMIT_PORTAL_BASE_URL=PORTAL,
    )
    yield server
    server.close()


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


@pytest.fixture
def postgres(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("races between server processes are PostgreSQL's: SQLite has one writer")


class Remote:
    """The tenant's personas calling the served API over HTTP, a connection per call (so that
    calls spread over the server's processes)."""

    def __init__(self, t: Tenant, served: Served) -> None:
        self.t, self.url = t, served.url

    def call(self, alias: str, method: str, path: str, json: Any = None) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=DEADLINE) as client:
            return client.request(method, path, json=json, headers=self.t.headers(alias))

    def later(self, alias: str, method: str, path: str, json: Any = None) -> Callable[[], Any]:
        return lambda: self.call(alias, method, path, json)


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def answers(calls: list[Callable[[], Any]]) -> list[httpx.Response]:
    outcomes = race(*calls)
    assert [o.describe() for o in outcomes if o.error is not None] == []
    return [o.value for o in outcomes]


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return "" if body is None else str(body.get_content())


def request_state(t: Tenant, request_id: str) -> str:
    with t.db.read() as conn:
        return str(
            conn.execute(
                select(AssignmentRequest.state).where(AssignmentRequest.id == request_id)
            ).scalar_one()
        )


# ---------------------------------------------------------------------------- the processes


def test_two_api_processes_answer_on_one_port(migrated_db: Database, served: Served) -> None:
    children = served.api_processes()
    assert len(children) == WORKERS, served.tail()
    assert served.proc.pid not in children
    assert served.answering() == children
    warned = "warning: 2 processes on SQLite" in served.text()
    assert warned == (migrated_db.dialect == "sqlite")


def test_the_job_worker_runs_once_in_the_parent(
    c: Campaign, served: Served, mail: tuple[MailSink, LoopbackController]
) -> None:
    """One job worker, in ``remit serve`` itself; a request made through either API process is
    delivered by it and its email sent once."""
    started = [line for line in served.text().splitlines() if STARTED in line]
    assert len(started) == 1, started
    assert f'"pid": {served.proc.pid}' in started[0]
    t, sink = c.t, mail[0]
    pid = c.policy("lena", policy(c.package, name="Self service"))
    made = Remote(t, served).call(
        "carl",
        "POST",
        f"{EM}/assignmentRequests",
        {
            "requestType": "userAdd",
            "assignment": {
                "accessPackageId": c.package,
                "targetId": t.ids["carl"],
                "assignmentPolicyId": pid,
            },
        },
    )
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    eventually(lambda: request_state(t, request_id) == "delivered", "delivered")
    # Found by the request's link: the server's worker may still send mail of earlier tests.
    link = f"{PORTAL}/requests/{request_id}"

    def sent() -> list[EmailMessage]:
        return [m.message for m in sink.messages if link in text_of(m.message)]

    eventually(lambda: sent() != [], "an email about the request")
    time.sleep(1.0)  # a second worker, if there were one, would have sent its copy by now
    [message] = sent()
    assert message["To"] == f"Carl Contractor <carl@{DOMAIN}>"
    assert message["Subject"] == "You now have access to Campaign 2027"
    assert active_assignments(t, c.package) == {t.ids["carl"]: 1}


def test_sigterm_stops_every_process(migrated_db: Database, session_dir: Path) -> None:
    """The number of processes from the environment (REMIT_WORKERS), no job worker; SIGTERM
    to ``remit serve`` ends it and every process it started."""
    server = Served(
        migrated_db.url,
        session_dir / "data",
        REMIT_WORKERS=str(WORKERS),
        REMIT_WORKER_IN_PROCESS="false",
    )
    below = set(server.started_below)
    assert len(server.api_processes()) == WORKERS
    text = server.text()
    assert STARTED not in text
    assert server.stop() == 0, server.tail()
    eventually(lambda: not below & set(processes()), "every process gone")


# ---------------------------------------------------------------- R6 races, two processes


def user_add_body(c: Campaign, user_id: str, policy_id: str) -> dict[str, Any]:
    return {
        "requestType": "userAdd",
        "assignment": {
            "accessPackageId": c.package,
            "targetId": user_id,
            "assignmentPolicyId": policy_id,
        },
    }


def one_stage_policy(c: Campaign, approvers: list[dict[str, str]]) -> str:
    return c.policy("lena", policy(c.package, stages=approvers))


def submitted(c: Campaign, user_id: str, policy_id: str) -> str:
    t = c.t
    return in_transaction(
        t,
        actor_at(t, user_id),
        lambda ctx: requests.submit(
            ctx, kind="userAdd", package_id=c.package, policy_id=policy_id, target_id=user_id
        ),
    ).id


def test_fifty_approvals_of_one_stage_through_two_processes(
    postgres: None, c: Campaign, served: Served
) -> None:
    """As ``test_fifty_concurrent_approvals_of_one_stage_advance_it_once``, over HTTP: one 204,
    forty-nine Graph-shaped 409s, one approval event, one assignment delivered."""
    t, remote = c.t, Remote(c.t, served)
    approvers = add_users(t, "approver", 50)
    [requester] = add_users(t, "requester", 1)
    with t.db.write() as s:
        group = d.create_group(
            Ctx(s, system_actor("test"), t.clock()),
            display_name="Campaign approvers",
            owner_ids=[t.ids["mamta"]],
            member_ids=approvers,
        ).id
    pid = one_stage_policy(c, [{"@odata.type": "#microsoft.graph.groupMembers", "groupId": group}])
    request = submitted(c, requester, pid)
    stage = open_stage_id(t, request)
    path = f"{EM}/accessPackageAssignmentApprovals/{request}/stages/{stage}"
    body = {"reviewResult": "Approve", "justification": "ok"}

    made = answers([remote.later(f"approver{i}", "PATCH", path, body) for i in range(50)])

    assert statuses(made) == {204: 1, 409: 49}, [r.text for r in made if r.status_code != 204]
    assert sum(refused(r, {409}) for r in made) == 49
    assert events(t, APPROVE, request) == 1
    eventually(lambda: request_state(t, request) == "delivered", "delivered")
    assert active_assignments(t, c.package) == {requester: 1}
    assert requester in holding_all(t, c.package)
    assert_chain_verifies(t)


def test_fifty_identical_requests_through_two_processes(
    postgres: None, c: Campaign, served: Served
) -> None:
    """As ``test_fifty_identical_requests_make_one_assignment``, over HTTP: one 201, forty-nine
    409s (an open request or an assignment exists), one request, one assignment."""
    t, remote = c.t, Remote(c.t, served)
    [user] = add_users(t, "requester", 1)
    pid = c.policy("lena", policy(c.package, name="Self service"))
    body = user_add_body(c, user, pid)

    made = answers([remote.later("requester0", "POST", f"{EM}/assignmentRequests", body)] * 50)

    assert statuses(made) == {201: 1, 409: 49}, [r.text for r in made if r.status_code != 201]
    assert sum(refused(r, {409}) for r in made) == 49
    assert {r.json()["error"]["code"] for r in made if r.status_code == 409} <= {
        "ExistingOpenRequest",
        "ExistingAssignment",
    }
    [accepted] = [r.json()["id"] for r in made if r.status_code == 201]
    with t.db.read() as conn:
        mine = conn.execute(
            select(AssignmentRequest.id).where(AssignmentRequest.target_id == user)
        ).scalars()
        assert list(mine) == [accepted]
    eventually(lambda: request_state(t, accepted) == "delivered", "delivered")
    assert active_assignments(t, c.package) == {user: 1}
    assert events(t, "User requests access package assignment", accepted) == 1
    assert_chain_verifies(t)


CANCEL_ROUNDS = 20


def test_approve_and_cancel_never_both_through_two_processes(
    postgres: None, c: Campaign, served: Served
) -> None:
    """As ``test_approve_and_cancel_never_both_take_effect`` (the requestor's cancel), over
    HTTP: the approval and the cancel never both succeed; a canceled request leaves no
    assignment, a kept one is delivered."""
    t, remote = c.t, Remote(c.t, served)
    users = add_users(t, "requester", CANCEL_ROUNDS)
    pid = one_stage_policy(
        c, [{"@odata.type": "#microsoft.graph.singleUser", "userId": t.ids["mamta"]}]
    )
    tally: Counter[str] = Counter()
    rounds: list[tuple[str, str, int, int]] = []
    for i, user in enumerate(users):
        request = submitted(c, user, pid)
        stage = open_stage_id(t, request)
        approve = remote.later(
            "mamta",
            "PATCH",
            f"{EM}/accessPackageAssignmentApprovals/{request}/stages/{stage}",
            {"reviewResult": "Approve", "justification": "ok"},
        )
        cancel = remote.later(f"requester{i}", "POST", f"{EM}/assignmentRequests/{request}/cancel")
        calls = [approve, cancel] if i % 2 == 0 else [cancel, approve]
        approved, canceled = answers(calls) if i % 2 == 0 else answers(calls)[::-1]
        where = f"round {i}: approve {approved.status_code}, cancel {canceled.status_code}"
        # Each is a 204 or a Graph-shaped 409, and exactly one of them took effect.
        assert refused(approved, {409}) != refused(canceled, {409}), where
        rounds.append((user, request, approved.status_code, canceled.status_code))
        tally[f"approve {approved.status_code} / cancel {canceled.status_code}"] += 1
    print(dict(tally))
    for i, (_, request, approved_status, _) in enumerate(rounds):
        where = f"round {i}"
        if approved_status == 204:
            eventually(lambda r=request: request_state(t, r) == "delivered", where)
        else:
            assert request_state(t, request) == "canceled", where
    active = active_assignments(t, c.package)
    assert set(active) == {user for user, _, approved, _ in rounds if approved == 204}
    assert set(active.values()) <= {1}
    assert_chain_verifies(t)


def test_catalogs_of_one_name_created_at_once_through_two_processes(
    postgres: None, c: Campaign, served: Served
) -> None:
    """Twenty creates of one catalog name at once: one 201, nineteen Graph-shaped 409s."""
    remote = Remote(c.t, served)
    body = {"displayName": "Contested", "description": "one of twenty"}
    made = answers([remote.later("mamta", "POST", f"{EM}/catalogs", body)] * 20)
    assert statuses(made) == {201: 1, 409: 19}, [r.text for r in made if r.status_code != 201]
    assert sum(refused(r, {409}) for r in made) == 19
    listed = c.t.get("mamta", f"{EM}/catalogs", **{"$filter": "displayName eq 'Contested'"})
    assert listed.status_code == 200, listed.text
    assert [x["id"] for x in listed.json()["value"]] == [
        r.json()["id"] for r in made if r.status_code == 201
    ]
    assert_chain_verifies(c.t)
