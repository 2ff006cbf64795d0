"""Which connector serves which delivery target.

A target is a row (``models.delivery.DeliveryTarget``): its ``kind`` names a connector factory
registered here, which builds the target's connector from the row (its settings). Connectors
are built once per target and process and kept while the row says the same; the builtin
target (``BUILTIN_TARGET_ID``) is known without reading its row, so local delivery into remit's
own directory costs no statement to resolve. Tests register kinds of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.connectors.base import Connector, ConnectorError
from remit.connectors.builtin import BuiltinConnector
from remit.models.delivery import BUILTIN_KIND, BUILTIN_TARGET_ID, DeliveryTarget


@dataclass(frozen=True)
class Target:
    """A target as its factory sees it."""

    id: str
    kind: str
    display_name: str
    settings: dict[str, Any]


Factory = Callable[[Target], Connector]
# What ``connectors`` answers for each target: its connector, or why there is none.
Resolved = dict[str, Connector | ConnectorError]

_BUILTIN = BuiltinConnector()
_KINDS: dict[str, Factory] = {BUILTIN_KIND: lambda target: _BUILTIN}
_BUILT: dict[str, tuple[Target, Connector]] = {}  # by target id, with the row it was built from
_LOCK = threading.Lock()


def builtin() -> BuiltinConnector:
    """The connector of the builtin target."""
    return _BUILTIN


def register_kind(kind: str, factory: Factory) -> None:
    """Let targets of ``kind`` be delivered through connectors made by ``factory``."""
    with _LOCK:
        if kind in _KINDS:
            raise ValueError(f"connector kind {kind!r} is registered twice")
        _KINDS[kind] = factory


def unregister_kind(kind: str) -> None:
    """Forget ``kind`` and the connectors built for its targets (tests)."""
    if kind == BUILTIN_KIND:
        raise ValueError("the builtin kind stays")
    with _LOCK:
        _KINDS.pop(kind, None)
        for target_id in [t for t, (row, _) in _BUILT.items() if row.kind == kind]:
            del _BUILT[target_id]


def connectors(session: Session, target_ids: Iterable[str]) -> Resolved:
    """The connector of each target; a ``ConnectorError`` (permanent) for a target that does
    not exist or whose kind no connector serves. Reads the rows of the targets other than the
    builtin one, in one statement, and only when there are some."""
    wanted = set(target_ids)
    found: Resolved = {}
    if BUILTIN_TARGET_ID in wanted:
        found[BUILTIN_TARGET_ID] = _BUILTIN
        wanted.discard(BUILTIN_TARGET_ID)
    if not wanted:
        return found
    rows = session.execute(
        select(
            DeliveryTarget.id,
            DeliveryTarget.kind,
            DeliveryTarget.display_name,
            DeliveryTarget.settings,
        ).where(DeliveryTarget.id.in_(wanted))
    ).all()
    for row in rows:
        target = Target(row.id, row.kind, row.display_name, dict(row.settings or {}))
        found[target.id] = _connector(target)
    for missing in wanted - found.keys():
        found[missing] = ConnectorError(f"delivery target {missing} does not exist", permanent=True)
    return found


def _connector(target: Target) -> Connector | ConnectorError:
    with _LOCK:
        built = _BUILT.get(target.id)
        if built is not None and built[0] == target:
            return built[1]
        factory = _KINDS.get(target.kind)
        if factory is None:
            return ConnectorError(
                f"no connector delivers to {target.display_name} (kind {target.kind})",
                permanent=True,
            )
        try:
            connector = factory(target)  # builds only: no call to the target here
        except ConnectorError as e:  # settings the kind refuses
            return e
        _BUILT[target.id] = (target, connector)
        return connector
