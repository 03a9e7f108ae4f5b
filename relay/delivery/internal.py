"""Addresses the relay never connects to for a recipient's domain: its own host and networks.

MX delivery and the MTA-STS policy fetch both connect where a recipient domain's DNS points. A
domain (or address literal) pointing into loopback, private or link-local space would make the relay
connect into its own host and networks for whoever sent the mail (SSRF): a cloud's metadata service
(169.254.169.254, Alibaba's 100.100.100.200), an admin port on 127.0.0.1. Such an address is refused
unless the operator listed its network in `upstream.mx_internal_networks` (docs/delivery.md).

An IPv6 address can carry an IPv4 address inside it, and a host (or the network's NAT64 gateway, or a
6to4/Teredo relay) reaches that IPv4 address for it: IPv4-mapped `::ffff:a.b.c.d` (RFC 4291 2.5.5.2),
IPv4-compatible `::a.b.c.d` (RFC 4291 2.5.5.1, deprecated), NAT64's well-known prefix
`64:ff9b::/96` (RFC 6052 2.1), 6to4 `2002:AABB:CCDD::/48` (RFC 3056 2) and Teredo `2001:0::/32`
(RFC 4380 4, the client's address stored inverted). Each is judged by the IPv4 address it carries.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

__all__ = ["internal_kind", "embedded_ipv4"]

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

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 2.1: the well-known prefix
_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 2.5.5.1 (:: and ::1 are not IPv4 addresses)


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and the form it is in; None when it carries none."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    if address.teredo is not None:
        return address.teredo[1], "Teredo"  # the client's (NATed) address: where the packets go
    if address in _COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address)), "IPv4-compatible"
    return None


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
    kind = _kind(address)
    inner = embedded_ipv4(address) if address.version == 6 else None
    if kind is None and inner is not None:
        inner_kind = _kind(inner[0])
        if inner_kind is not None:
            kind = inner_kind if inner[1] == "IPv4-mapped" else f"{inner_kind} ({inner[0]} in {inner[1]} form)"
    if kind is None:
        return None
    candidates = [address] + ([inner[0]] if inner is not None else [])
    if any(a.version == net.version and a in net for net in allowed for a in candidates):
        return None
    return kind
