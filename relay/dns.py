"""One DNS resolver for the whole relay: async lookups with a small TTL cache.

Every DNS question the relay asks (SPF, DKIM keys, the doctor's checks) goes
through one `Resolver` built from `settings.resolver`, so that the nameservers,
the timeout and the cache are the operator's choice in one place, and tests can
point everything at a loopback server.

Answers are lists. An empty list means the name does not exist (NXDOMAIN) or
has no record of that type (NODATA): both are facts about the zone, and
callers such as SPF treat them alike (RFC 7208 4.3, 5). DNS *trouble* (SERVFAIL,
a timeout, no nameserver reachable) raises `DnsTemporaryError`, because a caller
that confused it with "no record" would turn an outage into a verdict: an SPF
"none" instead of "temperror" (RFC 7208 2.6.6), a missing DKIM key instead of a
retry.

Answers are kept for their TTL, at most `max_ttl` (a day), and negative ones for min(SOA TTL, SOA
MINIMUM), at most `max_negative_ttl` (RFC 2308 5: "a configured upper bound"; 15 minutes shipped). Each
answer keeps the time the nameservers gave it (`Answer.fetched_at`), also when read back from the cache.

Trouble is remembered for `failure_ttl` seconds (RFC 9520 3.2: resolution failures
are cached, for at least 1 second and at most 5 minutes), and the same question
asked again while it is on its way waits for that one answer. Without both, one
recipient at a domain whose servers never answer cost the client the timeout twice
(traffic shaping asks for the MX host, then delivery asks again), and every further
recipient there as much again.

DNSSEC: the relay validates nothing itself. Every question carries the AD bit
(RFC 6840 5.7), and `Answer.authenticated` is what a validating resolver said
back: the AD bit of its response. DANE (RFC 7672 2.2) uses TLSA records only
when it is set, so the resolver must validate and the path to it must be one
nobody can tamper with (a resolver on the same host).

pyspf has no async API and does its own DNS through dnspython's synchronous
module; `sync_resolver()` gives it a synchronous dnspython resolver pointed at
the same nameservers (see relay/spf.py for how it is handed over).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.reversename

from .address import to_a_labels

__all__ = ["Resolver", "DnsTemporaryError", "Answer", "Tlsa", "dns_name", "a_labels"]

# The label separators IDNA treats as a full stop (RFC 3490 3.1, UTS #46 4: ideographic, full-width
# and half-width full stops), so that a name typed with one splits into its labels.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def a_labels(name: str) -> str:
    """`name` with its international labels in A-labels (`faß.de` -> `xn--fa-hia.de`), by IDNA 2008
    (RFC 5891, UTS #46 non-transitional processing, as relay/address.py keys the bounce list and as
    SMTPUTF8 MTAs and registries convert). IDNA 2003 (dnspython's default codec) maps `ß` to `ss`
    and `ς` to `σ`: `faß.de` became `fass.de`, another registered domain, and its mail went to
    that domain's MX hosts (review21 F2). ASCII labels are kept as they are (`_mta-sts`,
    `_domainkey`: IDNA has no place for the underscore). ValueError when a label is no valid
    IDNA 2008 label (a symbol such as U+2603, a joiner out of place)."""
    if name.isascii():
        return name
    labels = []
    for label in name.translate(_DOTS).split("."):
        if label.isascii():
            labels.append(label)
            continue
        try:
            labels.append(to_a_labels(label))  # the bounce list's own conversion, memoised
        except UnicodeError as exc:  # idna.IDNAError is one
            raise ValueError(f"{ascii(label)} is not a valid international domain label (IDNA 2008, "
                             f"RFC 5891): {str(exc).encode('ascii', 'backslashreplace').decode('ascii')}") from None
    return ".".join(labels)


def dns_name(name: str) -> dns.name.Name:
    """The absolute DNS name for `name` (no search list applies), its international labels converted
    by IDNA 2008 (a_labels). ValueError (or dnspython's DNSException) for a name DNS cannot carry."""
    return dns.name.from_text(a_labels(name))


class DnsTemporaryError(Exception):
    """The DNS could not answer now (SERVFAIL, timeout, no server reachable).

    `name` and `rtype` say which question failed, `reason` how, so that a
    message built from it tells an operator what to look at.
    """

    def __init__(self, name: str, rtype: str, reason: str):
        self.name = name
        self.rtype = rtype
        self.reason = reason
        super().__init__(f"DNS lookup of {rtype} {name} failed: {reason}")


@dataclass(frozen=True)
class Answer:
    """The records of one (name, type), as text, and how long they may be kept."""

    records: tuple[Any, ...]
    ttl: float  # seconds this answer may be cached; 0 = not cacheable
    # The resolver validated it with DNSSEC (the AD bit of its response, RFC 4035 3.2.3).
    authenticated: bool = False
    # The name does not exist at all (NXDOMAIN), as opposed to having no record of this type
    # (NODATA): mail routing needs the difference (RFC 5321 5.1: no MX but an address is an
    # implicit MX; a name that does not exist has no mail server at all).
    nxdomain: bool = False
    # When the nameservers gave this answer (wall clock, time.time()): a copy read back from the cache
    # keeps the time of the question that fetched it. What DNS said is dated by when it said it: a
    # domain's second "does not exist" sighting must be a second answer, never the first one replayed
    # from the cache (review21 F1; relay/delivery/routes.py, store.record_domain_evidence).
    fetched_at: float = field(default=0.0, compare=False)
    # The name the records are at once CNAME aliases are followed (RFC 1034 3.6.2), without the final
    # dot, lower-cased; "" when the name asked is no alias or nothing was found. DANE looks TLSA records
    # up at an MX host's expanded name first (RFC 7672 2.2.2); `authenticated` covers the whole chain
    # (a validating resolver sets the AD bit only when every record of its answer validated).
    canonical: str = ""


class _TtlCache:
    """A bounded LRU of (name, type) -> (expires_at, value), each kept for its own TTL: the
    answers (an Answer's ttl) and the resolution failures (failure_ttl, their reason)."""

    def __init__(self, size: int):
        self.size = max(0, int(size))
        self._items: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: tuple[str, str], value: Any, ttl: float) -> None:
        if self.size == 0 or ttl <= 0:
            return
        self._items[key] = (time.monotonic() + ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class UnresolvableNameserver(OSError):
    """A nameserver of the config given by a name the system's resolver cannot resolve: which entry
    (`resolver.nameservers[i]`, as check-config names a bad one), the name and why."""

    def __init__(self, index: int, host: str, why: BaseException):
        self.key = f"resolver.nameservers[{index}]"
        self.why = f"{host!r} does not resolve ({getattr(why, 'strerror', None) or why}); a name here is resolved " \
                   f"once at start, with the system's resolver: give the nameserver's IP address"
        super().__init__(f"{self.key}: {self.why}")


def _nameserver_objects(nameservers) -> list[dns.nameserver.Do53Nameserver]:
    """dnspython nameserver objects for (host, port) endpoints.

    dnspython wants IP addresses; a host name in the config (e.g. `localhost:53`)
    is resolved once here, at start, with the system's resolver.
    """
    out = []
    for i, ep in enumerate(nameservers):
        host, port = ep.host, int(ep.port)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            except (OSError, UnicodeError) as exc:
                raise UnresolvableNameserver(i, host, exc) from None
            addresses = list(dict.fromkeys(info[4][0] for info in infos))
        out.extend(dns.nameserver.Do53Nameserver(a, port) for a in addresses)
    return out


def _negative_ttl(response: dns.message.Message | None) -> float:
    """RFC 2308 5: a negative answer is cached for min(SOA TTL, SOA MINIMUM);
    without an SOA in the authority section it SHOULD NOT be cached at all."""
    if response is None:
        return 0.0
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return float(min(rrset.ttl, rrset[0].minimum))
    return 0.0


def _rdata_text(rtype: str, rdata) -> Any:
    if rtype == "TXT":
        # RFC 7208 3.3 / RFC 6376 3.6.2.2: the character-strings of one TXT
        # record are concatenated without spaces into one string.
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if rtype in ("A", "AAAA"):
        return rdata.address
    if rtype == "MX":
        return (int(rdata.preference), rdata.exchange.to_text(omit_final_dot=True))
    if rtype in ("PTR", "CNAME"):
        return rdata.target.to_text(omit_final_dot=True)
    if rtype == "TLSA":
        return Tlsa(int(rdata.usage), int(rdata.selector), int(rdata.mtype), bytes(rdata.cert))
    return rdata.to_text()


@dataclass(frozen=True)
class Tlsa:
    """One TLSA record (RFC 6698 2.1): certificate usage, selector, matching type, data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


def _authenticated(response: dns.message.Message | None) -> bool:
    return response is not None and bool(response.flags & dns.flags.AD)


class Resolver:
    """Async DNS lookups against the configured nameservers, with a TTL cache."""

    def __init__(self, nameservers=(), timeout: float = 5.0, cache_size: int = 10000, failure_ttl: float = 30.0,
                 max_negative_ttl: float = 900.0, max_ttl: float = 86400.0, control_name: str | None = None):
        self.nameservers = tuple(nameservers)
        self.timeout = float(timeout)
        self.failure_ttl = float(failure_ttl)
        # RFC 2308 5: the lifetime of a negative answer is min(SOA TTL, SOA MINIMUM) *and* a configured
        # maximum; without one a .de name's NXDOMAIN (DENIC's SOA minimum 7200 s) or a zone template's
        # 86400 s was served for hours after the domain's owner fixed it. Positive answers likewise
        # (Unbound's cache-max-ttl): a record with a week's TTL is asked again within a day.
        self.max_negative_ttl = float(max_negative_ttl)
        self.max_ttl = float(max_ttl)
        # A zone that exists in the public DNS: mail routing asks it before believing an NXDOMAIN for a
        # recipient's domain whose top-level domain does not exist either (relay/delivery/routes.py).
        self.control_name = control_name
        self._ns_objects = _nameserver_objects(self.nameservers) if self.nameservers else None
        self._async = self._configure(dns.asyncresolver.Resolver)
        self._cache = _TtlCache(cache_size)
        self._failures = _TtlCache(cache_size)  # (name, type) -> the failure's reason (RFC 9520)
        self._asking: dict[tuple[str, str], asyncio.Task] = {}  # questions on their way
        self.queries = 0  # questions actually sent (cache misses), for metrics and tests

    @classmethod
    def from_settings(cls, settings) -> "Resolver":
        """Raises ConfigError naming the config file and `resolver.nameservers[i]` when a nameserver given
        by name does not resolve (reported as every other config error is: `error: FILE: KEY: why`)."""
        r = settings.resolver
        try:
            return cls(r.nameservers, r.timeout, r.cache_size, r.failure_ttl, r.max_negative_ttl, r.max_ttl,
                       r.control_name)
        except UnresolvableNameserver as exc:
            from .errors import ConfigError, Problem

            raise ConfigError([Problem(str(getattr(settings, "source", "config")), exc.key, exc.why)]) from None

    def _configure(self, cls):
        if self._ns_objects is None:
            # The system's resolver (/etc/resolv.conf). A bare container may
            # have none; that is DNS trouble for every lookup, not a crash.
            try:
                res = cls(configure=True)
            except dns.resolver.NoResolverConfiguration:
                res = cls(configure=False)
                res.nameservers = []
        else:
            res = cls(configure=False)
            res.nameservers = list(self._ns_objects)
        # `lifetime` bounds one whole question (all servers, all retries);
        # `timeout` one attempt, short enough to leave room for a retry of a
        # lost UDP packet within the lifetime.
        res.lifetime = self.timeout
        res.timeout = min(self.timeout, 2.0)
        res.cache = None  # our own cache below, shared by every caller
        # RFC 6840 5.7: a stub asks for the AD bit by setting it in its query; a validating
        # resolver then says whether it validated the answer (DANE needs to know, RFC 7672 2.2).
        res.flags = dns.flags.RD | dns.flags.AD
        return res

    def sync_resolver(self) -> dns.resolver.Resolver:
        """A synchronous dnspython resolver with the same servers and timeouts,
        for libraries without an async API (pyspf). Its lookups bypass our cache."""
        return self._configure(dns.resolver.Resolver)

    def describe(self) -> str:
        """Which servers answer, for messages to operators."""
        if self.nameservers:
            return ", ".join(str(ep) for ep in self.nameservers)
        return "the system resolver (/etc/resolv.conf)"

    def clear_cache(self) -> None:
        self._cache.clear()
        self._failures.clear()

    async def query(self, name: str, rtype: str) -> Answer:
        """All records of `rtype` at `name`; empty for NXDOMAIN and NODATA.
        Raises DnsTemporaryError on SERVFAIL, timeout or no reachable server."""
        rtype = rtype.upper()
        try:
            qname = dns_name(name)  # absolute: no search list applies
        except (dns.exception.DNSException, ValueError):
            # A name DNS cannot carry (label over 63 octets, empty label, no valid IDNA 2008 label)
            # cannot exist. Mail routing refuses such a domain before asking (routes.py: 553 5.1.3).
            return Answer((), 0.0)
        key = (qname.to_text().lower(), rtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        failed = self._failures.get(key)
        if failed is not None:
            raise DnsTemporaryError(name, rtype, failed)
        if not self._async.nameservers:
            raise DnsTemporaryError(name, rtype, "no nameservers configured (no usable /etc/resolv.conf; "
                                                 "set resolver.nameservers in the config)")
        loop = asyncio.get_running_loop()
        asking = self._asking.get(key)
        if asking is None or asking.get_loop() is not loop:
            asking = loop.create_task(self._ask(qname, rtype, key))
            self._asking[key] = asking
            asking.add_done_callback(lambda task: self._asked(key, task))
        try:
            # Shielded: a caller that gives up (its session closed) does not cancel the answer
            # others are waiting for.
            return await asyncio.shield(asking)
        except DnsTemporaryError as exc:
            raise DnsTemporaryError(name, rtype, exc.reason) from None

    def _asked(self, key: tuple[str, str], task: asyncio.Task) -> None:
        if self._asking.get(key) is task:
            del self._asking[key]
        if not task.cancelled():
            task.exception()  # retrieved here too: every caller may have gone

    async def _ask(self, qname: dns.name.Name, rtype: str, key: tuple[str, str]) -> Answer:
        name = key[0]
        self.queries += 1
        try:
            answer = await self._async.resolve(qname, rtype, search=False, raise_on_no_answer=False,
                                               lifetime=self.timeout)
        except dns.resolver.NXDOMAIN as exc:
            try:
                response = exc.response(qname)
            except Exception:
                response = None
            result = Answer((), min(_negative_ttl(response), self.max_negative_ttl), _authenticated(response),
                            nxdomain=True, fetched_at=time.time())
        except dns.exception.DNSException as exc:
            if isinstance(exc, dns.resolver.LifetimeTimeout):
                reason = f"no answer within {self.timeout:g}s from {self.describe()}"
            elif isinstance(exc, dns.resolver.NoNameservers):
                reason = f"no nameserver could answer ({_servfail_reason(exc)})"
            else:
                reason = f"{type(exc).__name__}: {exc}"
            self._failures.put(key, reason, self.failure_ttl)
            raise DnsTemporaryError(name, rtype, reason) from None
        else:
            if answer.rrset is None:
                result = Answer((), min(_negative_ttl(answer.response), self.max_negative_ttl),
                                _authenticated(answer.response), fetched_at=time.time())
            else:
                ttl = min(max(0.0, answer.expiration - time.time()), self.max_ttl)
                canonical = answer.canonical_name.to_text(omit_final_dot=True).lower()
                result = Answer(tuple(_rdata_text(rtype, rd) for rd in answer.rrset), ttl,
                                _authenticated(answer.response), fetched_at=time.time(),
                                canonical="" if canonical == name.rstrip(".") else canonical)
        self._cache.put(key, result, result.ttl)
        return result

    async def txt(self, name: str) -> list[str]:
        return list((await self.query(name, "TXT")).records)

    async def a(self, name: str) -> list[str]:
        return list((await self.query(name, "A")).records)

    async def aaaa(self, name: str) -> list[str]:
        return list((await self.query(name, "AAAA")).records)

    async def addresses(self, name: str) -> list[str]:
        """A and AAAA records of `name`, looked up together."""
        a, aaaa = await asyncio.gather(self.a(name), self.aaaa(name))
        return a + aaaa

    async def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, exchange) pairs, most preferred first (RFC 5321 5.1)."""
        return sorted((await self.query(name, "MX")).records)

    async def tlsa(self, name: str) -> Answer:
        """The TLSA records at `name` (e.g. `_25._tcp.mx.example.com`, RFC 7672 2.2), with
        `authenticated`: DANE may use them only when the resolver validated them."""
        return await self.query(name, "TLSA")

    async def ptr(self, ip: str) -> list[str]:
        """Names in the reverse zone for `ip` (in-addr.arpa / ip6.arpa).
        Raises ValueError for something that is not an IP address."""
        rev = dns.reversename.from_address(str(ipaddress.ip_address(ip)))
        return list((await self.query(rev.to_text(omit_final_dot=True), "PTR")).records)


def _servfail_reason(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    parts = []
    for err in errors:
        # dnspython's error tuples: (server, tcp, port, exception or message, response)
        server, what = str(err[0]).removeprefix("Do53:").replace("@", " port "), err[3]
        parts.append(f"{what} from {server}")
    return "; ".join(parts) or "SERVFAIL"
