"""Which addresses a webhook may reach (notify/egress.py, docs/decisions/0015 and 0021).

An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4) is
judged as the IPv4 host it reaches: refused when that is not public and not in the operator's
networks, allowed when it is. The local-use NAT64 prefix is never public.
"""

from __future__ import annotations

import ipaddress

import pytest

from remit.notify import egress

INTRANET = egress.parse_networks("10.20.0.0/16")

# (address, allowed with no networks, allowed with 10.20.0.0/16)
CASES = [
    # IPv4-mapped (already handled before issue #11, kept here with its kin)
    ("::ffff:127.0.0.1", False, False),
    ("::ffff:169.254.169.254", False, False),
    ("::ffff:10.20.3.4", False, True),
    ("::ffff:93.184.216.34", True, True),
    # NAT64, the well-known prefix (RFC 6052)
    ("64:ff9b::7f00:1", False, False),  # 127.0.0.1
    ("64:ff9b::a9fe:a9fe", False, False),  # 169.254.169.254, the metadata service
    ("64:ff9b::c0a8:1", False, False),  # 192.168.0.1
    ("64:ff9b::6440:1", False, False),  # 100.64.0.1, carrier-grade NAT
    ("64:ff9b::e000:1", False, False),  # 224.0.0.1, multicast
    ("64:ff9b::a14:304", False, True),  # 10.20.3.4
    ("64:ff9b::5db8:d822", True, True),  # 93.184.216.34
    # NAT64, the local-use prefix (RFC 8215): a translator of one's own, never public
    ("64:ff9b:1::a9fe:a9fe", False, False),
    ("64:ff9b:1::5db8:d822", False, False),
    # 6to4 (RFC 3056): the IPv4 address is in bits 16-47
    ("2002:7f00:1::", False, False),
    ("2002:a9fe:a9fe::1", False, False),
    ("2002:a14:304::1", False, True),
    ("2002:5db8:d822::1", True, True),
    # IPv4-compatible (RFC 4291, deprecated)
    ("::127.0.0.1", False, False),
    ("::169.254.169.254", False, False),
    ("::10.20.3.4", False, True),
    ("::93.184.216.34", True, True),
    ("::1", False, False),
    ("::", False, False),
    # IPv4-translated (RFC 2765, SIIT translators)
    ("::ffff:0:7f00:1", False, False),  # 127.0.0.1
    ("::ffff:0:a9fe:a9fe", False, False),
    ("::ffff:0:a14:304", False, True),  # 10.20.3.4
    ("::ffff:0:5db8:d822", True, True),
    # Site-local (fec0::/10, deprecated): Python 3.11 calls it global
    ("fec0::1", False, False),
    # Plain addresses, for contrast
    ("127.0.0.1", False, False),
    ("10.20.3.4", False, True),
    ("93.184.216.34", True, True),
    ("2606:4700::1111", True, True),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, False),  # Teredo: not global already
]


@pytest.mark.parametrize(("address", "public", "intranet"), CASES, ids=[c[0] for c in CASES])
def test_an_address_that_carries_ipv4_is_judged_by_it(
    address: str, public: bool, intranet: bool
) -> None:
    parsed = ipaddress.ip_address(address)
    assert egress.allowed(parsed, ()) is public
    assert egress.allowed(parsed, INTRANET) is intranet


def test_an_operator_may_allow_a_translator_prefix_as_written() -> None:
    own_nat64 = egress.parse_networks("64:ff9b:1::/48")
    assert egress.allowed(ipaddress.ip_address("64:ff9b:1::5db8:d822"), own_nat64)


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[64:ff9b:1::a9fe:a9fe]/latest/meta-data/",
        "https://[2002:a9fe:a9fe::1]:8443/hook",
        "http://[::169.254.169.254]/hook",
        "http://[::ffff:169.254.169.254]/hook",
    ],
)
def test_a_call_to_a_carried_private_address_is_refused(url: str) -> None:
    with pytest.raises(egress.Refused, match="is not public"):
        egress.resolve(url, ())


def test_a_call_through_nat64_keeps_its_ipv6_address() -> None:
    """Judged by the IPv4 host, but called at the IPv6 address: a NAT64 network may have no
    IPv4 route at all."""
    target = egress.resolve("https://[64:ff9b::5db8:d822]/hook", ())
    assert target.url == "https://[64:ff9b::5db8:d822]/hook"
    assert target.host_header == "[64:ff9b::5db8:d822]"
