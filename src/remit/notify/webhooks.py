"""Custom extensions at work: signed JSON POSTs to a catalog's webhooks at lifecycle stages.

``fire`` runs in the lifecycle's transaction and queues one ``notify.webhook`` job per extension
that a policy attaches to the stage. The job holds the extension id, the stage, a delivery id and
the body, never the secret: the handler reads the extension when it runs, opens its sealed
secret (``notify.sealed``) and signs then.

What a receiver gets::

    POST <endpoint url>
    Content-Type: application/json
    X-Remit-Event: assignmentRequestCreated
    X-Remit-Delivery: <uuid, the same on every retry of one delivery>
    X-Remit-Timestamp: <unix seconds of this attempt>
    X-Remit-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

    {"id": <delivery id>, "type": "microsoft.graph.accessPackageCustomExtensionStage.<stage>",
     "source": "/IdentityGovernance/EntitlementManagement/AccessPackageCatalog/<catalog id>",
     "time": ..., "data": {<the lifecycle's payload>, "stage": ..., "customExtensionId": ...,
     "customExtensionStageInstanceId": <delivery id>}}

A 2xx answer ends the delivery. 408, 429, 5xx, a timeout or no connection raise so the runner
retries with backoff (``Retry-After`` is honoured, capped at an hour); any other answer
(redirects are not followed) is logged and given up. A delivery older than a day is given up.
So is one whose endpoint resolves to an address that is not public and not allowed by the
operator (``notify.egress``): a catalog owner cannot make the server call its own network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import select

from remit import __version__
from remit.context import Ctx
from remit.jobs.queue import enqueue
from remit.jobs.registry import RetryLater
from remit.models.notify import CustomExtension
from remit.models.policy_settings import ExtensionStageSetting
from remit.notify import config, egress, sealed

log = structlog.get_logger("remit.notify")

WEBHOOK_JOB = "notify.webhook"
WEBHOOK_ATTEMPTS = 8
STAGES = (
    "assignmentRequestCreated",
    "assignmentRequestApproved",
    "assignmentRequestGranted",
    "assignmentRequestRemoved",
    "assignmentFourteenDaysBeforeExpiration",
    "assignmentOneDayBeforeExpiration",
)
MAX_AGE = timedelta(days=1)
MAX_RETRY_AFTER = timedelta(hours=1)
RETRYABLE = frozenset({408, 429})
SOURCE = "/IdentityGovernance/EntitlementManagement/AccessPackageCatalog"


class WebhookFailed(Exception):
    """A delivery that may succeed later; the runner retries it with backoff."""


def _extension_ids(stage_settings: Iterable[ExtensionStageSetting], stage: str) -> list[str]:
    wanted: list[str] = []
    for entry in stage_settings:
        ext_id = entry.custom_extension.id
        if entry.stage.lower() == stage.lower() and ext_id and ext_id not in wanted:
            wanted.append(ext_id)
    return wanted


def fire(
    ctx: Ctx,
    *,
    catalog_id: str,
    stage_settings: Iterable[ExtensionStageSetting],
    stage: str,
    payload: dict[str, Any],
) -> None:
    """Queue a delivery to each of the catalog's extensions that ``stage_settings`` attach to
    ``stage`` (a policy's ``settings_of(policy).extensions``), in the caller's transaction."""
    if stage not in STAGES:
        raise ValueError(f"unknown custom extension stage {stage!r}")
    wanted = _extension_ids(stage_settings, stage)
    if not wanted:
        return
    found = set(
        ctx.session.scalars(
            select(CustomExtension.id).where(
                CustomExtension.id.in_(wanted), CustomExtension.catalog_id == catalog_id
            )
        )
    )
    for ext_id in wanted:
        if ext_id not in found:
            # A policy may only name its own catalog's extensions; one that does not is skipped.
            log.warning("webhook.unknown_extension", extension_id=ext_id, catalog_id=catalog_id)
            continue
        delivery = str(uuid.uuid4())
        body = {
            "id": delivery,
            "type": f"microsoft.graph.accessPackageCustomExtensionStage.{stage}",
            "source": f"{SOURCE}/{catalog_id}",
            "time": ctx.now.isoformat().replace("+00:00", "Z"),
            "data": {
                **payload,
                "stage": stage,
                "customExtensionId": ext_id,
                "customExtensionStageInstanceId": delivery,
            },
        }
        enqueue(
            ctx.session,
            WEBHOOK_JOB,
            {
                "extension_id": ext_id,
                "stage": stage,
                "delivery_id": delivery,
                "queued_at": ctx.now.isoformat(),
                "body": body,
            },
            now=ctx.now,
            max_attempts=WEBHOOK_ATTEMPTS,
        )


def encode(body: dict[str, Any]) -> bytes:
    """The bytes sent and signed: the same for every attempt of one delivery."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes | str,
    header: str,
    *,
    now: datetime | None = None,
    tolerance: timedelta = timedelta(minutes=5),
) -> bool:
    """For receivers: does ``X-Remit-Signature`` match? With ``now``, also refuse a timestamp
    further than ``tolerance`` from it (a replayed delivery)."""
    raw = body.encode() if isinstance(body, str) else body
    if not hmac.compare_digest(sign(secret, timestamp, raw), header.strip()):
        return False
    if now is None:
        return True
    try:
        sent = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        return False
    return abs(now - sent) <= tolerance


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` (seconds or an HTTP date) as a delay from 1 second to an hour."""
    if not value:
        return None
    value = value.strip()
    delay: timedelta
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - now
    return min(max(delay, timedelta(seconds=1)), MAX_RETRY_AFTER)


def deliver(ctx: Ctx, payload: dict[str, Any]) -> None:
    """The ``notify.webhook`` job: one signed POST; raises to be retried."""
    ext_id = str(payload["extension_id"])
    stage = str(payload["stage"])
    delivery = str(payload["delivery_id"])
    fields = {"extension_id": ext_id, "stage": stage, "delivery_id": delivery}
    ext = ctx.session.get(CustomExtension, ext_id)
    if ext is None:
        log.info("webhook.dropped", reason="extension deleted", **fields)
        return
    deadline = datetime.fromisoformat(str(payload["queued_at"])) + MAX_AGE
    if ctx.now > deadline:
        log.warning("webhook.gave_up", reason="older than a day", **fields)
        return
    try:
        secret = sealed.secret_of(ext)
    except sealed.Unreadable:
        # Retried: this process's secrets key may be fixed to the one the others share.
        raise WebhookFailed(
            f"extension {ext_id}: its secret does not open with this process's secrets key "
            "(every remit process must share data_dir/secrets.key)"
        ) from None
    body = encode(payload["body"])
    timestamp = str(int(ctx.now.timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"remit/{__version__}",
        "X-Remit-Event": stage,
        "X-Remit-Delivery": delivery,
        "X-Remit-Timestamp": timestamp,
        "X-Remit-Signature": sign(secret, timestamp, body),
    }
    settings = config.current().settings
    endpoint_url = ext.endpoint_url
    # An ``io`` job: its reads are done, and the resolution and the POST hold no transaction
    # open, not even a read (as an email's delivery: SQLite's checkpoint waits for the oldest
    # reader, PostgreSQL's vacuum for the oldest snapshot, while the receiver takes its time).
    ctx.session.rollback()
    try:
        target = egress.resolve(
            endpoint_url, egress.parse_networks(settings.webhook_allowed_networks)
        )
    except egress.Refused as refused:
        log.warning("webhook.gave_up", reason=str(refused), **fields)
        return
    except (OSError, ValueError, UnicodeError) as exc:
        raise WebhookFailed(f"extension {ext_id}: the endpoint's host did not resolve") from exc
    headers["Host"] = target.host_header
    extensions = {"sni_hostname": target.server_name} if target.server_name else None
    try:
        with (
            httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False) as c,
            # Streamed and never read: only the status and the headers matter, whatever the
            # size of the body the receiver sends back.
            c.stream(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            status = response.status_code
            retry_header = response.headers.get("Retry-After")
    except httpx.InvalidURL:
        log.warning("webhook.gave_up", reason="invalid endpoint url", **fields)
        return
    except httpx.HTTPError as exc:
        # Neither the URL (a Logic App URL carries its key) nor the error text: its type only.
        raise WebhookFailed(f"extension {ext_id}: {type(exc).__name__}") from None
    if 200 <= status < 300:
        log.info("webhook.delivered", status=status, **fields)
        return
    if status in RETRYABLE or status >= 500:
        delay = retry_after(retry_header, ctx.now)
        if delay is not None:
            if ctx.now + delay > deadline:
                log.warning("webhook.gave_up", reason="older than a day", status=status, **fields)
                return
            raise RetryLater(delay, f"extension {ext_id} answered HTTP {status} with Retry-After")
        raise WebhookFailed(f"extension {ext_id} answered HTTP {status}")
    log.warning("webhook.gave_up", reason="refused", status=status, **fields)
