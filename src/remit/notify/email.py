"""Email notifications: queued in the caller's transaction, rendered and sent by a job.

``send_later`` puts one ``notify.email`` job per recipient on the queue: the template name, the
user id and the template data, never an address or a secret. The job (``notify.jobs``) looks the
user up when it runs, so a changed address is used and a disabled or deleted user is skipped.

Transport: SMTP (``smtp_security`` none / starttls / tls, optional login) when ``smtp_host`` is
set, one connection per worker batch (``reuse_connections``), else a ``.eml`` file in
``data_dir/outbox/`` (the embedded default needs no mail server).
Failures: a permanent refusal of the recipient or of the message (5xx) is logged and ends the
job, since sending the same message again would be refused again; everything else (no
connection, a timeout, 4xx, a refused login or sender, which are configuration problems that an
operator can fix) raises, so the runner retries with backoff until the job's attempts run out.
"""

from __future__ import annotations

import os
import smtplib
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any, NamedTuple

import structlog
from sqlalchemy import bindparam, select

from remit import datadir
from remit.context import Ctx
from remit.db import HotSelect
from remit.jobs.queue import enqueue
from remit.models.directory import User
from remit.notify import config, render

log = structlog.get_logger("remit.notify")

EMAIL_JOB = "notify.email"
EMAIL_ATTEMPTS = 8


def send_later(ctx: Ctx, *, template: str, to: Iterable[str], data: dict[str, Any]) -> None:
    """Queue ``template`` for each user id in ``to``, in the caller's transaction."""
    if template not in render.TEMPLATES:
        raise ValueError(f"no email template named {template!r}")
    for user_id in dict.fromkeys(to):  # each recipient once, in the order given
        enqueue(
            ctx.session,
            EMAIL_JOB,
            {
                "template": template,
                "user_id": user_id,
                "data": data,
                # Stable across retries: the Message-ID and the outbox file name.
                "message_id": str(uuid.uuid4()),
                "queued_at": ctx.now.isoformat(),
            },
            now=ctx.now,
            max_attempts=EMAIL_ATTEMPTS,
        )


def deliver(ctx: Ctx, payload: dict[str, Any]) -> None:
    """The ``notify.email`` job: render for the user as they are now, and send. An ``io`` job
    (``jobs.runner``): its session only reads, and ends its read before the file or network."""
    user_id = str(payload["user_id"])
    template = str(payload["template"])
    found = _PERSON.rows(ctx.session.connection(), {"user_id": user_id})
    # An ``io`` job: the one read is done, and what follows (the outbox file, SMTP) holds no
    # transaction open, not even a read (SQLite's checkpoint waits for the oldest reader, and
    # PostgreSQL's vacuum for the oldest snapshot, while a mail server takes its time).
    ctx.session.rollback()
    user = Person(*found[0]) if found else None
    reason = _skip_reason(user)
    if user is None or reason is not None:
        log.info("email.skipped", user_id=user_id, template=template, reason=reason)
        return
    cfg = config.current()
    rendered = render.render(
        template, payload.get("data") or {}, portal_base_url=cfg.settings.portal_base_url
    )
    recipient = _recipient(user)
    if recipient is None:
        log.warning("email.skipped", user_id=user_id, template=template, reason="bad address")
        return
    message = build_message(
        sender=cfg.settings.smtp_sender,
        recipient=recipient,
        rendered=rendered,
        message_id=str(payload["message_id"]),
        ctx=ctx,
        template=template,
    )
    if not cfg.settings.smtp_host:
        path = write_outbox(cfg.settings.data_dir, message, str(payload["queued_at"]))
        log.info("email.outbox", user_id=user_id, template=template, path=str(path))
        return
    send_smtp(cfg, message, user_id=user_id, template=template)


class Person(NamedTuple):
    """What an email needs of its recipient, read when the job runs."""

    account_enabled: bool
    mail: str | None
    user_principal_name: str | None
    display_name: str | None


_PERSON = HotSelect(
    select(User.account_enabled, User.mail, User.user_principal_name, User.display_name).where(
        User.id == bindparam("user_id")
    )
)


def _skip_reason(user: Person | None) -> str | None:
    if user is None:
        return "user deleted"
    if not user.account_enabled:
        return "user disabled"
    if not _addresses(user):
        return "no address"
    return None


def _addresses(user: Person) -> list[str]:
    """The user's mail, else their UPN, which is mail-shaped, except a guest's ``#EXT#`` one."""
    found = []
    for candidate in (user.mail, user.user_principal_name):
        addr = (candidate or "").strip()
        if addr and "#ext#" not in addr.lower():
            found.append(addr)
    return found


@dataclass(frozen=True)
class Recipient:
    display_name: str
    addr_spec: str  # ASCII: the domain in IDNA form


def _recipient(user: Person) -> Recipient | None:
    for addr in _addresses(user):
        ascii_addr = _ascii_address(addr)
        if ascii_addr is not None:
            return Recipient(_one_line(user.display_name or ""), ascii_addr)
    return None


def _ascii_address(addr: str) -> str | None:
    """``local@domain`` with the domain in IDNA form; None for what is no address, or one
    whose local part needs SMTPUTF8 (which remit does not speak)."""
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or not local.isascii():
        return None
    if any(c.isspace() or c in '<>(),;:"[]\\' for c in local) or local.startswith("."):
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return f"{local}@{domain}"


def _one_line(value: str) -> str:
    """No line breaks or other control characters in a header (no header injection)."""
    return " ".join("".join(" " if ord(c) < 32 or c == "\x7f" else c for c in value).split())


def _header(value: str) -> str | Header:
    """One line; RFC 2047 encoded words when it is not ASCII (folded by the generator)."""
    value = _one_line(value)
    return value if value.isascii() else Header(value, "utf-8")


# Bodies in quoted-printable: readable in the raw message, safe for any line length.
_BODY = Charset("utf-8")
_BODY.body_encoding = QP


def build_message(
    *,
    sender: str,
    recipient: Recipient,
    rendered: render.Rendered,
    message_id: str,
    ctx: Ctx,
    template: str,
) -> Message:
    """A multipart/alternative message (plain text, then HTML). Built with the email package's
    classic MIME classes: the same message as ``EmailMessage`` gives, at a third of its cost
    (header objects are not parsed back as they are set)."""
    # A boundary of our own: "==" never occurs in a quoted-printable body, so it needs no
    # check against the parts (the generator would compile a regular expression for each
    # message to make one up).
    message = MIMEMultipart("alternative", boundary=f"==remit-{message_id}==")
    # A Header object is what the classic API folds as encoded words (typeshed says str only).
    message["Subject"] = _header(rendered.subject)  # type: ignore[assignment]
    name, addr = parseaddr(sender)
    message["From"] = formataddr((_one_line(name), addr), charset="utf-8")
    message["To"] = formataddr((recipient.display_name, recipient.addr_spec), charset="utf-8")
    message["Date"] = format_datetime(ctx.now)
    domain = addr.rpartition("@")[2] or "remit.invalid"
    message["Message-ID"] = f"<{message_id}@{domain}>"
    # RFC 3834: an automatic message, so auto-responders stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Remit-Template"] = template
    message.attach(_text_part(rendered.text, "plain"))
    message.attach(_text_part(rendered.html, "html"))
    return message


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype)
    part.set_payload(body, _BODY)  # charset=utf-8, quoted-printable
    return part


def write_outbox(data_dir: Path, message: Message, queued_at: str) -> Path:
    """``data_dir/outbox/<queued time>-<message id>.eml``: the same name on a retry."""
    outbox = datadir.private_dir(datadir.private_dir(data_dir) / datadir.OUTBOX)
    stamp = "".join(c for c in queued_at[:19] if c.isdigit())
    token = str(message["Message-ID"]).strip("<>").partition("@")[0]
    path = outbox / f"{stamp}-{token}.eml"
    partial = path.with_suffix(".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, datadir.FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(message.as_bytes())
    os.replace(partial, path)
    return path


_Server = tuple[str, int, str, str]  # host, port, security, user: what a connection is to


class _Kept:
    """The SMTP connection kept open across one worker batch's emails (``reuse_connections``)."""

    def __init__(self) -> None:
        self.server: _Server | None = None
        self.smtp: smtplib.SMTP | None = None

    def take(self, server: _Server) -> smtplib.SMTP | None:
        """The open connection to ``server`` if it still answers; the caller owns it now."""
        smtp, self.smtp = self.smtp, None
        if smtp is None:
            return None
        if self.server == server and _answers(smtp):
            return smtp
        _close(smtp)
        return None

    def keep(self, server: _Server, smtp: smtplib.SMTP) -> None:
        self.server, self.smtp = server, smtp


_KEPT: ContextVar[_Kept | None] = ContextVar("remit_smtp_kept", default=None)


@contextmanager
def reuse_connections() -> Iterator[None]:
    """Send the emails of this block over one SMTP connection (opened by the first, closed at
    the end): the worker wraps each batch of ``notify.email`` jobs in it. One connection, TLS
    handshake and login per batch instead of per message, as mail servers expect of a sender.
    Before each later message a NOOP checks that the server still takes it; if not, a fresh
    connection is opened. Each message is sent once per attempt, as without reuse."""
    kept = _Kept()
    token = _KEPT.set(kept)
    try:
        yield
    finally:
        _KEPT.reset(token)
        if kept.smtp is not None:
            _close(kept.smtp)


def send_smtp(cfg: config.NotifyConfig, message: Message, *, user_id: str, template: str) -> None:
    settings = cfg.settings
    security = settings.smtp_security.strip().lower()
    if security not in ("none", "starttls", "tls"):
        raise ValueError("REMIT_SMTP_SECURITY must be none, starttls or tls")
    server = (settings.smtp_host, settings.smtp_port, security, settings.smtp_username)
    kept = _KEPT.get()
    smtp = kept.take(server) if kept is not None else None
    try:
        if smtp is None:
            smtp = _open(cfg, security)
        smtp.send_message(message)
    except BaseException as exc:
        _close(smtp)
        codes = _permanent_refusal(exc)
        if codes is None:
            raise
        log.warning("email.refused", user_id=user_id, template=template, codes=codes)
        return
    if kept is not None:
        kept.keep(server, smtp)
    else:
        _close(smtp)
    log.info("email.sent", user_id=user_id, template=template, message_id=message["Message-ID"])


def _permanent_refusal(exc: BaseException) -> list[int] | None:
    """The 5xx codes of a refusal that sending again would meet again; None for the rest."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return codes if codes and all(500 <= code < 600 for code in codes) else None
    if isinstance(exc, smtplib.SMTPDataError) and 500 <= exc.smtp_code < 600:
        return [exc.smtp_code]
    return None


def _answers(smtp: smtplib.SMTP) -> bool:
    """Whether a kept connection still takes commands (NOOP). Servers end idle or used-up
    connections, mostly with a 421 line before they close, which smtplib would otherwise read
    as the answer to the next message's MAIL FROM and fail that message."""
    try:
        code, _ = smtp.noop()
    except (smtplib.SMTPException, OSError):
        return False
    return code == 250


def _open(cfg: config.NotifyConfig, security: str) -> smtplib.SMTP:
    """A connection to the configured server, secured and logged in as the settings say."""
    settings = cfg.settings
    timeout = settings.smtp_timeout_seconds
    smtp: smtplib.SMTP
    if security == "tls":
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=timeout, context=cfg.ssl_context()
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    try:
        if security == "starttls":
            smtp.starttls(context=cfg.ssl_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
    except BaseException:
        _close(smtp)
        raise
    return smtp


def _close(smtp: smtplib.SMTP | None) -> None:
    """QUIT and close; a connection that is already gone is just closed."""
    if smtp is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
