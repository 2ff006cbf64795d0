"""The connector protocol: how a resource role reaches (and leaves) a target system.

Every call is idempotent: granting a role the subject holds, or revoking one it does not hold,
succeeds and changes nothing. Calls for one (subject, role) never run concurrently: delivery
makes them under a lock on that grant's row (``lifecycle.delivery``), with the desire current at
that moment, so a late grant cannot undo a newer revoke.

A *local* connector writes into remit's own database, inside the caller's transaction: its
changes commit or roll back together with the bookkeeping. Others are called from jobs. A local
call that raises ``ConnectorError`` has written nothing (delivery records the failure and goes
on, with no savepoint around the call); any other exception aborts the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class RoleRef:
    """A resource role in its target system's terms (not a catalog's copy of it)."""

    origin_system: str  # AadGroup | AadApplication | SharePointOnline
    resource_origin_id: str  # the group, application or site id
    role_origin_id: str  # Member_{groupId} / Owner_{groupId} / app role id / site role id
    display_name: str


class ConnectorError(Exception):
    """The target refused or failed; ``permanent`` ones are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Connector(Protocol):
    name: str
    local: bool

    def grant(
        self,
        session: Session,
        subject_id: str,
        role: RoleRef,
        *,
        valid_until: datetime | None,
        now: datetime,
    ) -> None:
        """Make ``subject_id`` hold ``role`` (until ``valid_until``, if the target keeps that)."""

    def revoke(self, session: Session, subject_id: str, role: RoleRef) -> None:
        """Make ``subject_id`` not hold ``role``."""

    def holders(self, session: Session, role: RoleRef) -> set[str]:
        """Who holds ``role`` in the target now (for reconciliation)."""
