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

__all__ = ["internal_kind", "embedded_ipv4", "not_a_host"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Address space that is not the public Internet's, where an MX host or a policy host never is (RFC 6890).
_INTERNAL = tuple((ipaddress.ip_network(net), kind) for net, kind in (
    ("0.0.0.0/8", "an unspecified ('this network') address"), ("127.0.0.0/8", "a loopback address"),
    ("10.0.0.0/8", "a private address"), ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"), ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("169.254.0.0/16", "a link-local address"),
    # Not the public Internet either, but hosts do live there, on a lab's or an operator's own network
    # (a proxy's "fake IP" DNS answers in 198.18.0.0/15, DS-Lite's 192.0.0.0/29): internal, so that
    # upstream.mx_internal_networks can allow them. An MX there was connected to, and the timeout
    # answered 451 4.4.1 "could not be reached" for days.
    ("198.18.0.0/15", "a benchmarking address (RFC 2544, RFC 6890)"),
    ("192.0.0.0/24", "an IETF protocol assignment address (RFC 6890)"),
    # Documentation addresses (RFC 5737, RFC 3849): a zone that still has its template's placeholder.
    ("192.0.2.0/24", "a documentation address (TEST-NET-1, RFC 5737)"),
    ("198.51.100.0/24", "a documentation address (TEST-NET-2, RFC 5737)"),
    ("203.0.113.0/24", "a documentation address (TEST-NET-3, RFC 5737)"),
    ("2001:db8::/32", "a documentation address (RFC 3849)"),
    ("::/128", "the unspecified address"), ("::1/128", "a loopback address"),
    ("fc00::/7", "a private (unique local) address"), ("fec0::/10", "a private (site-local) address"),
    ("fe80::/10", "a link-local address"),
))

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 2.1: the well-known prefix
# RFC 8215: the local-use NAT64 prefix. A network may take any prefix inside it; read here in RFC 6052
# 2.2's /96 form (the IPv4 address in the last 32 bits), the form translators use (review14 L2).
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
# RFC 2765 2.1 (SIIT), RFC 6145: an "IPv4-translated" address, ::ffff:0:a.b.c.d, which a stateless
# translator turns into a.b.c.d (review14 L2).
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 2.5.5.1 (:: and ::1 are not IPv4 addresses)


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and the form it is in; None when it carries none."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "local-use NAT64"
    if address in _TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "IPv4-translated"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    if address.teredo is not None:
        return address.teredo[1], "Teredo"  # the client's (NATed) address: where the packets go
    if address in _COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address)), "IPv4-compatible"
    return None


# Addresses that are never one host's, on any network: no allow list makes them one (RFC 6890).
# 0.0.0.0 and :: name no host (RFC 1122 3.2.1.3; Linux connects 0.0.0.0 to the host itself); a multicast
# address is a group's (RFC 1112 4, RFC 4291 2.7); 255.255.255.255 is the limited broadcast (RFC 919 7);
# 240.0.0.0/4 is reserved for future use (RFC 1112 4, RFC 6890 2.2.2), as the address-literal rule
# (relay/delivery/routes.py) has always taken it.
_NOT_A_HOST = tuple((ipaddress.ip_network(net), kind) for net, kind in (
    ("0.0.0.0/32", "the unspecified address"), ("::/128", "the unspecified address"),
    ("255.255.255.255/32", "the limited broadcast address"), ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address (240.0.0.0/4)"), ("ff00::/8", "a multicast address"),
))


def not_a_host(ip: str) -> str | None:
    """What `ip` is when it can never be one host's address (for a refusal's text: "a multicast
    address"), directly or as the IPv4 address an IPv6 one carries; else None."""
    return _judged(ipaddress.ip_address(ip), _NOT_A_HOST)[0]


def _match(address, table) -> str | None:
    for net, kind in table:
        if address.version == net.version and address in net:
            return kind
    return None


def _judged(address, table) -> tuple[str | None, tuple[ipaddress.IPv4Address, str] | None]:
    """The kind `table` gives `address`, else the one it gives the IPv4 address it carries (named with
    its form); and that IPv4 address and form, if any."""
    kind = _match(address, table)
    inner = embedded_ipv4(address) if address.version == 6 else None
    if kind is None and inner is not None and (inner_kind := _match(inner[0], table)) is not None:
        kind = inner_kind if inner[1] == "IPv4-mapped" else f"{inner_kind} ({inner[0]} in {inner[1]} form)"
    return kind, inner


def internal_kind(ip: str, allowed: Iterable[Network] = ()) -> str | None:
    """What kind of internal address `ip` is (for a refusal's text: "a loopback address"), or None when
    it is not internal or `allowed` (upstream.mx_internal_networks) holds it, or the IPv4 address it
    carries."""
    address = ipaddress.ip_address(ip)
    kind, inner = _judged(address, _INTERNAL)
    if kind is None:
        return None
    candidates = [address] + ([inner[0]] if inner is not None else [])
    if any(a.version == net.version and a in net for net in allowed for a in candidates):
        return None
    return kind
