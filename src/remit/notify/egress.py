"""Where remit's outbound calls may go: public addresses, plus the networks an operator allows.

Catalog owners are not administrators, yet a custom extension's URL makes the server itself send
a request. Left open, that would let a catalog owner reach what only the server can reach: the
cloud's metadata service at 169.254.169.254, an admin port on loopback, the intranet (server-side
request forgery). So a webhook goes only to an address that is globally routable, or that lies in
``REMIT_WEBHOOK_ALLOWED_NETWORKS`` (comma-separated CIDRs, e.g. ``10.20.0.0/16`` for an intranet
receiver, ``127.0.0.1/32`` for one on the same host).

An IPv6 address that carries an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
``::a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d`` and 6to4 ``2002:AABB:CCDD::/48``) reaches that IPv4
host through a translator or a tunnel, so it is judged as that IPv4 address; the local-use NAT64
prefix ``64:ff9b:1::/48`` (RFC 8215) is never public (docs/decisions/0021).

The check is made on the addresses the host name resolves to *when the call is made*, and the
call then goes to the checked address (the ``Host`` header and TLS SNI keep the name, so virtual
hosting and certificate checks work as before): a name that resolves to a public address when
checked and to a private one a moment later (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from remit.settings import Network, parse_networks

__all__ = ["Refused", "Target", "allowed", "literal_address", "parse_networks", "resolve"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The destination is not allowed (the message names the address, never the URL)."""


@dataclass(frozen=True)
class Target:
    url: str  # the URL with the host replaced by the checked address
    host_header: str  # the original host (and port, when not the scheme's default)
    server_name: str | None  # the TLS server name (SNI) on https, else None


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052, the well-known prefix
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, a translator of one's own
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 (deprecated, still routed by some)
IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT translators)


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def embedded(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv6 address reaches through mapping, NAT64, 6to4, the
    IPv4-compatible or the IPv4-translated (SIIT) form; None for any other address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or address in IPV4_COMPATIBLE or address in IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _public(address: Address) -> bool:
    # Python 3.11 counts the deprecated IPv6 site-local range (fec0::/10) as global.
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    return address.is_global and not address.is_multicast and not site_local


def allowed(address: Address, networks: tuple[Network, ...]) -> bool:
    """In an allowed network (as written, or as the IPv4 address it carries), else public."""
    carried = embedded(address)
    if any(address in n or (carried is not None and carried in n) for n in networks):
        return True
    if carried is not None:
        return _public(carried)
    return _public(address) and address not in NAT64_LOCAL


def literal_address(host: str) -> Address | None:
    """The address a URL's host names literally (``10.0.0.1``, ``[::1]``), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def resolve(url: str, networks: tuple[Network, ...]) -> Target:
    """The checked destination of ``url``. Raises ``Refused`` when an address the name resolves
    to is not allowed (all must be), ``OSError`` when the name does not resolve."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    literal = literal_address(host)
    if literal is not None:
        addresses: list[Address] = [literal]
    else:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise OSError(f"{host} has no address")
    for address in addresses:
        if not allowed(address, networks):
            raise Refused(
                f"the endpoint's address {address} is not public and not in "
                "REMIT_WEBHOOK_ALLOWED_NETWORKS"
            )
    # Every address was checked; the call goes to one of them, IPv4 first (no happy eyeballs).
    chosen = min((_plain(a) for a in addresses), key=lambda a: a.version)
    shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = shown if parts.port is None else f"{shown}:{parts.port}"
    named = f"[{host}]" if literal is not None and literal.version == 6 else host
    host_header = named if parts.port is None else f"{named}:{parts.port}"
    return Target(
        url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host_header=host_header,
        server_name=host if https and literal is None else None,
    )
