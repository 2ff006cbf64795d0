"""What every operation receives: the open transaction, the actor, the time, the audit hook."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from remit.audit import pending
from remit.authz.actor import Actor
from remit.models.vocabulary import Activity


@dataclass
class Ctx:
    session: Session
    actor: Actor
    now: datetime

    def audit(
        self,
        activity: Activity,
        *,
        operation_type: str,
        target_type: str,
        target_id: str,
        target_name: str | None = None,
        catalog_id: str | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        category: str = "EntitlementManagement",
        subject_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """One event per change, committed with the change (appended to the chain at commit:
        ``audit.pending``)."""
        pending.add(
            self.session,
            {
                "occurred_at": self.now,
                "category": category,
                "activity": activity,
                "operation_type": operation_type,
                "actor_id": self.actor.user_id,
                "actor_name": self.actor.name,
                "target_type": target_type,
                "target_id": target_id,
                "target_name": target_name,
                "catalog_id": catalog_id,
                "subject_id": subject_id,
                "details": {"before": before, "after": after, **(details or {})},
            },
        )
