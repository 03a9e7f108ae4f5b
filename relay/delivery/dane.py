"""DANE for SMTP (RFC 7672): an MX host's TLSA records, and the check of its certificate.

A TLSA RRset counts only when the resolver validated it (the AD bit, RFC 7672 2.2), and only
for an MX host whose address records validated too (2.2.2: an attacker who can forge the
addresses can forge the host) and, when the host came from an MX record, whose MX RRset
validated (2.2.1). Then TLS is mandatory with that host, and its certificate must match:

- DANE-EE(3): the server's own certificate or public key, by digest or in full. Its names and
  dates are not checked (3.1.1): the DNS record is the binding.
- DANE-TA(2): a certificate the server sent in its chain is the trust anchor; the chain must
  lead from the server's certificate to it and name the MX host (3.1.2, 3.2.2).
- PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (3.1.3), as are unknown selectors and
  matching types. A secure RRset with no usable record still makes TLS mandatory, without
  authentication (2.2: "unusable" TLSA records do not downgrade to cleartext).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import Store

from ..dns import DnsTemporaryError, Tlsa
from . import certs

__all__ = ["DaneRecords", "DaneLookupError", "lookup", "check", "describe_record"]

DANE_TA, DANE_EE = 2, 3
USAGES = {0: "PKIX-TA", 1: "PKIX-EE", 2: "DANE-TA", 3: "DANE-EE"}
SELECTORS = {0: "Cert", 1: "SPKI"}
MATCHING = {0: "Full", 1: "SHA2-256", 2: "SHA2-512"}


class DaneLookupError(Exception):
    """DNS trouble while a secure host's TLSA records were asked for: RFC 7672 2.2 forbids
    falling back to unauthenticated TLS, so this host cannot be used now."""


@dataclass(frozen=True)
class DaneRecords:
    """The validated TLSA RRset of one MX host, split by usability (RFC 7672 3.1.3)."""

    base: str  # the TLSA owner name, e.g. _25._tcp.mx.example.com
    usable: tuple[Tlsa, ...]
    unusable: tuple[Tlsa, ...] = ()
    # The reference identifiers a DANE-TA chain must name (RFC 7672 3.2.2): the MX host's name after
    # CNAME expansion, then its name as the MX record gave it; () means the name in `base`.
    names: tuple[str, ...] = ()

    @property
    def base_domain(self) -> str:
        """The TLSA base domain (RFC 7672 2.2.2): the host name the records are at, the SNI to send (8.1)."""
        return self.base.split("._tcp.", 1)[-1]

    @property
    def reference_names(self) -> list[str]:
        return list(self.names or (self.base_domain,))

    @property
    def authenticates(self) -> bool:
        """False when every record is unusable: TLS is mandatory, the peer unauthenticated."""
        return bool(self.usable)


def usable(record: Tlsa) -> bool:
    return record.usage in (DANE_TA, DANE_EE) and record.selector in SELECTORS and record.mtype in MATCHING


def describe_record(record: Tlsa) -> str:
    """`DANE-EE SPKI SHA2-256 1a2b3c4d5e6f7a8b...` (RFC 7218 names), short enough for a reply."""
    data = record.data.hex()
    return (f"{USAGES.get(record.usage, record.usage)} {SELECTORS.get(record.selector, record.selector)} "
            f"{MATCHING.get(record.mtype, record.mtype)} {data[:16]}{'...' if len(data) > 16 else ''}")


async def lookup(resolver, domain: str, host: str, port: int = 25) -> DaneRecords | None:
    """The DANE records for delivering `domain`'s mail to MX `host`, or None when DANE does not
    apply (nothing validated, or no TLSA). Raises DaneLookupError on DNS trouble that leaves the
    answer unknown for a host that may be secure: a failed TLSA lookup, and a failed address
    lookup when no family validated and nothing proved the host insecure (RFC 7672 2.2: a lookup
    that fails is no "DANE does not apply"; the caller makes the host unusable, never sends in clear)."""
    host = host.rstrip(".").lower()
    mx_secure = False
    try:
        if host != domain.rstrip(".").lower():
            mx = await resolver.query(domain, "MX")
            if mx.records and not mx.authenticated:
                return None  # RFC 7672 2.2.1: an insecure MX RRset may point anywhere
            mx_secure = bool(mx.records)
    except DnsTemporaryError:
        return None  # the route itself could not be looked up: the mx step reports that
    secure, canonical = await _addresses_secure(resolver, host, mx_secure)
    if not secure:
        return None
    # RFC 7672 2.2.2: with a secure CNAME chain the TLSA records are looked up at the fully expanded
    # name first (the provider's host publishes them under its own name), then at the MX host's own
    # name; each answer must validate. The names are the reference identifiers of a DANE-TA chain
    # (3.2.2: the expanded name and the original one).
    names = tuple(dict.fromkeys(n for n in (canonical, host) if n))
    for name in names:
        base = f"_{port}._tcp.{name}"
        try:
            answer = await resolver.tlsa(base)
        except DnsTemporaryError as exc:
            raise DaneLookupError(f"the TLSA records of {name} could not be looked up ({exc.reason})") from None
        if answer.authenticated and answer.records:
            records = tuple(answer.records)
            return DaneRecords(base, tuple(r for r in records if usable(r)), tuple(r for r in records if not usable(r)),
                               names=names)
    return None


async def _addresses_secure(resolver, host: str, mx_secure: bool) -> tuple[bool, str]:
    """Whether `host`'s addresses validated (RFC 7672 2.2.2), and the name they are at after CNAME
    expansion ("" if none). A and AAAA are asked together and judged each on its own: a family whose
    records validated makes DANE apply to the host, so to every address the relay connects to (a
    family whose lookup failed has no address to connect to). A validating resolver answers SERVFAIL
    to a forged (bogus) RRset: asking A first and taking its failure for "no DANE" let an attacker who
    spoils one family's answer take the mail over the other family without any certificate check
    (review29 F1). With no family secure, a failed lookup while nothing shows the host is outside
    DNSSEC (the other family's answer or the MX RRset validated) leaves its security unknown:
    DaneLookupError, the host unusable for now, as for a failed TLSA lookup (2.2)."""
    answers = await asyncio.gather(*(resolver.query(host, rtype) for rtype in ("A", "AAAA")),
                                   return_exceptions=True)
    for a in answers:
        if isinstance(a, BaseException) and not isinstance(a, DnsTemporaryError):
            raise a
    failed = [a for a in answers if isinstance(a, DnsTemporaryError)]
    answered = [a for a in answers if not isinstance(a, BaseException)]
    secure = [a for a in answered if a.records and a.authenticated]
    if secure:
        return True, next((a.canonical for a in secure if a.canonical), "")
    if failed and (answered or mx_secure) and all(a.authenticated for a in answered):
        raise DaneLookupError(f"the addresses of {host} could not be looked up ({failed[0].reason}), "
                              f"so whether DANE applies is unknown")
    return False, ""


def _selected(cert: x509.Certificate, selector: int) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER) if selector == 0 else certs.spki(cert)


def _matches(record: Tlsa, cert: x509.Certificate) -> bool:
    data = _selected(cert, record.selector)
    if record.mtype == 1:
        data = hashlib.sha256(data).digest()
    elif record.mtype == 2:
        data = hashlib.sha512(data).digest()
    return data == record.data


def check(records: DaneRecords, chain_der: Sequence[bytes], names: Sequence[str]) -> str | None:
    """None when the server's chain matches one usable record; else why not, for an operator.
    `names` are the reference identifiers a DANE-TA chain must carry (the MX host first)."""
    if not records.authenticates:
        return None  # RFC 7672 2.2: TLS was mandatory, authentication is not possible
    try:
        chain = certs.load_chain(chain_der)
    except ValueError as exc:
        return f"the server's certificate could not be read ({exc})"
    if not chain:
        return "the server sent no certificate"
    ee = [r for r in records.usable if r.usage == DANE_EE]
    if any(_matches(r, chain[0]) for r in ee):
        return None  # RFC 7672 3.1.1: names and dates of a DANE-EE match are not checked
    ta_problems = []
    for record in (r for r in records.usable if r.usage == DANE_TA):
        for anchor in chain[1:]:
            if not _matches(record, anchor):
                continue
            problem = certs.validate(chain, Store([anchor]), names)
            if problem is None:
                return None
            ta_problems.append(f"the chain leads to the trust anchor of {describe_record(record)}, but {problem}")
    if ta_problems:
        return f"DANE ({records.base}): " + "; ".join(ta_problems)
    spki_digest = hashlib.sha256(certs.spki(chain[0])).hexdigest()
    shown = ", ".join(describe_record(r) for r in records.usable[:3])
    more = f" and {len(records.usable) - 3} more" if len(records.usable) > 3 else ""
    return (f"DANE ({records.base}): no TLSA record matches the server's certificate ({certs.describe(chain[0])}, "
            f"SHA2-256 of its public key {spki_digest[:16]}...); the records are {shown}{more}")
