"""Custom extension use cases (spec §5.10): a catalog's webhooks, managed by its owners.

Reading needs ``catalog:read`` on the catalog (``queries``), changing ``catalog:update``; a
catalog the actor may not see is NotFound. The secret (the HMAC key of ``X-Remit-Signature``) is
write-only: it is accepted on create and update, generated when a create omits it (and then
handed back once, by ``create_extension``'s return value), and never rendered, logged or
audited. The row holds it sealed (``notify.sealed``).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from remit import validation
from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.catalogs.queries import get_catalog
from remit.context import Ctx
from remit.db import new_id
from remit.errors import Conflict, Invalid
from remit.models.notify import CustomExtension
from remit.models.policies import AssignmentPolicy
from remit.models.policy_settings import ExtensionStageSetting
from remit.models.vocabulary import Activity
from remit.notify import config, egress, queries, sealed

MAX_PER_TENANT = 500  # Entra's documented limit (spec §5.10)
MIN_SECRET, MAX_SECRET = 16, 256
TARGET = "AccessPackageCustomWorkflowExtension"


def endpoint_url(value: Any) -> str:
    """An absolute http(s) URL with a host, and no user name or password in it.

    One line: a control character is refused before anything else, as ``urlsplit`` would
    silently drop tab, LF and CR (and keep NUL) and the surrounding space is stripped.
    """
    target = "endpointConfiguration.url"
    if isinstance(value, str):
        validation.no_controls(value, target)
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > 2048 or any(ord(c) < 33 for c in text):
        raise Invalid("endpointConfiguration.url must be an absolute http(s) URL", target=target)
    try:
        parts = urlsplit(text)
        _port = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError:
        raise Invalid(
            "endpointConfiguration.url must be an absolute http(s) URL", target=target
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Invalid("endpointConfiguration.url must be an absolute http(s) URL", target=target)
    if parts.username is not None or parts.password is not None:
        raise Invalid("endpointConfiguration.url must not carry credentials", target=target)
    literal = egress.literal_address(parts.hostname)
    networks = egress.parse_networks(config.current().settings.webhook_allowed_networks)
    if literal is not None and not egress.allowed(literal, networks):
        # A host name is checked when each call is made (it may resolve differently by then).
        raise Invalid(
            "endpointConfiguration.url must point at a public address (an operator may allow "
            "more networks with REMIT_WEBHOOK_ALLOWED_NETWORKS)",
            target=target,
        )
    return text


def _secret(value: Any) -> str:
    # The value itself never goes into a message.
    if not isinstance(value, str) or not MIN_SECRET <= len(value) <= MAX_SECRET:
        raise Invalid(
            f"secret must be a string of {MIN_SECRET} to {MAX_SECRET} characters", target="secret"
        )
    if any(ord(c) < 33 or ord(c) > 126 for c in value):
        raise Invalid("secret must be printable ASCII without spaces", target="secret")
    return value


def _url_of(endpoint: Any) -> str:
    if not isinstance(endpoint, dict) or endpoint.get("url") is None:
        raise Invalid(
            "endpointConfiguration.url is required: remit calls a URL (a Logic App's workflow "
            "name alone cannot be resolved)",
            target="endpointConfiguration.url",
        )
    return endpoint_url(endpoint["url"])


def create_extension(
    ctx: Ctx,
    *,
    catalog_id: str,
    display_name: str,
    description: str | None = None,
    endpoint_configuration: dict[str, Any] | None = None,
    secret: str | None = None,
) -> tuple[CustomExtension, str | None]:
    """The new extension, and its secret if remit generated it (shown to the caller once)."""
    catalog = get_catalog(ctx, catalog_id)
    authorize(ctx.actor, Task.CATALOG_UPDATE, catalog.id)
    name = validation.display_name(display_name)
    url = _url_of(endpoint_configuration)
    generated = secrets.token_urlsafe(32) if secret is None else None
    key = generated or _secret(secret)
    count = ctx.session.execute(select(func.count()).select_from(CustomExtension)).scalar_one()
    if count >= MAX_PER_TENANT:
        raise Conflict(f"a tenant holds at most {MAX_PER_TENANT} custom extensions")
    ext_id = new_id()  # before the row: the sealed secret is bound to it
    ext = CustomExtension(
        id=ext_id,
        catalog_id=catalog.id,
        display_name=name,
        description=validation.optional_text(description, "description"),
        endpoint_url=url,
        secret=sealed.seal(ext_id, key),
        created_at=ctx.now,
        modified_at=ctx.now,
    )
    ctx.session.add(ext)
    ctx.session.flush()
    _audit(ctx, Activity.CREATE_EXTENSION, "Add", ext, after=snapshot(ext))
    return ext, generated


EDITABLE = {"displayName", "description", "endpointConfiguration", "secret"}


def update_extension(
    ctx: Ctx, catalog_id: str, extension_id: str, changes: dict[str, Any]
) -> CustomExtension:
    ext = queries.extension(ctx, catalog_id, extension_id)
    authorize(ctx.actor, Task.CATALOG_UPDATE, ext.catalog_id)
    validation.only_editable(changes, EDITABLE)
    before = snapshot(ext)
    if "displayName" in changes:
        ext.display_name = validation.display_name(changes["displayName"])
    if "description" in changes:
        ext.description = validation.optional_text(changes["description"], "description")
    if "endpointConfiguration" in changes:
        ext.endpoint_url = _url_of(changes["endpointConfiguration"])
    rotated = False
    if "secret" in changes:
        key = _secret(changes["secret"])
        try:
            rotated = not secrets.compare_digest(key.encode(), sealed.secret_of(ext).encode())
        except sealed.Unreadable:
            rotated = True  # sealed with another key: the new one replaces it either way
        ext.secret = sealed.seal(ext.id, key)
    after = snapshot(ext)
    if after != before or rotated:
        ext.modified_at = ctx.now
        # Only the fact of a new secret is recorded, never its value.
        changed = {**after, "secretChanged": True} if rotated else after
        _audit(ctx, Activity.UPDATE_EXTENSION, "Update", ext, before=before, after=changed)
    return ext


def delete_extension(ctx: Ctx, catalog_id: str, extension_id: str) -> None:
    ext = queries.extension(ctx, catalog_id, extension_id)
    authorize(ctx.actor, Task.CATALOG_UPDATE, ext.catalog_id)
    users = [
        policy_id
        for policy_id, stage_settings in ctx.session.execute(
            select(AssignmentPolicy.id, AssignmentPolicy.custom_extension_stage_settings).where(
                AssignmentPolicy.catalog_id == ext.catalog_id
            )
        )
        if _references(stage_settings, ext.id)
    ]
    if users:
        raise Conflict(
            f"the custom extension is used by {len(users)} assignment "
            f"polic{'y' if len(users) == 1 else 'ies'} ({', '.join(sorted(users)[:5])}); "
            "remove it from their customExtensionStageSettings first"
        )
    ctx.session.delete(ext)
    _audit(ctx, Activity.DELETE_EXTENSION, "Delete", ext, before=snapshot(ext))


def _references(stage_settings: list[Any], extension_id: str) -> bool:
    return any(
        ExtensionStageSetting.model_validate(entry).custom_extension.id == extension_id
        for entry in stage_settings or ()
    )


def _audit(
    ctx: Ctx, activity: Activity, operation_type: str, ext: CustomExtension, **event: Any
) -> None:
    """One event about ``ext``, in its catalog; ``event`` carries the before/after values."""
    ctx.audit(
        activity,
        operation_type=operation_type,
        target_type=TARGET,
        target_id=ext.id,
        target_name=ext.display_name,
        catalog_id=ext.catalog_id,
        **event,
    )


def snapshot(ext: CustomExtension) -> dict[str, Any]:
    """What the audit trail records: everything but the secret."""
    return {
        "displayName": ext.display_name,
        "description": ext.description,
        "endpointUrl": ext.endpoint_url,
    }
