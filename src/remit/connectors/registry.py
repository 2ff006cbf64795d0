"""Which connector serves which origin system."""

from __future__ import annotations

from remit.connectors.base import Connector, ConnectorError
from remit.connectors.builtin import BuiltinConnector

_BUILTIN = BuiltinConnector()
_BY_SYSTEM: dict[str, Connector] = {
    "AadGroup": _BUILTIN,
    "AadApplication": _BUILTIN,
    "SharePointOnline": _BUILTIN,
}


def connector_for(origin_system: str) -> Connector:
    found = _BY_SYSTEM.get(origin_system)
    if found is None:
        raise ConnectorError(f"no connector delivers {origin_system} roles", permanent=True)
    return found


def register(origin_system: str, connector: Connector) -> Connector | None:
    """Route an origin system to another connector (SCIM, LDAP; tests); returns the one it
    replaces, so that it can be put back."""
    previous = _BY_SYSTEM.get(origin_system)
    _BY_SYSTEM[origin_system] = connector
    return previous
