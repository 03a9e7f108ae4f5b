"""Where mail for a recipient domain goes: its MX hosts, found in DNS (RFC 5321 5.1).

Every question goes through the relay's one resolver (relay/dns.py). A route is
the recipient domain's MX set in the order to try it: by preference, and in
random order among hosts of equal preference (RFC 5321 5.1, to spread load).
What DNS says about a domain that cannot take mail is a reply for that
recipient, in words the funnel (policies/relay-replies.yaml, suppression.yaml
`domains:`) understands:

  no such domain (NXDOMAIN)          550 5.1.2   scope recipient: evidence the domain does not exist
  null MX (RFC 7505)                 556 5.1.10  scope recipient: the domain says it takes no mail
  no MX and no A/AAAA                550 5.1.2   scope recipient: nothing to deliver to
  SERVFAIL, timeout                  451 4.4.3   scope relay: DNS trouble, the client retries
  MX records but none usable         451 4.4.4   scope relay: a broken zone, fixed by its owner

Choices where real MTAs and the RFCs differ:
- An MX whose exchange is an IP address written as a name (`10 192.0.2.1.`) is skipped, as Postfix
  ("numeric domain name in resource data of MX record") and Exim (`allow_mx_to_ip` off by default)
  do: RFC 5321 5.1 and RFC 1035 3.3.9 make the exchange a domain name, and looking that name up
  for an address finds nothing.
- An exchange that is an alias (CNAME) is followed when its addresses are looked up, as every
  common MTA does, although RFC 2181 10.3 says it must not be an alias: refusing it would bounce
  mail that every other sender delivers. A recipient domain that is itself a CNAME is followed
  by the resolver (RFC 5321 5.1: "processed as if it were the initial name").
- A recipient given as an address literal (`user@[192.0.2.1]`, RFC 5321 4.1.3) is delivered to
  that address, without DNS.
- Mail that would come back to this relay is refused with `554 5.4.6 ... loops back to myself`, as
  Postfix does: RFC 5321 5.1 says a client that finds its own name among the MX hosts must discard
  that host and every host of equal or worse preference; when none is left, the domain's mail comes
  to us, and we do not deliver locally. (An MX *address* that is one of our own listeners is caught
  when connecting: relay/delivery/pool.py.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import dataclass, replace

from ..address import ascii_reply
from ..decision import Reply
from ..dns import DnsTemporaryError, Resolver, a_labels
from .internal import not_a_host

# RFC 5321 5.1: "there SHOULD be a configurable limit on the number of alternate addresses that
# can be tried". A zone's owner (or whoever forged its answer) chooses how many MX records it has:
# 100 of them were 100 hosts looked up (300 DNS questions, each up to resolver.timeout when the
# names never answer: minutes before the client heard a reply) and connected to, for every
# recipient. Only the most preferred are tried, as Exim (hosts_max_try 5) and Postfix
# (smtp_mx_address_limit 5) do; the route's MX set is still the whole one (Route.destination).
# The defaults of upstream.mx_max_hosts and upstream.mx_max_addresses (relay/config.py).
MAX_MX_HOSTS = 10
MAX_MX_ADDRESSES = 10  # connections tried in all, over the hosts' addresses


@dataclass(frozen=True)
class MxHost:
    """One mail exchanger of a route."""

    name: str  # lower case, no final dot; for an address literal the literal itself, e.g. "[192.0.2.1]"
    preference: int
    implicit: bool = False  # no MX records: the domain's own A/AAAA (RFC 5321 5.1)
    address: str | None = None  # an address literal's address: no lookup

    def as_dict(self) -> dict:
        return {"host": self.name, "preference": self.preference, "implicit": self.implicit}


@dataclass(frozen=True)
class Route:
    """The MX hosts of one recipient domain, in the order to try them."""

    domain: str
    hosts: tuple[MxHost, ...]

    def tried(self, limit: int = MAX_MX_HOSTS) -> tuple[MxHost, ...]:
        """The hosts an attempt looks up and tries, in order: the `limit` most preferred
        (upstream.mx_max_hosts)."""
        return self.hosts[:limit]

    @property
    def destination(self) -> tuple:
        """What identifies where the mail goes: the MX set, whatever the order chosen for this
        lookup. Recipients of domains with the same MX set may share a transaction."""
        return tuple(sorted((h.preference, h.name) for h in self.hosts))


class RouteError(Exception):
    """The domain has no route now or ever; `reply` says so to the client."""

    def __init__(self, reply: Reply):
        super().__init__(reply.text)
        self.reply = reply


def _reply(code: int, enhanced: str, text: str, cause: str) -> Reply:
    return Reply.make(code, enhanced, text, source="relay", cause=cause)


def loops_back(domain: str, why: str) -> Reply:
    """The refusal of mail whose route leads back to this relay (Postfix's words, RFC 3463 5.4.6)."""
    return _reply(554, "5.4.6", f"mail for {domain} loops back to myself: {why}; this relay does not deliver "
                                f"locally", "mx-loop")


def literal_address(domain: str) -> str | None:
    """The address of an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`), or None."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner.lower().startswith("ipv6:"):
        inner = inner[5:]
        version = 6
    else:
        version = 4
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        return None
    return str(address) if address.version == version else None


def _not_a_host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What an address literal's address is when it cannot be one host's (RFC 5321 4.1.3), or None:
    the addresses an MX host's never are (relay/delivery/internal.py), and an IPv6 link-local one."""
    kind = not_a_host(str(address))
    if kind is not None:
        return kind
    if address.version == 6 and address.is_link_local:
        return "a link-local address (it needs an interface, which a literal cannot name)"
    return None


def _numeric(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Routes:
    """MX routes from DNS, through the relay's resolver (its cache honours the records' TTLs)."""

    def __init__(self, resolver: Resolver, rng: random.Random | None = None, own_names: frozenset[str] = frozenset()):
        self.resolver = resolver
        # A zone that exists in the public DNS, asked before an NXDOMAIN counts (_check_resolver), as
        # resolver.control_name gives it (config.py writes it without a final dot). None: not asked (the
        # shipped default; the domain breaker in suppression.yaml guards instead).
        self.control_name = getattr(resolver, "control_name", None)
        self._rng = rng or random.Random()
        self.own_names = frozenset(name.lower().rstrip(".") for name in own_names)  # this relay's host names

    async def route(self, domain: str) -> Route:
        """The route for `domain`, or RouteError with the reply for its recipients."""
        domain = domain.lower().rstrip(".")
        literal = literal_address(domain)
        if literal is not None:
            kind = _not_a_host(ipaddress.ip_address(literal))
            if kind is not None:
                # Connected to, it failed (or reached this very machine, for the unspecified address)
                # and was answered 451 4.4.1: retried for days, it can never go.
                raise RouteError(_reply(553, "5.1.3", f"Recipient address rejected: {domain} is {kind}, not a "
                                                      f"host to deliver to (RFC 5321 4.1.3)", "mx-bad-domain"))
            return Route(domain, (MxHost(domain, 0, address=literal),))
        if domain.startswith("["):
            raise RouteError(_reply(553, "5.1.3", f"Recipient address rejected: {domain} is not an address "
                                                  f"literal such as [192.0.2.1] or [IPv6:2001:db8::1]",
                                    "mx-bad-domain"))
        try:
            # IDNA 2008 A-labels (relay/dns.py a_labels): the route, its MTA-STS and DANE lookups and the
            # replies all name the domain DNS knows (`faß.de` is xn--fa-hia.de, never fass.de).
            domain = a_labels(domain)
        except ValueError as exc:
            # No domain can have this name, so there is nothing to look up: the address is wrong
            # (RFC 5321 4.1.2 / RFC 6531 3.3: a domain is A-labels or valid U-labels; RFC 3463 5.1.3
            # "bad destination mailbox address syntax"). A syntax refusal is never domain evidence.
            # Written in ASCII (backslash escapes): a reply is ASCII unless SMTPUTF8 was asked for (RFC 6531 3.7.4).
            shown = ascii_reply(domain)
            raise RouteError(_reply(553, "5.1.3", f"Recipient address rejected: {shown} is not a valid domain "
                                                  f"name ({exc})", "mx-bad-domain")) from None
        try:
            answer = await self.resolver.query(domain, "MX")
        except DnsTemporaryError as exc:
            raise RouteError(_reply(451, "4.4.3", f"Temporary DNS failure looking up the MX of {domain} "
                                                  f"({exc.reason}); please retry later", "mx-dns-temporary")) from None
        if answer.nxdomain:
            if self.control_name:
                await self._check_resolver(domain)
            # Words the suppression policy's `domains: evidence` knows (domain not found, nxdomain), dated by
            # when DNS said so (Reply.answered_at): a cached answer is the same sighting as when it was fetched.
            raise RouteError(replace(_reply(550, "5.1.2", f"Recipient address rejected: domain not found: {domain} "
                                                          f"does not exist in DNS (NXDOMAIN)", "mx-nxdomain"),
                                     answered_at=answer.fetched_at or None))
        records = sorted(answer.records)
        if not records:
            return await self._implicit(domain)
        named = [(pref, name.lower().rstrip(".")) for pref, name in records]
        exchanges = [(pref, name) for pref, name in named if name not in ("", ".", "@")]
        if not exchanges:
            # RFC 7505 3: a single MX of "." says the domain accepts no mail; 556 5.1.10 per its section 4.
            raise RouteError(replace(_reply(556, "5.1.10", f"Recipient address rejected: domain {domain} does not "
                                                           f"accept mail (nullMX)", "mx-null"),
                                     answered_at=answer.fetched_at or None))
        usable = [(pref, name) for pref, name in exchanges if not _numeric(name)]
        if not usable:
            shown = ", ".join(name for _, name in exchanges)
            raise RouteError(_reply(451, "4.4.4", f"The MX records of {domain} name no usable host ({shown}: "
                                                  f"an MX must name a host, not an address, RFC 5321 5.1)",
                                    "mx-unusable"))
        return Route(domain, self._ordered(self._without_ourselves(domain, usable)))

    async def _check_resolver(self, domain: str) -> None:
        """Before an NXDOMAIN is taken as the domain's (a 550 that counts towards listing `@domain`):
        the resolver must see the public DNS. One that answers NXDOMAIN for every name outside its own
        zones (a split-horizon internal server, a captive or filtering forwarder whose upstream is
        gone) listed @gmail.com and @outlook.com after two rounds (review21 F4). The control is the
        domain's top-level domain, which exists when the domain could (its delegation would be
        there), and when that does not exist either (a typo such as gmail.con), `control_name`, a
        zone that exists (e.g. com). Only when resolver.control_name is set: a resolver that knows only
        its own zones (a test bed, an air-gapped site) says NXDOMAIN for every top-level domain too,
        and each NXDOMAIN was answered 451 and never listed there. Both answers are cached; DNS trouble
        asking is DNS trouble."""
        tld = domain.rpartition(".")[2]
        for name in dict.fromkeys((tld, self.control_name)):
            try:
                answer = await self.resolver.query(name, "SOA")
            except DnsTemporaryError as exc:
                raise RouteError(_reply(451, "4.4.3", f"Temporary DNS failure: {domain} does not exist in DNS "
                                                      f"(NXDOMAIN), but checking that the resolver sees the public "
                                                      f"DNS failed ({exc.reason}); please retry later",
                                        "mx-dns-temporary")) from None
            if not answer.nxdomain:
                return
        raise RouteError(_reply(451, "4.4.3", f"Temporary DNS failure: the resolver ({self.resolver.describe()}) "
                                              f"says {domain} does not exist (NXDOMAIN), but it says the same of "
                                              f"{tld} and of {self.control_name}, which exist: it does not see the "
                                              f"public DNS (check resolver.nameservers); please retry later",
                                "mx-dns-unreliable"))

    def _without_ourselves(self, domain: str, exchanges: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """RFC 5321 5.1: drop our own MX record and every one of equal or worse preference."""
        ours = [pref for pref, name in exchanges if name in self.own_names]
        if not ours:
            return exchanges
        better = [(pref, name) for pref, name in exchanges if pref < min(ours)]
        if not better:
            raise RouteError(loops_back(domain, f"its best MX host is this relay ({self._own(exchanges)})"))
        return better

    def _own(self, exchanges: list[tuple[int, str]]) -> str:
        return next(name for _, name in exchanges if name in self.own_names)

    async def _implicit(self, domain: str) -> Route:
        """No MX: the domain itself is the one mail exchanger, if it has an address (RFC 5321 5.1)."""
        try:
            addresses = await self.resolver.addresses(domain)
        except DnsTemporaryError as exc:
            raise RouteError(_reply(451, "4.4.3", f"Temporary DNS failure looking up the address of {domain} "
                                                  f"({exc.reason}); please retry later", "mx-dns-temporary")) from None
        if not addresses:
            raise RouteError(_reply(550, "5.1.2", f"Recipient address rejected: {domain} has no mail server "
                                                  f"(no MX, A or AAAA record)", "mx-no-mail-server"))
        if domain in self.own_names:
            raise RouteError(loops_back(domain, "it has no MX, and its own address is this relay's"))
        return Route(domain, (MxHost(domain, 0, implicit=True),))

    def _ordered(self, records: list[tuple[int, str]]) -> tuple[MxHost, ...]:
        by_preference: dict[int, list[str]] = {}
        seen: set[str] = set()
        for pref, name in sorted(records):
            if name not in seen:  # a host named at several preferences is tried once, at its best
                seen.add(name)
                by_preference.setdefault(pref, []).append(name)
        hosts: list[MxHost] = []
        for pref in sorted(by_preference):
            names = by_preference[pref]
            self._rng.shuffle(names)  # RFC 5321 5.1: equal preferences in random order
            hosts.extend(MxHost(name, pref) for name in names)
        return tuple(hosts)

    async def addresses(self, host: MxHost) -> list[str]:
        """The addresses of one MX host, IPv4 first (DnsTemporaryError on DNS trouble). An exchange
        that is a CNAME is followed by the resolver (see the module's docstring)."""
        if host.address is not None:
            return [host.address]
        found: list[str] = []
        trouble = None
        for answer in await asyncio.gather(self.resolver.a(host.name), self.resolver.aaaa(host.name),
                                           return_exceptions=True):
            if isinstance(answer, DnsTemporaryError):
                trouble = answer  # one family failing leaves the other usable
            elif isinstance(answer, BaseException):
                raise answer
            else:
                found.extend(answer)
        if not found and trouble is not None:
            raise trouble
        return list(dict.fromkeys(found))
