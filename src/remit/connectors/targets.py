"""Delivery targets and routes as rows: the builtin target, targets added, resources routed.

These write the configuration only (no authorization, no audit): seeding calls them, and so
will the operations that let an administrator configure targets, which check and audit first.
A route applies to grant rows created after it (and to rows granted again with nothing held at
their old target: ``lifecycle.delivery``); a target cannot be deleted while a route or a grant
row names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from remit.db import insert_or_ignore, new_id, upsert_into
from remit.models.delivery import (
    BUILTIN_KIND,
    BUILTIN_TARGET_ID,
    DeliveryRoute,
    DeliveryTarget,
)

BUILTIN_NAME = "remit directory"


def ensure_builtin(session: Session, now: datetime) -> None:
    """The builtin target's row (the migration seeds it; an emptied database gets it back)."""
    insert_or_ignore(
        session,
        DeliveryTarget,
        [
            {
                "id": BUILTIN_TARGET_ID,
                "kind": BUILTIN_KIND,
                "display_name": BUILTIN_NAME,
                "settings": {},
                "created_at": now,
            }
        ],
        ["id"],
    )


def add_target(
    session: Session, *, kind: str, display_name: str, settings: dict[str, Any], now: datetime
) -> str:
    """A new target of ``kind``; its id."""
    target = DeliveryTarget(
        id=new_id(), kind=kind, display_name=display_name, settings=settings, created_at=now
    )
    session.add(target)
    session.flush()
    return target.id


def route(
    session: Session,
    origin_system: str,
    resource_origin_ids: list[str],
    target_id: str,
    now: datetime,
) -> None:
    """Deliver the roles of these resources through ``target_id`` (replacing their routes)."""
    if not resource_origin_ids:
        return
    stmt = upsert_into(session.get_bind().dialect.name, DeliveryRoute)
    stmt = stmt.on_conflict_do_update(
        index_elements=["origin_system", "resource_origin_id"],
        set_={"target_id": stmt.excluded.target_id, "created_at": stmt.excluded.created_at},
    )
    session.execute(
        stmt,
        [
            {
                "origin_system": origin_system,
                "resource_origin_id": resource,
                "target_id": target_id,
                "created_at": now,
            }
            for resource in resource_origin_ids
        ],
    )


def unroute(session: Session, origin_system: str, resource_origin_ids: list[str]) -> None:
    """Back to the builtin target for these resources."""
    session.execute(
        delete(DeliveryRoute).where(
            DeliveryRoute.origin_system == origin_system,
            DeliveryRoute.resource_origin_id.in_(resource_origin_ids),
        )
    )
