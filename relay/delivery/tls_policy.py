"""Outbound TLS towards one MX host, for one recipient domain: what is demanded, and the check.

The default is opportunistic TLS (RFC 7435): STARTTLS when the host offers it, no certificate
check, delivery in clear when it does not. Three things raise it, never lower it:

1. DANE (RFC 7672), when the MX host has DNSSEC-validated TLSA records: TLS is mandatory and
   the certificate must match them. DANE comes first (RFC 8461 2: a domain with both is
   checked by DANE).
2. MTA-STS (RFC 8461), when the recipient domain publishes a policy: in `enforce` mode an MX
   host the policy does not list is not used (4.1), and TLS is mandatory with a certificate
   that chains to a trusted root and names the MX host (4.2). In `testing` mode the same
   checks only report; the mail goes on.
3. The operator's policies/tls.yaml, per recipient domain: `required` (TLS, no check),
   `verify` (TLS, chain + name), `dane-only` (no delivery without DANE).

Every connection is made with the same unverifying context; the checks run after the handshake
on the chain the server sent (relay/delivery/certs.py says why). A failed check is a problem
text; the caller turns it into `451 4.7.5` with the reason (`refusal()`) and an event.

policies/tls.yaml:

```yaml
bank.example: verify                     # a level alone
partner.example:
  level: verify                          # opportunistic | required | verify | dane-only
  match: [mx1.partner.example, partner.example]       # names the certificate may carry (verify)
legacy.example: {dane: false, mta_sts: false}       # ignore what the domain publishes
"*": {level: opportunistic}              # every other domain (this is the default)
```
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..decision import Reply
from ..domains import WILDCARD, domain_entries, normalise_domain
from ..errors import Problems
from ..yamlfile import load_yaml
from . import certs, dane
from .mta_sts import MtaSts

__all__ = ["LEVELS", "DomainTls", "TlsPolicies", "TlsPlan", "OutboundTlsPolicy", "unverified_context",
           "session_info", "TLS_POLICY_FILE"]

TLS_POLICY_FILE = "tls.yaml"
LEVELS = ("opportunistic", "required", "verify", "dane-only")
ENTRY_KEYS = ("level", "match", "dane", "mta_sts")
MAX_PROBLEM = 380  # keeps the reply line within RFC 5321 4.5.3.1.5's 512 octets


# -- the operator's policy file ------------------------------------------------

@dataclass(frozen=True)
class DomainTls:
    """The operator's TLS demand for one recipient domain."""

    level: str = "opportunistic"
    match: tuple[str, ...] = ()  # `verify`: names the certificate may carry; empty: the MX host's
    dane: bool = True  # use the domain's TLSA records (RFC 7672)
    mta_sts: bool = True  # use the domain's MTA-STS policy (RFC 8461)


DEFAULT = DomainTls()


class TlsPolicies:
    """policies/tls.yaml: recipient domain -> DomainTls; a domain without an entry gets the "*"
    entry, or the default (opportunistic, DANE and MTA-STS honoured)."""

    def __init__(self, entries: dict[str, DomainTls] | None = None, source: str = "<built-in>"):
        self._entries = dict(entries or {})
        self.source = source

    def get(self, domain: str) -> DomainTls:
        key = domain.rstrip(".").lower()
        try:
            key = normalise_domain(key)
        except ValueError:
            pass
        return self._entries.get(key) or self._entries.get(WILDCARD) or DEFAULT

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_file(cls, path: str | Path) -> "TlsPolicies":
        path = Path(path)
        return cls.from_dict(load_yaml(path), str(path))

    @classmethod
    def from_dict(cls, data: Any, file: str = "<dict>") -> "TlsPolicies":
        problems = Problems(file)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.add("(top level)", f"expected a mapping of recipient domain to TLS policy, "
                                        f"got {type(data).__name__}")
            problems.raise_if_any()
        entries: dict[str, DomainTls] = {}
        for name, domain, spec in domain_entries(data, problems):
            entry = _entry(name, spec, problems)
            if entry is not None:
                entries[domain] = entry
        problems.raise_if_any()
        return cls(entries, file)


def _entry(name: str, spec: Any, problems: Problems) -> DomainTls | None:
    if isinstance(spec, str):
        spec = {"level": spec}
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        problems.add(name, f"expected a level ({', '.join(LEVELS)}) or a mapping such as "
                           f"{{level: verify, match: [mx.example.com]}}")
        return None
    before = len(problems.items)
    problems.unknown_keys(spec, ENTRY_KEYS, name)
    level = spec.get("level", "opportunistic")
    if level not in LEVELS:
        problems.add(f"{name}.level", f"{level!r} is not one of {', '.join(LEVELS)}")
    flags = {}
    for key in ("dane", "mta_sts"):
        value = spec.get(key, True)
        problems.check_bool(f"{name}.{key}", value)
        flags[key] = value
    if level == "dane-only" and flags["dane"] is False:
        problems.add(f"{name}.dane", "is false, but level dane-only delivers only with DANE")
    match = spec.get("match", [])
    if isinstance(match, str):
        match = [match]
    names: list[str] = []
    if not isinstance(match, list) or not all(isinstance(m, str) for m in match):
        problems.add(f"{name}.match", "expected a list of host names, e.g. [mx1.example.com, example.com]")
    else:
        for i, raw in enumerate(match):
            try:
                # A reference identifier is a host name; the certificate may hold a wildcard for it.
                names.append(normalise_domain(raw))
            except ValueError as exc:
                problems.add(f"{name}.match[{i}]", f"{raw!r} is not a host name: {exc}")
        if match and level != "verify":
            problems.add(f"{name}.match", f"names are checked only at level verify, not {level!r}")
    if len(problems.items) > before:
        return None
    return DomainTls(level=level, match=tuple(names), dane=flags["dane"], mta_sts=flags["mta_sts"])


# -- the decision for one connection ---------------------------------------------

_context: ssl.SSLContext | None = None


def unverified_context() -> ssl.SSLContext:
    """The one client context for MX hosts: no check in the handshake (opportunistic TLS must not
    fail on a self-signed certificate, RFC 7435); the policy's check runs after it."""
    global _context
    if _context is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _context = ctx
    return _context


def session_info(ssl_object) -> dict:
    """Protocol and cipher of an established TLS session, for events."""
    if ssl_object is None:
        return {"protocol": None, "cipher": None}
    cipher = ssl_object.cipher()
    return {"protocol": ssl_object.version(), "cipher": cipher[0] if cipher else None}


@dataclass(frozen=True)
class TlsPlan:
    """What TLS with one MX host must be, for one recipient domain.

    mode:      opportunistic (STARTTLS when offered) | required (no delivery without TLS) |
               refuse (do not use this host; `reason` says why)
    policy:    what decided it, for events: opportunistic | required | verify | dane | mta-sts |
               mta-sts-testing | dane-only
    enforced:  False for MTA-STS `testing`: a failed check is reported, the mail still goes
    check:     run on the peer's chain (DER, its own certificate first) after the handshake;
               returns why it fails, or None
    note:      something worth recording even when nothing fails (an MTA-STS policy that could
               not be fetched)
    report:    a failure known before connecting that is only reported (MTA-STS testing: an MX
               host the policy does not list); with a failed check, the caller's warning event
    cause:     the id in policies/relay-replies.yaml of a refusal made from this plan
    """

    mode: str
    policy: str
    reason: str = ""
    enforced: bool = True
    check: Callable[[Sequence[bytes]], str | None] | None = field(default=None, compare=False)
    note: str | None = None
    report: str | None = None
    cause: str = "tls-policy"
    server_hostname: str | None = None

    @property
    def requires_tls(self) -> bool:
        return self.mode == "required"

    @property
    def context(self) -> ssl.SSLContext:
        return unverified_context()

    def verify(self, ssl_object) -> str | None:
        """The check on an established session; None when it passes (or there is none)."""
        if self.check is None:
            return None
        return self.check(certs.peer_chain(ssl_object))

    def refusal(self, domain: str, host: str, problem: str) -> Reply:
        """`451 4.7.5` (RFC 3463: cryptographic failure) with the reason: the client MTA keeps the
        message and retries, and the event says what the destination demanded and what failed."""
        problem = problem if len(problem) <= MAX_PROBLEM else problem[:MAX_PROBLEM - 3] + "..."
        return Reply.make(451, "4.7.5", f"TLS policy {self.policy} for {domain}: MX host {host}: {problem}",
                          source="relay", cause=self.cause)

    def as_dict(self) -> dict:
        out = {"policy": self.policy, "mode": self.mode, "enforced": self.enforced}
        if self.note:
            out["note"] = self.note
        if self.report:
            out["report"] = self.report
        return out


class OutboundTlsPolicy:
    """The per-destination decision (see the module's docstring): `plan(domain, mx_host)`."""

    def __init__(self, policies: TlsPolicies, resolver, mta_sts: MtaSts | None = None, *,
                 ca_file: Path | None = None, port: int = 25):
        self.policies = policies
        self.resolver = resolver
        self.mta_sts = mta_sts
        self.ca_file = ca_file
        self.port = port  # TLSA records are at _PORT._tcp.HOST (RFC 7672 2.2)
        self._anchors = None

    async def anchors(self):
        """The trust anchors for `verify` and MTA-STS, read once, off the event loop."""
        if self._anchors is None:
            self._anchors = await asyncio.to_thread(certs.trust_store, self.ca_file)
        return self._anchors

    async def plan(self, domain: str, mx_host: str) -> TlsPlan:
        domain = domain.rstrip(".").lower()
        host = mx_host.rstrip(".").lower()
        entry = self.policies.get(domain)
        if entry.dane:
            try:
                records = await dane.lookup(self.resolver, domain, host, self.port)
            except dane.DaneLookupError as exc:
                # RFC 7672 2.2: unknown TLSA records of a secure host: neither clear nor unauthenticated.
                return TlsPlan("refuse", "dane", str(exc), cause="tls-dane", server_hostname=host)
            if records is not None:
                if not records.authenticates:
                    return TlsPlan("required", "dane", f"{records.base} has only unusable TLSA records "
                                                       f"(RFC 7672 2.2: TLS without authentication)",
                                   cause="tls-dane", server_hostname=records.base_domain)
                # RFC 7672 3.2.2: a DANE-TA chain may name the expanded name or the MX host's own; 8.1: the
                # SNI is the TLSA base domain (the CNAME target's name when its records were used).
                return TlsPlan("required", "dane", f"{records.base} has DNSSEC-validated TLSA records",
                               check=lambda chain: dane.check(records, chain, records.reference_names),
                               cause="tls-dane", server_hostname=records.base_domain)
        if entry.level == "dane-only":
            return TlsPlan("refuse", "dane-only", f"{host} has no DNSSEC-validated TLSA records and the TLS "
                                                  f"policy of {domain} is dane-only", server_hostname=host)
        note = None
        if entry.mta_sts and self.mta_sts is not None:
            found = await self.mta_sts.policy_for(domain)
            note = found.problem
            policy = found.policy
            if policy is not None and policy.mode in ("enforce", "testing"):
                sts_plan = await self._mta_sts_plan(domain, host, policy, entry, note)
                if sts_plan is not None:
                    return sts_plan
        return await self._operator_plan(domain, host, entry, note)

    async def _mta_sts_plan(self, domain: str, host: str, policy, entry: DomainTls, note) -> TlsPlan | None:
        enforce = policy.mode == "enforce"
        if not enforce and entry.level != "opportunistic":
            return None  # the operator demands more than a report: their level applies
        mismatch = None
        if not policy.allows(host):
            mismatch = (f"{host} is not an MX host the MTA-STS policy of {domain} allows "
                        f"(mx: {', '.join(policy.mx)}; RFC 8461 4.1)")
            if enforce:
                return TlsPlan("refuse", "mta-sts", mismatch, cause="tls-mta-sts", server_hostname=host)
        try:
            anchors = await self.anchors()
        except certs.TrustStoreError as exc:
            if not enforce:
                return TlsPlan("opportunistic", "mta-sts-testing", enforced=False,
                               note=f"not checked: {exc}", cause="tls-mta-sts", server_hostname=host)
            return TlsPlan("refuse", "mta-sts", f"the certificate cannot be checked: {exc}",
                           cause="tls-mta-sts", server_hostname=host)
        check = _pkix_check(anchors, (host,))
        if enforce:
            return TlsPlan("required", "mta-sts", f"{domain} publishes an MTA-STS policy in enforce mode "
                                                  f"(id {policy.id})", check=check, note=note,
                           cause="tls-mta-sts", server_hostname=host)
        return TlsPlan("opportunistic", "mta-sts-testing", f"{domain} publishes an MTA-STS policy in testing mode",
                       enforced=False, check=check, note=note, report=mismatch, cause="tls-mta-sts",
                       server_hostname=host)

    async def _operator_plan(self, domain: str, host: str, entry: DomainTls, note) -> TlsPlan:
        if entry.level == "required":
            return TlsPlan("required", "required", f"the TLS policy of {domain} is required", note=note,
                           server_hostname=host)
        if entry.level == "verify":
            try:
                anchors = await self.anchors()
            except certs.TrustStoreError as exc:
                return TlsPlan("refuse", "verify", f"the certificate cannot be checked: {exc}",
                               server_hostname=host)
            return TlsPlan("required", "verify", f"the TLS policy of {domain} is verify",
                           check=_pkix_check(anchors, entry.match or (host,)), note=note, server_hostname=host)
        return TlsPlan("opportunistic", "opportunistic", note=note, server_hostname=host)


def _pkix_check(anchors, names: Sequence[str]) -> Callable[[Sequence[bytes]], str | None]:
    """RFC 8461 4.2 / the `verify` level: the chain leads to a trusted root and names one of `names`."""

    def check(chain: Sequence[bytes]) -> str | None:
        try:
            loaded = certs.load_chain(chain)
        except ValueError as exc:
            return f"the server's certificate could not be read ({exc})"
        return certs.validate(loaded, anchors, names)

    return check
