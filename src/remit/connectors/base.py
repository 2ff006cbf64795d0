"""The connector protocols: how a resource role reaches (and leaves) a target system.

A connector serves the delivery targets of one kind (``connectors.registry``); which target
delivers a role is data (``models.delivery``: a route per resource, else the builtin target).

Every call is idempotent: granting a role the subject holds, or revoking one it does not hold,
succeeds and changes nothing. Grants go one (subject, role) at a time; revocations in batches
(``revoke_many``: the expiry sweep's chunk, or one removal's roles), with an outcome per item.
Two calls for one (subject, role) are never in flight at once, and each applies the desire
current when it was made, so a late grant cannot undo a newer revoke (``lifecycle.delivery``).

- A **local** connector (``LocalConnector``, the builtin one) writes into remit's own database,
  inside the caller's transaction: its changes commit or roll back with the bookkeeping. A grant
  that raises ``ConnectorError`` has written nothing, and neither has an item of
  ``revoke_many`` that comes back as one (delivery records the failure and goes on, with no
  savepoint around the call); any other exception aborts the caller's transaction.
- A **remote** connector (``RemoteConnector``: SCIM, LDAP, ...) talks to its target and takes
  no session: delivery calls it with no database transaction open (a claim on the grant rows,
  committed before the call, keeps a second call for the same row away; the outcome is
  recorded after it, in a transaction of its own). A ``ConnectorError`` is the target's answer
  (``permanent`` or not); any other exception counts as a transient failure of every item of
  the call. A call may be repeated after a crash between it and the recording of its outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy.orm import Session

from remit.models.delivery import BUILTIN_TARGET_ID


@dataclass(frozen=True)
class RoleRef:
    """A resource role in its target system's terms (not a catalog's copy of it).

    ``target_id`` is the delivery target its resource is routed to (``models.delivery``); it is
    not part of the role's identity (two refs of one role are equal whatever their target).
    """

    origin_system: str  # AadGroup | AadApplication | SharePointOnline
    resource_origin_id: str  # the group, application or site id
    role_origin_id: str  # Member_{groupId} / Owner_{groupId} / app role id / site role id
    display_name: str
    target_id: str = field(default=BUILTIN_TARGET_ID, compare=False)


@dataclass(frozen=True)
class Revocation:
    """One item of ``revoke_many``: the subject shall no longer hold the role."""

    subject_id: str
    role: RoleRef


class ConnectorError(Exception):
    """The target refused or failed; ``permanent`` ones are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# ``revoke_many``'s answer, item by item: None when done, else why not.
Outcomes = list[ConnectorError | None]


class LocalConnector(Protocol):
    """A target inside remit's own database, written in the caller's transaction."""

    name: str
    local: Literal[True]

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

    def revoke_many(self, session: Session, items: Sequence[Revocation]) -> Outcomes:
        """Make each subject not hold its role; the outcome of each item, in order."""

    def holders(self, session: Session, role: RoleRef) -> set[str]:
        """Who holds ``role`` in the target now (for reconciliation)."""


class RemoteConnector(Protocol):
    """A target outside remit, called with no database transaction open."""

    name: str
    local: Literal[False]

    def grant(
        self, subject_id: str, role: RoleRef, *, valid_until: datetime | None, now: datetime
    ) -> None:
        """Make ``subject_id`` hold ``role`` (until ``valid_until``, if the target keeps that)."""

    def revoke_many(self, items: Sequence[Revocation]) -> Outcomes:
        """Make each subject not hold its role; the outcome of each item, in order."""

    def holders(self, role: RoleRef) -> set[str]:
        """Who holds ``role`` in the target now (for reconciliation)."""


Connector = LocalConnector | RemoteConnector
