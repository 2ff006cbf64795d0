"""Notifications against real peers on loopback: an aiosmtpd SMTP server (plain, STARTTLS with
AUTH, implicit TLS), an HTTP receiver for webhooks, and custom extension CRUD through the API.

Jobs run through the real worker (``Worker.drain``) on the test's stepping clock: a retry is
made due by moving the clock past the backoff, never by waiting.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import random
import socket
import ssl
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from sqlalchemy import select, update

import remit.notify.jobs  # noqa: F401 - registers notify.email and notify.webhook
from remit.authz.actor import system_actor
from remit.authz.roles import CATALOG_READER
from remit.context import Ctx
from remit.db import Database
from remit.jobs.runner import MAX_BACKOFF_SECONDS, Worker
from remit.models.audit import AuditEvent
from remit.models.directory import User
from remit.models.jobs import Job
from remit.models.notify import CustomExtension
from remit.models.policies import AssignmentPolicy
from remit.models.policy_settings import ExtensionStageSetting
from remit.notify import config, egress, render, sealed, webhooks
from remit.notify.email import EMAIL_ATTEMPTS, send_later
from remit.settings import Settings
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant
from tests.peers import Hit, MailSink, Receiver, start_smtp

SMTP_PASSWORD = "smtp-pass-never-logged-7Q2"
HOOK_SECRET = "hook-secret-never-shown-Zx81"
PORTAL = "https://remit.example/portal"
FULL = {
    "package": "Campaign <b>tools</b>",
    "requestor": "Lena Novak",
    "target": "Sofia Costa",
    "justification": "Launch & review",
    "start": "2026-03-02T14:05:00Z",
    "end": "2026-06-01T00:00:00Z",
    "submitted": "2026-03-01T09:00:00Z",
    "deadline": "2026-03-15T09:00:00Z",
    "stage": 1,
    "stages": 2,
    "request_id": "req-1",
    "escalated": False,
}


def extensions_path(catalog_id: str) -> str:
    return f"{EM}/catalogs/{catalog_id}/accessPackageCustomWorkflowExtensions"


# ---------------------------------------------------------------- peers


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1 / localhost, made here."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return Tls(server, ssl.create_default_context(cafile=str(cert_file)))


def closed_port() -> int:
    """A loopback port that nothing listens on (the system just handed it out and took it back)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# ---------------------------------------------------------------- harness


@dataclass
class Env:
    """The tenant, the queue's worker on the test's clock, and the notification settings."""

    tenant: Tenant
    db: Database
    clock: SteppingClock
    worker: Worker
    settings: Settings

    def use(self, tls_context: ssl.SSLContext | None = None, **changes: Any) -> None:
        config.configure(self.settings.model_copy(update=changes), tls_context=tls_context)

    def smtp(self, port: int, tls_context: ssl.SSLContext | None = None, **changes: Any) -> None:
        self.use(tls_context, smtp_host="127.0.0.1", smtp_port=port, **changes)

    @contextmanager
    def ctx(self) -> Iterator[Ctx]:
        with self.db.write() as s:
            yield Ctx(s, system_actor("test"), self.clock())

    def email(self, template: str, to: list[str], data: dict[str, Any] | None = None) -> None:
        ids = [self.tenant.ids.get(alias, alias) for alias in to]
        with self.ctx() as ctx:
            send_later(
                ctx, template=template, to=ids, data={"package": "P"} if data is None else data
            )

    def jobs(self) -> list[Job]:
        """The notification jobs in the queue (the worker also runs other domains' periodic
        jobs, which stay queued for their next slot)."""
        with self.db.write() as s:
            mine = select(Job).where(Job.kind.startswith("notify.")).order_by(Job.id)
            rows = list(s.execute(mine).scalars())
            s.expunge_all()
            return rows

    def set_user(self, alias: str, **values: Any) -> None:
        with self.db.write() as s:
            s.execute(update(User).where(User.id == self.tenant.ids[alias]).values(**values))

    def settle(self, rounds: int) -> None:
        """Run the queue ``rounds`` times, moving the clock past the longest backoff each time."""
        for _ in range(rounds):
            self.worker.drain()
            self.clock.advance(seconds=MAX_BACKOFF_SECONDS + 1)

    def stored(self) -> str:
        """Every job (payload, error) and audit event, as text: where a secret must never be."""
        with self.db.write() as s:
            payloads = [[j.payload, j.last_error] for j in s.execute(select(Job)).scalars()]
            events = [[e.target_name, e.details] for e in s.execute(select(AuditEvent)).scalars()]
        return json.dumps([payloads, events])


@pytest.fixture
def env(
    tenant: Tenant, db: Database, clock: SteppingClock, settings: Settings, tmp_path: Path
) -> Iterator[Env]:
    worker = Worker(db, settings, clock=clock, rng=random.Random(7), worker_id="test")  # noqa: S311
    notify = Settings(
        data_dir=tmp_path,
        database_url="unused",
        portal_base_url=PORTAL,
        webhook_allowed_networks=settings.webhook_allowed_networks,
    )
    config.configure(notify)
    yield Env(tenant, db, clock, worker, notify)
    config.configure(None)


@pytest.fixture
def sink(env: Env) -> Iterator[MailSink]:
    """A plain SMTP server on loopback, and the notifications pointed at it."""
    handler = MailSink()
    controller = start_smtp(handler)
    env.smtp(controller.port)
    yield handler
    controller.stop()


def parts(message: EmailMessage) -> tuple[str, str]:
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert html is not None
    return plain.get_content(), html.get_content()  # type: ignore[attr-defined]


# ---------------------------------------------------------------- email


def test_email_goes_out_over_smtp_with_plain_and_html_parts(env: Env, sink: MailSink) -> None:
    env.set_user("mamta", mail="mamta.rao@mail.contoso.example")
    env.email("approval_needed", ["mamta", "mamta"], FULL)
    (queued,) = env.jobs()  # one job per recipient, however often it is named
    assert queued.payload["user_id"] == env.tenant.ids["mamta"]
    assert "mamta.rao@mail" not in json.dumps(queued.payload)  # looked up when it runs

    env.worker.drain()
    (got,) = sink.messages
    assert got.rcpt_tos == ["mamta.rao@mail.contoso.example"]
    msg = got.message
    assert msg["To"] == "Mamta Rao <mamta.rao@mail.contoso.example>"
    assert msg["From"] == env.settings.smtp_sender
    assert msg["Subject"] == "Approval needed: Lena Novak requests Campaign <b>tools</b>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"] == f"<{queued.payload['message_id']}@remit.invalid>"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = parts(msg)
    assert 'access package "Campaign <b>tools</b>"' in text
    assert "Justification: Launch & review" in text
    assert "Stage:         1 of 2" in text
    assert "15 Mar 2026 09:00 UTC" in text
    assert f"{PORTAL}/approvals/req-1" in text
    # The HTML part escapes what the data holds, and links to the approval page.
    assert "Campaign &lt;b&gt;tools&lt;/b&gt;" in html
    assert "<b>tools</b>" not in html
    assert "Launch &amp; review" in html
    assert f'href="{PORTAL}/approvals/req-1"' in html
    assert env.jobs() == []


def test_names_and_domains_beyond_ascii_and_no_header_injection(env: Env, sink: MailSink) -> None:
    env.set_user(
        "mamta", display_name="Mamta Rāo\r\nBcc: victim@evil.example", mail="mamta@bücher.example"
    )
    env.set_user("lena", mail="lena.ñ@contoso.example", user_principal_name="")
    with structlog.testing.capture_logs() as logs:
        env.email("approval_needed", ["mamta", "lena"], {**FULL, "package": "Campagne été\nX: y"})
        env.worker.drain()
    (got,) = sink.messages
    assert got.rcpt_tos == ["mamta@xn--bcher-kva.example"]
    msg = got.message
    assert msg["To"] == '"Mamta Rāo Bcc: victim@evil.example" <mamta@xn--bcher-kva.example>'
    assert msg["Bcc"] is None
    assert msg["X"] is None
    assert msg["Subject"] == "Approval needed: Lena Novak requests Campagne été X: y"
    text, _ = parts(msg)
    assert "Campagne été" in text
    skipped = {e["user_id"]: e["reason"] for e in logs if e["event"] == "email.skipped"}
    assert skipped == {env.tenant.ids["lena"]: "bad address"}  # needs SMTPUTF8


APPROVED = {**FULL, "approver": "Omar"}
R9 = {"package": "P", "request_id": "r9"}
EXPIRING = {"package": "P", "days": 14, "assignment_id": "a1"}
ENDED = {"package": "P", "reason": "it expired", "assignment_id": "a1"}


@pytest.mark.parametrize(
    ("template", "data", "subject", "link"),
    [
        ("approval_reminder", FULL, "Reminder: approval needed for Lena", "approvals/req-1"),
        ("request_stage_approved", APPROVED, "Stage 1 approved", "approvals/req-1"),
        ("request_approved", APPROVED, "Request approved", "approvals/req-1"),
        ("request_denied", R9, "Request denied: P", "requests/r9"),
        ("request_expired", R9, "Request expired: P", "requests/r9"),
        ("access_delivered", R9, "You now have access to P", "requests/r9"),
        ("access_expiring", EXPIRING, "Your access to P ends in 14 days", "access/a1"),
        ("access_ended", ENDED, "Your access to P has ended", "access/a1"),
    ],
)  # fmt: skip
def test_every_template_renders_with_its_link(
    env: Env, sink: MailSink, template: str, data: dict[str, Any], subject: str, link: str
) -> None:
    env.email(template, ["sofia"], data)
    env.worker.drain()
    (got,) = sink.messages
    assert got.rcpt_tos == ["sofia@contoso.example"]  # no mail address: the UPN
    # A long subject may be folded right after "Subject:"; unfolded, it starts with a space.
    assert str(got.message["Subject"]).strip().startswith(subject)
    text, html = parts(got.message)
    assert f"{PORTAL}/{link}" in text
    assert f'href="{PORTAL}/{link}"' in html


def test_missing_data_and_no_portal_still_render(env: Env, sink: MailSink) -> None:
    env.smtp(sink_port(env), portal_base_url="")
    env.email("approval_needed", ["sofia"])
    env.worker.drain()
    (got,) = sink.messages
    assert got.message["Subject"] == "Approval needed: A user requests P"
    text, html = parts(got.message)
    assert "http" not in text
    assert "href" not in html
    assert env.jobs() == []


def sink_port(env: Env) -> int:
    return config.current().settings.smtp_port


def test_users_without_an_address_disabled_or_deleted_are_skipped(env: Env, sink: MailSink) -> None:
    env.set_user("sofia", mail=None, user_principal_name="")
    env.set_user("ines", account_enabled=False)
    env.set_user("omar", mail="", user_principal_name="omar_x.example#EXT#@contoso.example")
    env.email("access_ended", ["sofia", "ines", "omar", "lena", "no-such-user"])
    with structlog.testing.capture_logs() as logs:
        env.worker.drain()
    assert [m.rcpt_tos for m in sink.messages] == [["lena@contoso.example"]]
    ids = env.tenant.ids
    assert {e["user_id"]: e["reason"] for e in logs if e["event"] == "email.skipped"} == {
        ids["sofia"]: "no address",
        ids["ines"]: "user disabled",
        ids["omar"]: "no address",  # a guest's #EXT# UPN is no mailbox
        "no-such-user": "user deleted",
    }
    assert env.jobs() == []  # skipping is not failing


def test_a_temporary_smtp_failure_is_retried_then_given_up(env: Env, sink: MailSink) -> None:
    sink.refuse_with = "451 4.3.0 Mailbox busy, try again later"
    env.email("access_ended", ["lena"])
    env.worker.drain()
    (job,) = env.jobs()
    assert (job.status, job.attempts) == ("queued", 1)
    assert job.run_after > env.clock.now
    assert "SMTPRecipientsRefused" in (job.last_error or "")

    env.settle(EMAIL_ATTEMPTS)
    (job,) = env.jobs()
    assert (job.status, job.attempts) == ("failed", EMAIL_ATTEMPTS)
    assert sink.rcpt_attempts == EMAIL_ATTEMPTS
    assert sink.messages == []


def test_a_retry_that_succeeds_delivers_once(env: Env, sink: MailSink) -> None:
    sink.refuse_with = "421 4.7.0 Too busy"
    env.email("access_ended", ["lena"])
    env.worker.drain()
    sink.refuse_with = None
    env.settle(2)
    assert len(sink.messages) == 1
    assert env.jobs() == []


def test_a_batch_of_emails_goes_over_one_connection(env: Env, sink: MailSink) -> None:
    env.email("access_ended", ["lena", "sofia", "ines"])
    env.worker.drain()
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == [
        "ines@contoso.example",
        "lena@contoso.example",
        "sofia@contoso.example",
    ]
    assert (sink.greetings, sink.quits) == (1, 1)  # one connection, closed when the batch ended
    assert env.jobs() == []

    env.email("access_ended", ["omar"])  # the next batch opens its own
    env.worker.drain()
    assert (sink.greetings, sink.quits) == (2, 2)


@pytest.mark.parametrize("goodbye", ["", "421 4.4.2 Idle timeout exceeded, closing"])
def test_a_connection_the_server_ended_is_replaced_not_failed(
    env: Env, sink: MailSink, goodbye: str
) -> None:
    sink.hang_up_after_data = goodbye  # one message per connection, silently or with a 421
    env.email("access_ended", ["lena", "sofia", "ines"])
    env.worker.drain()
    assert len(sink.messages) == 3  # each once
    assert sink.greetings == 3
    assert env.jobs() == []  # none failed or was retried


def test_a_refused_message_does_not_hold_up_the_rest_of_the_batch(env: Env, sink: MailSink) -> None:
    env.set_user("sofia", mail="nobody@refused.example")
    sink.refuse_domains["refused.example"] = "550 5.1.1 No such mailbox"
    env.email("access_ended", ["lena", "sofia", "ines"])
    env.worker.drain()
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == [
        "ines@contoso.example",
        "lena@contoso.example",
    ]
    assert sink.rcpt_attempts == 3  # each message once, the refused one too
    assert env.jobs() == []  # the refusal is permanent: logged, not retried


def test_a_permanent_refusal_is_not_retried(env: Env, sink: MailSink) -> None:
    sink.refuse_with = "550 5.1.1 No such mailbox"
    env.email("access_ended", ["lena"])
    with structlog.testing.capture_logs() as logs:
        env.worker.drain()
    assert sink.rcpt_attempts == 1
    assert env.jobs() == []
    assert [e["codes"] for e in logs if e["event"] == "email.refused"] == [[550]]


def test_no_smtp_server_is_a_retry(env: Env) -> None:
    env.smtp(closed_port())
    env.email("access_ended", ["lena"])
    env.worker.drain()
    (job,) = env.jobs()
    assert (job.status, job.attempts) == ("queued", 1)
    assert "ConnectionRefusedError" in (job.last_error or "")


def test_starttls_and_login(env: Env, tls: Tls) -> None:
    logins: list[LoginPassword] = []

    def authenticator(*args: Any) -> AuthResult:
        logins.append(args[-1])
        ok = args[-1] == LoginPassword(b"remit", SMTP_PASSWORD.encode())
        return AuthResult(success=ok, handled=False)

    sink = MailSink()
    controller = start_smtp(
        sink,
        tls_context=tls.server,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    try:
        env.smtp(
            controller.port,
            tls.client,
            smtp_security="starttls",
            smtp_username="remit",
            smtp_password=SMTP_PASSWORD,
        )
        env.email("access_ended", ["lena"])
        with structlog.testing.capture_logs() as logs:
            env.worker.drain()
    finally:
        controller.stop()
    (got,) = sink.messages
    assert got.tls
    assert got.authenticated
    assert [login.login for login in logins] == [b"remit"]
    assert SMTP_PASSWORD not in json.dumps(logs, default=str)
    assert SMTP_PASSWORD not in env.stored()


def test_a_refused_login_is_retried_without_leaking_the_password(env: Env, tls: Tls) -> None:
    sink = MailSink()
    controller = start_smtp(
        sink,
        tls_context=tls.server,
        require_starttls=True,
        authenticator=lambda *_: AuthResult(success=False, handled=False),
    )
    try:
        env.smtp(
            controller.port,
            tls.client,
            smtp_security="starttls",
            smtp_username="remit",
            smtp_password=SMTP_PASSWORD,
        )
        env.email("access_ended", ["lena"])
        with structlog.testing.capture_logs() as logs:
            env.worker.drain()
    finally:
        controller.stop()
    (job,) = env.jobs()
    assert job.status == "queued"
    assert "SMTPAuthenticationError" in (job.last_error or "")
    assert SMTP_PASSWORD not in json.dumps(logs, default=str)
    assert SMTP_PASSWORD not in env.stored()
    assert sink.messages == []


def test_implicit_tls(env: Env, tls: Tls) -> None:
    sink = MailSink()
    controller = start_smtp(sink, ssl_context=tls.server)
    try:
        env.smtp(controller.port, tls.client, smtp_security="tls")
        env.email("access_ended", ["lena"])
        env.worker.drain()
    finally:
        controller.stop()
    assert len(sink.messages) == 1
    assert env.jobs() == []


def test_an_untrusted_certificate_is_refused(env: Env, tls: Tls) -> None:
    sink = MailSink()
    controller = start_smtp(sink, tls_context=tls.server, require_starttls=True)
    try:
        # The system's trust store does not know the test's certificate.
        env.smtp(controller.port, smtp_security="starttls")
        env.email("access_ended", ["lena"])
        env.worker.drain()
    finally:
        controller.stop()
    assert sink.messages == []
    (job,) = env.jobs()
    assert "SSLCertVerificationError" in (job.last_error or "")


def test_without_smtp_host_messages_go_to_the_outbox(env: Env) -> None:
    env.email("access_delivered", ["lena"], {"package": "P", "request_id": "r1"})
    (queued,) = env.jobs()
    with structlog.testing.capture_logs() as logs:
        env.worker.drain()
    outbox = env.settings.data_dir / "outbox"
    (path,) = outbox.iterdir()
    assert path.name.endswith(f"-{queued.payload['message_id']}.eml")
    assert path.name[:14].isdigit()
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert msg["To"] == "Lena Novak <lena@contoso.example>"
    assert msg["Subject"] == "You now have access to P"
    text, html = parts(msg)  # type: ignore[arg-type]
    assert f"{PORTAL}/requests/r1" in text
    assert "<strong>P</strong>" in html
    assert [e["path"] for e in logs if e["event"] == "email.outbox"] == [str(path)]
    assert env.jobs() == []


class Boom(Exception):
    pass


def test_queued_email_rolls_back_with_the_change(env: Env) -> None:
    def change_then_fail() -> None:
        with env.ctx() as ctx:
            send_later(ctx, template="access_ended", to=[env.tenant.ids["lena"]], data={})
            raise Boom

    with pytest.raises(Boom):
        change_then_fail()
    assert env.jobs() == []
    with pytest.raises(ValueError, match="no email template"):
        env.email("nope", ["lena"])


# ---------------------------------------------------------------- webhooks


@dataclass
class Hooked:
    catalog_id: str
    extension_id: str


@pytest.fixture
def hooked(env: Env, receiver: Receiver) -> Hooked:
    """Mamta's catalog, with one extension pointing at the receiver."""
    catalog_id = env.tenant.create_catalog("mamta", "Marketing")
    r = env.tenant.post(
        "mamta",
        extensions_path(catalog_id),
        {
            "displayName": "Ticketing",
            "endpointConfiguration": {
                "@odata.type": "#microsoft.graph.logicAppTriggerEndpointConfiguration",
                "url": receiver.url,
            },
            "secret": HOOK_SECRET,
        },
    )
    assert r.status_code == 201, r.text
    return Hooked(catalog_id, r.json()["id"])


def stage_settings(extension_id: str, *stages: str) -> list[dict[str, Any]]:
    return [
        {"id": f"s{i}", "stage": stage, "customExtension": {"id": extension_id}}
        for i, stage in enumerate(stages)
    ]


def fire(
    env: Env,
    hooked: Hooked,
    stage: str = "assignmentRequestCreated",
    settings: list[dict[str, Any]] | None = None,
    catalog_id: str | None = None,
) -> None:
    if settings is None:
        settings = stage_settings(
            hooked.extension_id, "assignmentRequestCreated", "assignmentRequestGranted"
        )
    with env.ctx() as ctx:
        webhooks.fire(
            ctx,
            catalog_id=catalog_id or hooked.catalog_id,
            stage_settings=[ExtensionStageSetting.model_validate(x) for x in settings],
            stage=stage,
            payload={"assignmentRequest": {"id": "req-1"}, "accessPackage": {"id": "pkg-1"}},
        )


def signed(hit: Hit, now: dt.datetime) -> bool:
    return webhooks.verify_signature(
        HOOK_SECRET,
        hit.headers["X-Remit-Timestamp"],
        hit.body,
        hit.headers["X-Remit-Signature"],
        now=now,
    )


def test_a_webhook_is_signed_and_carries_the_stage(
    env: Env, receiver: Receiver, hooked: Hooked
) -> None:
    settings = [
        *stage_settings(
            hooked.extension_id, "assignmentRequestCreated", "assignmentRequestGranted"
        ),
        *stage_settings("nope", "assignmentRequestCreated"),
    ]
    with structlog.testing.capture_logs() as logs:
        fire(env, hooked, settings=settings)
        (queued,) = env.jobs()  # one stage matches; an unknown extension is skipped
        assert HOOK_SECRET not in json.dumps(queued.payload)
        env.worker.drain()
    (hit,) = receiver.hits
    assert signed(hit, env.clock.now)
    assert hit.headers["X-Remit-Event"] == "assignmentRequestCreated"
    assert hit.headers["X-Remit-Delivery"] == queued.payload["delivery_id"]
    assert hit.headers["X-Remit-Timestamp"] == str(int(env.clock.now.timestamp()))
    assert hit.headers["Content-Type"] == "application/json"
    body = json.loads(hit.body)
    assert body["type"].endswith("accessPackageCustomExtensionStage.assignmentRequestCreated")
    assert body["data"]["assignmentRequest"] == {"id": "req-1"}
    assert body["data"]["stage"] == "assignmentRequestCreated"
    assert body["data"]["customExtensionId"] == hooked.extension_id
    assert env.jobs() == []
    unknown = [e["extension_id"] for e in logs if e["event"] == "webhook.unknown_extension"]
    assert unknown == ["nope"]
    text = json.dumps(logs, default=str)
    assert HOOK_SECRET not in text
    assert "sig=abc" not in text  # the endpoint's own key stays out of the logs too


def test_verify_signature_refuses_tampering_wrong_keys_and_stale_times() -> None:
    body, key, ts = b'{"a":1}', "k" * 20, "1700000000"
    header = webhooks.sign(key, ts, body)
    at = dt.datetime.fromtimestamp(1700000000, dt.UTC)
    assert webhooks.verify_signature(key, ts, body, header)
    assert webhooks.verify_signature(key, ts, body.decode(), header, now=at)
    assert not webhooks.verify_signature(key + "x", ts, body, header)
    assert not webhooks.verify_signature(key, "1700000001", body, header)
    assert not webhooks.verify_signature(key, ts, b'{"a":2}', header)
    assert not webhooks.verify_signature(key, ts, body, header.upper())
    late = at + dt.timedelta(minutes=6)
    assert not webhooks.verify_signature(key, ts, body, header, now=late)


def test_a_stage_without_extensions_queues_nothing(env: Env, hooked: Hooked) -> None:
    fire(env, hooked, stage="assignmentRequestRemoved")
    assert env.jobs() == []
    with pytest.raises(ValueError, match="unknown custom extension stage"):
        fire(env, hooked, stage="requestCreated")


def test_an_extension_of_another_catalog_is_not_called(env: Env, hooked: Hooked) -> None:
    finance = env.tenant.create_catalog("mark", "Finance")
    fire(env, hooked, catalog_id=finance)
    assert env.jobs() == []


def test_a_500_is_retried_with_the_same_delivery_id(
    env: Env, receiver: Receiver, hooked: Hooked
) -> None:
    receiver.script = [(500, {})]
    fire(env, hooked)
    env.worker.drain()
    (job,) = env.jobs()
    assert (job.status, job.attempts) == ("queued", 1)
    assert "HTTP 500" in (job.last_error or "")
    env.clock.advance(seconds=MAX_BACKOFF_SECONDS + 1)
    env.worker.drain()
    first, second = receiver.hits
    assert first.headers["X-Remit-Delivery"] == second.headers["X-Remit-Delivery"]
    assert first.body == second.body
    assert first.headers["X-Remit-Timestamp"] != second.headers["X-Remit-Timestamp"]
    assert signed(second, env.clock.now)
    assert env.jobs() == []


def test_retry_after_is_honoured(env: Env, receiver: Receiver, hooked: Hooked) -> None:
    receiver.script = [(429, {"Retry-After": "120"}), (503, {"Retry-After": "30"})]
    fire(env, hooked)
    env.worker.drain()
    (job,) = env.jobs()
    assert (job.status, job.attempts) == ("queued", 0)  # waiting is not failing
    assert job.run_after == env.clock.now + dt.timedelta(seconds=120)
    env.clock.advance(seconds=119)
    env.worker.drain()
    assert len(receiver.hits) == 1
    env.clock.advance(seconds=1)
    env.worker.drain()
    assert len(receiver.hits) == 2
    (job,) = env.jobs()
    assert job.run_after == env.clock.now + dt.timedelta(seconds=30)
    env.clock.advance(seconds=30)
    env.worker.drain()
    assert len(receiver.hits) == 3
    assert env.jobs() == []


def test_retry_after_as_a_date_and_its_bounds() -> None:
    now = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
    assert webhooks.retry_after("Mon, 02 Mar 2026 12:05:00 GMT", now) == dt.timedelta(minutes=5)
    assert webhooks.retry_after("86400", now) == dt.timedelta(hours=1)
    assert webhooks.retry_after("0", now) == dt.timedelta(seconds=1)
    assert webhooks.retry_after("soon", now) is None


def test_a_delivery_older_than_a_day_is_given_up(
    env: Env, receiver: Receiver, hooked: Hooked
) -> None:
    # A retry that would fall after the day is not made...
    receiver.script = [(503, {"Retry-After": "3600"})]
    fire(env, hooked)
    env.clock.advance(hours=23, minutes=30)
    env.worker.drain()
    assert len(receiver.hits) == 1
    assert env.jobs() == []
    # ...and a delivery that waited a day in the queue is not sent at all.
    fire(env, hooked)
    env.clock.advance(days=1, seconds=1)
    with structlog.testing.capture_logs() as logs:
        env.worker.drain()
    assert len(receiver.hits) == 1
    assert env.jobs() == []
    assert [e["reason"] for e in logs if e["event"] == "webhook.gave_up"] == ["older than a day"]


def test_a_400_is_given_up(env: Env, receiver: Receiver, hooked: Hooked) -> None:
    receiver.script = [(400, {})]
    fire(env, hooked)
    with structlog.testing.capture_logs() as logs:
        env.worker.drain()
    assert len(receiver.hits) == 1
    assert env.jobs() == []
    assert [e.get("status") for e in logs if e["event"] == "webhook.gave_up"] == [400]


def test_an_unreachable_endpoint_is_retried(env: Env, hooked: Hooked) -> None:
    r = env.tenant.call(
        "mamta",
        "PATCH",
        f"{extensions_path(hooked.catalog_id)}/{hooked.extension_id}",
        json={"endpointConfiguration": {"url": f"http://127.0.0.1:{closed_port()}/hook"}},
    )
    assert r.status_code == 200, r.text
    fire(env, hooked)
    env.worker.drain()
    (job,) = env.jobs()
    assert (job.status, job.attempts) == ("queued", 1)
    assert job.last_error == f"WebhookFailed: extension {hooked.extension_id}: ConnectError"


def test_a_local_endpoint_is_not_called_unless_its_network_is_allowed(
    env: Env, receiver: Receiver, hooked: Hooked
) -> None:
    env.use(webhook_allowed_networks="")  # the default: public addresses only
    fire(env, hooked)
    with structlog.testing.capture_logs() as logs:
        env.worker.drain()
    assert receiver.hits == []
    assert env.jobs() == [], "refused for good, not retried"
    (gave_up,) = [e for e in logs if e["event"] == "webhook.gave_up"]
    assert "127.0.0.1 is not public" in gave_up["reason"]
    assert "sig=abc" not in json.dumps(logs, default=str)


def test_a_host_name_is_checked_where_it_resolves_and_keeps_its_host_header(
    env: Env, receiver: Receiver, hooked: Hooked
) -> None:
    port = receiver.server.server_address[1]
    path = f"{extensions_path(hooked.catalog_id)}/{hooked.extension_id}"
    named = {"endpointConfiguration": {"url": f"http://localhost:{port}/hooks/remit"}}
    assert env.tenant.call("mamta", "PATCH", path, json=named).status_code == 200
    env.use(webhook_allowed_networks="")
    fire(env, hooked)
    env.worker.drain()
    assert receiver.hits == [], "localhost resolves to loopback: refused when it is called"
    env.use(webhook_allowed_networks="127.0.0.0/8, ::1/128")
    fire(env, hooked)
    env.worker.drain()
    (hit,) = receiver.hits
    assert hit.headers["Host"] == f"localhost:{port}"
    assert signed(hit, env.clock.now)


def test_egress_rules() -> None:
    networks = egress.parse_networks("10.20.0.0/16, fd00::/8")
    public, metadata = (
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("169.254.169.254"),
    )
    assert egress.allowed(public, ())
    assert not egress.allowed(metadata, networks)
    assert egress.allowed(ipaddress.ip_address("10.20.3.4"), networks)
    assert not egress.allowed(ipaddress.ip_address("10.21.3.4"), networks)
    assert not egress.allowed(ipaddress.ip_address("::ffff:127.0.0.1"), ())
    assert not egress.allowed(ipaddress.ip_address("224.0.0.1"), ())
    assert not egress.allowed(ipaddress.ip_address("100.64.0.1"), ())  # carrier-grade NAT
    assert egress.allowed(ipaddress.ip_address("fd12::1"), networks)
    target = egress.resolve("https://93.184.216.34:8443/a?b=c", ())
    assert (target.url, target.host_header, target.server_name) == (
        "https://93.184.216.34:8443/a?b=c",
        "93.184.216.34:8443",
        None,
    )
    v6 = egress.resolve("https://[2606:4700::1111]:8443/hook", ())
    assert (v6.url, v6.host_header) == (
        "https://[2606:4700::1111]:8443/hook",
        "[2606:4700::1111]:8443",
    )
    with pytest.raises(egress.Refused, match="::1 is not public"):
        egress.resolve("http://[::1]/hook", ())
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not a network"):
        egress.parse_networks("10.0.0.0/33")
    with pytest.raises(ValidationError):
        Settings(webhook_allowed_networks="intranet")


def test_a_deleted_extension_is_not_called(env: Env, receiver: Receiver, hooked: Hooked) -> None:
    fire(env, hooked)
    path = f"{extensions_path(hooked.catalog_id)}/{hooked.extension_id}"
    assert env.tenant.call("mamta", "DELETE", path).status_code == 204
    env.worker.drain()
    assert receiver.hits == []
    assert env.jobs() == []


# ---------------------------------------------------------------- extension CRUD


def test_extension_crud_and_the_secret_stays_hidden(env: Env, receiver: Receiver) -> None:
    cat = env.tenant.create_catalog("mamta", "Marketing")
    path = extensions_path(cat)
    seen: list[str] = []

    def call(alias: str, method: str, url: str, body: Any = None, status: int = 200) -> Any:
        r = env.tenant.call(alias, method, url, json=body)
        assert r.status_code == status, r.text
        seen.append(r.text)
        return r.json() if r.content else None

    ticketing = {
        "@odata.type": "#microsoft.graph.accessPackageAssignmentRequestWorkflowExtension",
        "displayName": "Ticketing",
        "description": "Opens a ticket",
        "endpointConfiguration": {"logicAppWorkflowName": "wf", "url": receiver.url},
        "secret": HOOK_SECRET,
    }
    made = call("mamta", "POST", path, ticketing, 201)
    ext_id = made["id"]
    assert made["@odata.type"] == ticketing["@odata.type"]
    assert made["endpointConfiguration"] == {
        "@odata.type": "#microsoft.graph.logicAppTriggerEndpointConfiguration",
        "url": receiver.url,
    }
    assert made["createdDateTime"] == made["lastModifiedDateTime"]
    assert "secret" not in made

    # Without a secret, remit makes one and shows it this once.
    other = {"displayName": "Other", "endpointConfiguration": {"url": receiver.url}}
    generated = call("mamta", "POST", path, other, 201)
    key = generated.pop("secret")
    assert len(key) >= 32
    with env.db.write() as s:
        stored = s.get(CustomExtension, generated["id"])
        assert stored is not None
        assert stored.secret != key  # sealed at rest (decision 0019)
        assert sealed.secret_of(stored) == key

    listed = call("mamta", "GET", path)["value"]
    assert sorted(e["displayName"] for e in listed) == ["Other", "Ticketing"]
    assert all("secret" not in e for e in listed)
    found = call("mamta", "GET", f"{path}?$filter=displayName eq 'Ticketing'")["value"]
    assert [e["id"] for e in found] == [ext_id]
    assert call("mamta", "GET", f"{path}/{ext_id}")["description"] == "Opens a ticket"

    env.clock.advance(seconds=5)
    rotated = HOOK_SECRET + "-rotated"
    patched = call("mamta", "PATCH", f"{path}/{ext_id}", {"displayName": "Tix", "secret": rotated})
    assert patched["displayName"] == "Tix"
    assert "secret" not in patched
    assert patched["lastModifiedDateTime"] > patched["createdDateTime"]
    with env.db.write() as s:
        stored = s.get(CustomExtension, ext_id)
        assert stored is not None
        assert sealed.secret_of(stored) == rotated
        (update_event,) = s.execute(
            select(AuditEvent).where(AuditEvent.activity == "Update custom extension")
        ).scalars()
        assert update_event.details["after"]["secretChanged"] is True
        assert update_event.details["after"]["displayName"] == "Tix"

    call("mamta", "DELETE", f"{path}/{generated['id']}", status=204)
    call("mamta", "GET", f"{path}/{generated['id']}", status=404)
    audit = call("admin", "GET", "/v1.0/auditLogs/directoryAudits")["value"]
    activities = [e["activityDisplayName"] for e in audit]
    for activity, count in (("Create", 2), ("Update", 1), ("Delete", 1)):
        assert activities.count(f"{activity} custom extension") == count

    stored = env.stored()
    assert all(secret not in stored for secret in (HOOK_SECRET, rotated, key))
    assert all(secret not in text for secret in (HOOK_SECRET, rotated) for text in seen)
    assert sum(key in text for text in seen) == 1  # in the response that created it, only


def test_who_may_read_and_change_extensions(env: Env, receiver: Receiver) -> None:
    t = env.tenant
    cat = t.create_catalog("mamta", "Marketing")
    path = extensions_path(cat)
    assert t.assign_role("mamta", "lena", CATALOG_READER.id, cat).status_code == 201
    body = {"displayName": "Hook", "endpointConfiguration": {"url": receiver.url}}
    one = f"{path}/{t.post('mamta', path, body).json()['id']}"

    # A catalog reader reads, and may not change (the catalog is visible to her: 403).
    assert t.get("lena", path).status_code == 200
    assert t.get("lena", one).status_code == 200
    assert t.post("lena", path, body).status_code == 403
    assert t.call("lena", "PATCH", one, json={"displayName": "x"}).status_code == 403
    assert t.call("lena", "DELETE", one).status_code == 403
    # No role on the catalog: none of it exists for them.
    for alias in ("mark", "nobody"):
        assert t.get(alias, path).status_code == 404
        assert t.get(alias, one).status_code == 404
        assert t.post(alias, path, body).status_code == 404
        assert t.call(alias, "PATCH", one, json={"displayName": "x"}).status_code == 404
        assert t.call(alias, "DELETE", one).status_code == 404
    # Administrators manage every catalog's extensions.
    assert t.call("hana", "PATCH", one, json={"description": "d"}).status_code == 200
    # Looked up through another catalog, an extension is not found.
    other = t.create_catalog("mark", "Finance")
    assert t.get("admin", one.replace(cat, other)).status_code == 404
    assert t.get("admin", one).status_code == 200
    assert t.client.get(path).status_code == 401


URL = "endpointConfiguration.url"


def url(value: str, **more: Any) -> dict[str, Any]:
    return {"displayName": "x", "endpointConfiguration": {"url": value}, **more}


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"displayName": "x"}, URL),
        ({"displayName": "x", "endpointConfiguration": {"logicAppWorkflowName": "wf"}}, URL),
        (url("ftp://example.com/x"), URL),
        (url("/relative/path"), URL),
        (url("https://u:p@example.com/"), URL),
        (url("https://example.com:99999/"), URL),
        (url("https://exa mple.com/"), URL),
        # Not public and not allowed (the tests allow 127.0.0.0/8 only): refused at once.
        (url("http://169.254.169.254/latest/meta-data/"), URL),
        (url("http://10.1.2.3/hook"), URL),
        (url("https://[::1]/hook"), URL),
        (url("http://[::ffff:192.168.0.1]/hook"), URL),
        # The same private addresses behind NAT64, 6to4 and the IPv4-compatible form.
        (url("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/"), URL),
        (url("http://[64:ff9b:1::a01:203]/hook"), URL),
        (url("http://[2002:a01:203::1]/hook"), URL),
        (url("http://[::192.168.0.1]/hook"), URL),
        ({**url("https://example.com/"), "displayName": " "}, "displayName"),
        (url("https://example.com/", secret="short-S3CR3T"), "secret"),
        (url("https://example.com/", secret="with space S3CR3T-long"), "secret"),
    ],
)  # fmt: skip
def test_invalid_extensions_are_refused(env: Env, body: dict[str, Any], target: str) -> None:
    cat = env.tenant.create_catalog("mamta", "Marketing")
    r = env.tenant.post("mamta", extensions_path(cat), body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["target"] == target
    assert "S3CR3T" not in r.text
    with env.db.write() as s:
        assert s.execute(select(CustomExtension)).first() is None


def test_an_extension_in_use_by_a_policy_cannot_be_deleted(env: Env, receiver: Receiver) -> None:
    t = env.tenant
    cat = t.create_catalog("mamta", "Marketing")
    body = {"displayName": "Hook", "endpointConfiguration": {"url": receiver.url}}
    ext = t.post("mamta", extensions_path(cat), body).json()["id"]
    package = t.create_package("mamta", cat, "Campaign tools")
    assert package.status_code == 201, package.text
    with env.db.write() as s:
        policy_row = AssignmentPolicy(
            access_package_id=package.json()["id"],
            catalog_id=cat,
            display_name="Employees",
            allowed_target_scope="allMemberUsers",
            expiration={},
            requestor_settings={},
            request_approval_settings={},
            custom_extension_stage_settings=stage_settings(ext, "assignmentRequestGranted"),
            created_at=env.clock(),
            modified_at=env.clock(),
        )
        s.add(policy_row)
        s.flush()
        policy_id = policy_row.id
    one = f"{extensions_path(cat)}/{ext}"
    r = t.call("mamta", "DELETE", one)
    assert r.status_code == 409, r.text
    assert policy_id in r.json()["error"]["message"]
    with env.db.write() as s:
        s.execute(
            update(AssignmentPolicy)
            .where(AssignmentPolicy.id == policy_id)
            .values(custom_extension_stage_settings=[])
        )
    assert t.call("mamta", "DELETE", one).status_code == 204


def test_the_lifecycle_phrases_read_well() -> None:
    """The lifecycle sends "no end date" where there is none; lines stay lines."""
    data = {**FULL, "end": "no end date"}
    text = render.render("approval_needed", data).text
    assert "Access:        from 2 Mar 2026 14:05 UTC, with no end date\n" in text
    assert "Submitted:     1 Mar 2026 09:00 UTC\n" in text
    delivered = render.render("access_delivered", {"package": "P", "end": "no end date"}).text
    assert "Your access has no end date." in delivered
    assert "ends on" not in delivered
