"""The tenant's entitlementManagementSettings (spec §7.2, graph-api §A.3.9).

One row (id 1), created with the defaults the first time it is needed: block, then delete after
30 days. A change applies to guests who lose their last assignment afterwards; deletions already
scheduled keep their date (the date is stored on the user when it is blocked). Reading them for
a caller, with who may, is ``queries.settings``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from remit import validation
from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.db import insert_or_ignore
from remit.durations import format_duration, parse_duration
from remit.errors import Invalid
from remit.models.external import TenantSettings
from remit.models.vocabulary import Activity

SETTINGS_ID = 1
NONE, BLOCK, BLOCK_AND_DELETE = "none", "blockSignIn", "blockSignInAndDelete"
ACTIONS = (NONE, BLOCK, BLOCK_AND_DELETE)
DEFAULT_ACTION = BLOCK_AND_DELETE
DEFAULT_DELAY = timedelta(days=30)
MAX_DELAY = timedelta(days=3660)
ACTION = "externalUserLifecycleAction"
DELAY = "durationUntilExternalUserDeletedAfterBlocked"
EDITABLE = {ACTION, DELAY}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def get_settings(
    session: Session, *, now: datetime | None = None, create: bool = True
) -> TenantSettings:
    """The settings row, created with the defaults if missing (any caller may read it).

    With ``create=False`` (a read-only transaction) a missing row is returned as an unsaved
    object holding the defaults.
    """
    found = session.get(TenantSettings, SETTINGS_ID)
    if found is not None:
        return found
    if not create:
        return TenantSettings(
            id=SETTINGS_ID,
            external_user_lifecycle_action=DEFAULT_ACTION,
            delete_after_blocked_seconds=int(DEFAULT_DELAY.total_seconds()),
            modified_at=now or _EPOCH,
        )
    # Two first readers may race: the second insert is a no-op, and both read the one row.
    insert_or_ignore(
        session,
        TenantSettings,
        [
            {
                "id": SETTINGS_ID,
                "external_user_lifecycle_action": DEFAULT_ACTION,
                "delete_after_blocked_seconds": int(DEFAULT_DELAY.total_seconds()),
                "modified_at": now or _EPOCH,
            }
        ],
        ["id"],
    )
    created = session.get(TenantSettings, SETTINGS_ID)
    if created is None:  # pragma: no cover - the row was just inserted
        raise RuntimeError("tenant settings row missing")
    return created


def delete_delay(row: TenantSettings) -> timedelta:
    return timedelta(seconds=row.delete_after_blocked_seconds)


def as_graph(row: TenantSettings) -> dict[str, Any]:
    return {ACTION: row.external_user_lifecycle_action, DELAY: format_duration(delete_delay(row))}


def _action(value: Any) -> str:
    found = next(
        (a for a in ACTIONS if isinstance(value, str) and value.lower() == a.lower()), None
    )
    if found is None:
        raise Invalid(f"{ACTION} must be one of: {', '.join(ACTIONS)}", target=ACTION)
    return found


def _delay(value: Any) -> timedelta:
    found = parse_duration(value, target=DELAY)
    if found > MAX_DELAY:
        raise Invalid(f"{DELAY} must be between 0 and 3660 days", target=DELAY)
    if found != timedelta(seconds=int(found.total_seconds())):
        raise Invalid(f"{DELAY} is kept in whole seconds", target=DELAY)
    return found


def update_settings(ctx: Ctx, changes: dict[str, Any]) -> TenantSettings:
    """PATCH semantics: only the properties given change. Audited with before and after."""
    authorize(ctx.actor, Task.SETTINGS_UPDATE)
    validation.only_editable(changes, EDITABLE)
    # Validate everything before touching the row: a bad value changes nothing.
    action = _action(changes[ACTION]) if ACTION in changes else None
    delay = _delay(changes[DELAY]) if DELAY in changes else None
    row = get_settings(ctx.session, now=ctx.now)
    before = as_graph(row)
    if action is not None:
        row.external_user_lifecycle_action = action
    if delay is not None:
        row.delete_after_blocked_seconds = int(delay.total_seconds())
    after = as_graph(row)
    if after != before:
        row.modified_at = ctx.now
        ctx.session.flush()
        ctx.audit(
            Activity.UPDATE_SETTINGS,
            operation_type="Update",
            target_type="EntitlementManagementSettings",
            target_id=str(SETTINGS_ID),
            target_name="entitlementManagementSettings",
            before=before,
            after=after,
        )
    return row
