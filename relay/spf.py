"""SPF (RFC 7208) evaluation: pyspf off the event loop, answers cached per (domain, ip).

pyspf is the evaluator (macros, include/redirect, the processing limits of RFC
7208 4.6.4); this module gives it our DNS, runs it in threads so a slow DNS
server never stalls other sessions, and caches results for as long as the DNS
answers they were built from may be cached.

How pyspf gets our DNS: pyspf has no resolver parameter. Every lookup goes
through its module-level function `spf.DNSLookup(name, qtype, strict, timeout)`,
which by default calls `dns.resolver.query`, i.e. dnspython's process-wide
`default_resolver`. Replacing `default_resolver` would redirect every other
user of dnspython in the process and allow only one set of nameservers per
process. Instead `spf.DNSLookup` is replaced, once, by a dispatcher that uses the
lookup function of the check running in the current thread, and falls back to
pyspf's own when there is none (so other users of pyspf are unaffected). Our
lookup also records TTLs and the TXT records seen, for the cache and for
messages that quote the record.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dns.exception
import dns.rdatatype
import dns.resolver
import spf as pyspf

from .dns import Resolver, _negative_ttl, dns_name

__all__ = ["SpfChecker", "SpfResult", "RESULTS", "is_spf_record", "spf_records", "count_lookups", "LookupCount",
           "MAX_LOOKUPS", "MAX_VOID_LOOKUPS"]

# RFC 7208 2.6: the seven results.
RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")

# RFC 7208 4.6.4 suggests at least 20 seconds for a whole evaluation.
DEFAULT_QUERYTIME = 20.0


def is_spf_record(text: str) -> bool:
    """RFC 7208 4.5: a record is SPF when it starts with exactly "v=spf1"
    followed by a space or the end ("v=spf10" is not one)."""
    low = text.lower()
    return low == "v=spf1" or low.startswith("v=spf1 ")


@dataclass(frozen=True)
class SpfResult:
    result: str  # one of RESULTS
    domain: str  # the identity checked (MAIL FROM domain, or HELO name)
    ip: str
    explanation: str  # pyspf's explanation or error text
    record: str | None  # the domain's SPF record as published, when there was one
    ttl: float  # seconds this result may be reused (0: not cached)

    def as_dict(self) -> dict:
        return {"result": self.result, "domain": self.domain, "ip": self.ip,
                "explanation": self.explanation, "record": self.record}


# --- handing pyspf our DNS -------------------------------------------------

_current = threading.local()
_pyspf_lookup = pyspf.DNSLookup
_install_lock = threading.Lock()


def _dispatching_lookup(name, qtype, strict=True, timeout=30):
    lookup = getattr(_current, "lookup", None)
    if lookup is None:
        return _pyspf_lookup(name, qtype, strict, timeout)
    return lookup(name, qtype, timeout)


def _install() -> None:
    with _install_lock:
        if pyspf.DNSLookup is not _dispatching_lookup:
            pyspf.DNSLookup = _dispatching_lookup


class _Lookup:
    """pyspf's DNSLookup contract, on a synchronous dnspython resolver.

    Returns [((name, qtype), value), ...] with the values pyspf expects (TXT:
    the tuple of byte strings; A/AAAA: the address; MX: (preference, name);
    PTR: the name). NXDOMAIN and NODATA are empty lists (RFC 7208 4.3, 5: "void
    lookups"); DNS trouble raises pyspf.TempError so the result is "temperror"
    (RFC 7208 2.6.7), never a guess.
    """

    def __init__(self, resolver: dns.resolver.Resolver):
        self.resolver = resolver
        self.ttls: list[float] = []
        self.txt: dict[str, list[str]] = {}

    def __call__(self, name, qtype, timeout):
        qtype = qtype.upper()
        try:
            qname = dns_name(str(name))  # IDNA 2008, as every lookup of the relay's (relay/dns.py)
        except (dns.exception.DNSException, ValueError):
            return []
        try:
            answer = self.resolver.resolve(qname, qtype, search=False, raise_on_no_answer=False,
                                           lifetime=min(float(timeout), self.resolver.lifetime))
        except dns.resolver.NXDOMAIN as exc:
            try:
                self.ttls.append(_negative_ttl(exc.response(qname)))
            except Exception:
                self.ttls.append(0.0)
            return []
        except dns.resolver.LifetimeTimeout:
            raise pyspf.TempError(f"DNS timeout looking up {qtype} {name}") from None
        except dns.resolver.NoNameservers:
            raise pyspf.TempError(f"DNS failure (SERVFAIL) looking up {qtype} {name}") from None
        except dns.exception.DNSException as exc:
            raise pyspf.TempError(f"DNS error looking up {qtype} {name}: {exc}") from None
        if answer.rrset is None:
            self.ttls.append(_negative_ttl(answer.response))
            return []
        self.ttls.append(max(0.0, answer.expiration - time.time()))
        key = (str(name), qtype)
        out = []
        for rd in answer.rrset:
            if qtype in ("A", "AAAA"):
                out.append((key, rd.address))
            elif qtype == "MX":
                out.append((key, (rd.preference, rd.exchange.to_text(omit_final_dot=True))))
            elif qtype == "PTR":
                out.append((key, rd.target.to_text(omit_final_dot=True)))
            elif qtype in ("TXT", "SPF"):
                out.append((key, tuple(rd.strings)))
                self.txt.setdefault(str(name).rstrip(".").lower(), []).append(
                    b"".join(rd.strings).decode("utf-8", "replace"))
        return out


# --- the checker -------------------------------------------------------------

class SpfChecker:
    """Evaluates SPF for (domain, ip) with our resolver, caching results.

    Results are reused for the smallest TTL of the DNS answers they depend on
    (a record change takes effect when caches would see it anyway); temperror
    is never cached. The cache holds at most `cache_size` results, least
    recently used out first.
    """

    def __init__(self, resolver: Resolver, helo: str, cache_size: int = 10000,
                 querytime: float = DEFAULT_QUERYTIME, threads: int = 8):
        _install()
        self.resolver = resolver
        self.helo = helo
        self.querytime = querytime
        self._sync = resolver.sync_resolver()
        self._cache: OrderedDict[tuple[str, str], tuple[float, SpfResult]] = OrderedDict()
        self._cache_size = max(0, int(cache_size))
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}
        # Own threads: an SPF evaluation can wait up to `querytime` on DNS,
        # and must not take the default executor's threads from other work
        # (the bounce-list store runs there).
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="relay-spf")
        self.evaluations = 0  # evaluations actually run (cache misses), for tests and metrics

    def cached(self, domain: str, ip: str) -> SpfResult | None:
        key = (domain.lower().rstrip("."), _canonical_ip(ip))
        item = self._cache.get(key)
        if item is None:
            return None
        expires, result = item
        if expires <= time.monotonic():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return result

    async def check(self, domain: str, ip: str, helo: str | None = None) -> SpfResult:
        """The SPF result for mail from `domain` sent by `ip` (RFC 7208 4).

        The sender is evaluated as postmaster@domain: results are cached per
        domain, and a local part only matters to records using the %{l}
        macro, which are rare and cannot be cached per domain anyway.
        """
        domain = domain.lower().rstrip(".")
        ip = _canonical_ip(ip)
        hit = self.cached(domain, ip)
        if hit is not None:
            return hit
        key = (domain, ip)
        pending = self._inflight.get(key)
        if pending is not None:  # one evaluation for concurrent MAILs of one domain
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._evaluate, domain, ip, helo or self.helo)
        self._inflight[key] = future
        try:
            result = await asyncio.shield(future)
        finally:
            self._inflight.pop(key, None)
        if result.result != "temperror" and result.ttl > 0 and self._cache_size:
            self._cache[key] = (time.monotonic() + result.ttl, result)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def _evaluate(self, domain: str, ip: str, helo: str) -> SpfResult:
        self.evaluations += 1
        lookup = _Lookup(self._sync)
        _current.lookup = lookup
        try:
            q = pyspf.query(i=ip, s=f"postmaster@{domain}", h=helo, strict=True,
                            timeout=self.resolver.timeout, querytime=self.querytime)
            result, _code, explanation = q.check()
        except Exception as exc:  # pyspf bug or unexpected input: not a pass
            result, explanation = "temperror", f"SPF evaluation failed: {type(exc).__name__}: {exc}"
        finally:
            _current.lookup = None
        if result not in RESULTS:  # "ambiguous" only appears in harsh mode; be safe
            result = "permerror"
        records = [t for t in lookup.txt.get(domain, []) if is_spf_record(t)]
        record = records[0] if len(records) == 1 else ("; ".join(records) if records else None)
        ttl = min(lookup.ttls) if lookup.ttls else 0.0
        return SpfResult(result, domain, ip, explanation or "", record, ttl)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _canonical_ip(ip: str) -> str:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped  # a v4 client seen through a v6 socket is checked as v4 (RFC 7208 5)
    return str(addr)


# --- static analysis of a record (for `relay doctor`) ---------------------------

# RFC 7208 4.6.4: terms that cost a DNS query when evaluated, and the limits.
LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists", "redirect")
MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10


@dataclass
class LookupCount:
    """DNS lookups a receiver may need to evaluate a record, counted over every
    term (the worst case: an IP that matches nothing), includes and redirects
    followed recursively."""

    lookups: int = 0
    void: int = 0  # lookups that find nothing (RFC 7208 4.6.4: more than 2 is a permerror)
    problems: list[str] = field(default_factory=list)  # things that make receivers return permerror
    notes: list[str] = field(default_factory=list)  # worth knowing, not fatal
    walked: list[str] = field(default_factory=list)  # domains whose records were read, in order


def _terms(record: str) -> list[str]:
    return record.split()[1:]  # after "v=spf1" (RFC 7208 4.6.1: terms are separated by spaces)


def _target(term: str, default: str) -> str:
    """The domain-spec of a mechanism (`a:host/24` -> host), or the current domain."""
    body = term.lstrip("+-~?")
    _, sep, rest = body.partition(":")
    spec = rest if sep else default
    return spec.split("/", 1)[0].rstrip(".").lower()


async def spf_records(resolver: Resolver, domain: str) -> list[str]:
    return [t for t in await resolver.txt(domain) if is_spf_record(t)]


async def count_lookups(resolver: Resolver, domain: str) -> LookupCount:
    """Count the DNS-querying terms of `domain`'s SPF record, recursively.
    Raises DnsTemporaryError when the DNS cannot answer."""
    count = LookupCount()
    await _walk(resolver, domain.lower().rstrip("."), count, stack=())
    return count


async def _walk(resolver: Resolver, domain: str, count: LookupCount, stack: tuple[str, ...]) -> None:
    if domain in stack:
        count.problems.append(f"include/redirect loop: {' -> '.join(stack + (domain,))}")
        return
    count.walked.append(domain)
    records = await spf_records(resolver, domain)
    if not records:
        if stack:  # RFC 7208 5.2, 6.1: an include or redirect target without a record is a permerror
            count.void += 1
            count.problems.append(f"{domain} (included from {stack[-1]}) has no SPF record")
        return
    if len(records) > 1:
        count.problems.append(f"{domain} has {len(records)} SPF records (RFC 7208 4.5: permerror)")
        return
    terms = _terms(records[0])
    has_all = any(t.lstrip("+-~?").lower() == "all" for t in terms)
    for term in terms:
        name = term.lstrip("+-~?").split(":", 1)[0].split("/", 1)[0].split("=", 1)[0].lower()
        if "=" in term.split(":", 1)[0]:  # a modifier: redirect=, exp=, unknown ones
            if name != "redirect":
                continue
            if has_all:  # RFC 7208 6.1: redirect is ignored when the record has "all"
                count.notes.append(f"{domain}: redirect= is ignored because the record has an 'all'")
                continue
            count.lookups += 1
            target = term.split("=", 1)[1].rstrip(".").lower()
            await _follow(resolver, target, count, stack + (domain,))
            continue
        if name not in LOOKUP_TERMS:
            continue
        count.lookups += 1
        target = _target(term, domain)
        if "%" in target:  # a macro: expanded per message, cannot be followed here
            count.notes.append(f"{domain}: {term} uses a macro; its lookups are not counted further")
            continue
        if name == "include":
            await _follow(resolver, target, count, stack + (domain,))
        elif name == "mx":
            mx = await resolver.mx(target)
            if not mx:
                count.void += 1
            if len(mx) > MAX_MX_NAMES:
                count.problems.append(f"{domain}: {term} finds {len(mx)} MX names (RFC 7208 4.6.4: at most 10)")
        elif name == "a":
            if not await resolver.addresses(target):
                count.void += 1
        elif name == "ptr":
            count.notes.append(f"{domain}: the ptr mechanism is slow and unreliable; RFC 7208 5.5 says not to use it")


async def _follow(resolver: Resolver, target: str, count: LookupCount, stack: tuple[str, ...]) -> None:
    if "%" in target:
        count.notes.append(f"{stack[-1]}: {target} uses a macro; its lookups are not counted further")
        return
    await _walk(resolver, target, count, stack)
