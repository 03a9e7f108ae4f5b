"""Addresses the relay never connects to for a recipient's domain: its own host and networks.

MX delivery and the MTA-STS policy fetch both connect where a recipient domain's DNS points. A
domain (or address literal) pointing into loopback, private or link-local space would make the relay
connect into its own host and networks for whoever sent the mail (SSRF): a cloud's metadata service
(169.254.169.254, Alibaba's 100.100.100.200), an admin port on 127.0.0.1. Such an address is refused
unless the operator listed its network in `upstream.mx_internal_networks` (docs/delivery.md).

An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is read as the IPv4 address it is.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

__all__ = ["internal_kind"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Address space that is not the public Internet's, where an MX host or a policy host never is (RFC 6890).
_INTERNAL = tuple((ipaddress.ip_network(net), kind) for net, kind in (
    ("0.0.0.0/8", "an unspecified ('this network') address"), ("127.0.0.0/8", "a loopback address"),
    ("10.0.0.0/8", "a private address"), ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"), ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("169.254.0.0/16", "a link-local address"),
    ("::/128", "the unspecified address"), ("::1/128", "a loopback address"),
    ("fc00::/7", "a private (unique local) address"), ("fec0::/10", "a private (site-local) address"),
    ("fe80::/10", "a link-local address"),
))

def _kind(address) -> str | None:
    for net, kind in _INTERNAL:
        if address.version == net.version and address in net:
            return kind
    return None


def internal_kind(ip: str, allowed: Iterable[Network] = ()) -> str | None:
    """What kind of internal address `ip` is (for a refusal's text: "a loopback address"), or None when
    it is not internal or `allowed` (upstream.mx_internal_networks) holds it, or the IPv4 address it
    carries."""
    address = ipaddress.ip_address(ip)
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    kind = _kind(address)
    if kind is None:
        return None
    candidates = [address]
    if any(a.version == net.version and a in net for net in allowed for a in candidates):
        return None
    return kind
